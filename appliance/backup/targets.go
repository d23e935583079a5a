package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/target"
)

// SetTargets stores the offsite targets (production only). Each is tried (listed) before it is accepted.
func (s *Service) SetTargets(ctx context.Context, ts []appliance.BackupTarget) error {
	for i, t := range ts {
		if err := checkTarget(t); err != nil {
			return fmt.Errorf("target %d: %v: %w", i+1, err, appliance.ErrBadInput)
		}
		if _, err := toTarget(t).List(ctx); err != nil {
			s.Engine.Log.Warn("a new backup target does not answer as it should", "target", t.Endpoint, "err", err)
			return fmt.Errorf("target %d (%s): %s %w", i+1, t.Endpoint, target.Problem(err), appliance.ErrBadInput)
		}
	}
	b, err := json.Marshal(ts)
	if err != nil {
		return err
	}
	c, err := s.Engine.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	tag, err := c.Exec(ctx, "UPDATE lawbox.backup SET targets = $1 WHERE id = 1", b)
	if err != nil {
		if _, rerr := c.Exec(ctx, "SELECT 1 FROM lawbox.backup"); rerr != nil {
			return fmt.Errorf("set up backups first (recovery identity): %w", appliance.ErrConflict)
		}
		return fmt.Errorf("set targets on the production unit: %v: %w", err, appliance.ErrConflict)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set up backups first (recovery identity): %w", appliance.ErrConflict)
	}
	return nil
}

// SetRetention stores which nightly dumps are kept (production only); the next prune applies it everywhere.
func (s *Service) SetRetention(ctx context.Context, r appliance.BackupRetention) error {
	if r.Daily < 1 || r.Daily > 365 || r.Weekly < 0 || r.Weekly > 104 || r.Monthly < 0 || r.Monthly > 120 {
		return fmt.Errorf("retention: 1-365 nightly dumps, 0-104 weekly, 0-120 monthly: %w", appliance.ErrBadInput)
	}
	c, err := s.Engine.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, schema); err != nil {
		return fmt.Errorf("set the retention on the production unit: %v: %w", err, appliance.ErrConflict)
	}
	b, _ := json.Marshal(r)
	tag, err := c.Exec(ctx, "UPDATE lawbox.backup SET retention = $1 WHERE id = 1", b)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set up backups first (recovery identity): %w", appliance.ErrConflict)
	}
	return nil
}

// retention is the admin's choice, or the last Keep nightly dumps.
func (s *Service) retention(ctx context.Context) appliance.BackupRetention {
	r := appliance.BackupRetention{Daily: s.Keep}
	c, err := s.Engine.Connect(ctx, "postgres")
	if err != nil {
		return r
	}
	defer c.Close(ctx)
	var got *appliance.BackupRetention
	if err := c.QueryRow(ctx, "SELECT retention FROM lawbox.backup WHERE id = 1").Scan(&got); err == nil && got != nil && got.Daily > 0 {
		r = *got
	}
	return r
}

var (
	bucketRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	hostKeyRE = regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`)
)

func checkTarget(t appliance.BackupTarget) error {
	if t.LimitKBps < 0 {
		return errors.New("the upload limit is in KB/s, 0 for none")
	}
	if _, _, err := net.SplitHostPort(t.Endpoint); err != nil {
		return errors.New(`endpoint "host:port" is required`)
	}
	switch t.Kind {
	case "s3":
		if !bucketRE.MatchString(t.Bucket) || t.AccessKey == "" || t.SecretKey == "" {
			return errors.New("bucket (3-63 lower-case letters, digits, . and -), access and secret keys are required")
		}
	case "sftp":
		if t.User == "" || t.Password == "" && t.PrivateKey == "" || !hostKeyRE.MatchString(t.HostKey) || t.Path == "" || strings.Contains(t.Path, "..") {
			return errors.New(`user, a password or private key, the server's host key ("SHA256:...", as ssh-keygen -lf shows it) and a directory are required`)
		}
	default:
		return fmt.Errorf("kind %q: s3 or sftp", t.Kind)
	}
	return nil
}

func toTarget(t appliance.BackupTarget) target.Target {
	var out target.Target = &target.S3{Endpoint: t.Endpoint, Bucket: t.Bucket, Prefix: t.Prefix, AccessKey: t.AccessKey, SecretKey: t.SecretKey, Insecure: t.Insecure, Region: t.Region}
	if t.Kind == "sftp" {
		out = &target.SFTP{Addr: t.Endpoint, User: t.User, Password: t.Password, Key: t.PrivateKey, HostKey: t.HostKey, Dir: t.Path}
	}
	if t.LimitKBps > 0 {
		out = target.Limited{Target: out, Rate: int64(t.LimitKBps) * 1000}
	}
	return out
}

// offsite reads the configured targets from the cluster.
func (s *Service) offsite(ctx context.Context) ([]target.Target, error) {
	c, err := s.Engine.Connect(ctx, "postgres")
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	var ts []appliance.BackupTarget
	if err := c.QueryRow(ctx, "SELECT targets FROM lawbox.backup WHERE id = 1").Scan(&ts); err != nil {
		return nil, nil
	}
	out := make([]target.Target, len(ts))
	for i, t := range ts {
		out[i] = toTarget(t)
	}
	return out, nil
}
