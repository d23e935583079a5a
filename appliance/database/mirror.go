package database

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

const configKey = "database"

// roleConfig is the database's role, kept in the state store.
type roleConfig struct {
	Role     string    `json:"role"` // "production" (default) or "mirror"
	Upstream *upstream `json:"upstream,omitempty"`
	Since    time.Time `json:"since"`
}

type upstream struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	User     string `json:"user"`
	Password string `json:"password"`
	Slot     string `json:"slot"`
}

func (m *Manager) roleConfig() roleConfig {
	var c roleConfig
	if m.Store != nil {
		if err := m.Store.GetJSON(state.BucketConfig, configKey, &c); err != nil && !errors.Is(err, state.ErrNotFound) {
			m.Log.Error("database settings unreadable", "err", err)
		}
	}
	if c.Role == "" {
		c.Role = "production"
	}
	return c
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9.:_-]{1,253}$`)

// SetUpstream makes the unit a mirror of an external PostgreSQL 15 server: its own cluster is moved aside
// (never deleted) and replaced by a copy of the upstream's, which then streams through a replication slot.
func (m *Manager) SetUpstream(ctx context.Context, u appliance.Upstream) error {
	if !hostRE.MatchString(u.Host) || u.Port < 1 || u.Port > 65535 || !nameRE.MatchString(u.User) || u.Password == "" ||
		strings.ContainsAny(u.Password, "'\\\n") {
		return fmt.Errorf("upstream: host, port 1-65535, user (lower-case letters, digits, _) and a password without quotes or backslashes are required: %w", appliance.ErrBadInput)
	}
	if st, err := m.Database(ctx); err == nil && len(st.Databases) > 0 && u.Confirm != "erase" {
		var names []string
		for _, d := range st.Databases {
			names = append(names, d.Name)
		}
		return fmt.Errorf("this unit holds databases (%s); confirm with \"erase\" to move them aside and mirror %s: %w",
			strings.Join(names, ", "), u.Host, appliance.ErrConflict)
	}
	host, _ := os.Hostname()
	slot := "lawbox_" + regexp.MustCompile(`[^a-z0-9_]`).ReplaceAllString(strings.ToLower(host), "_")
	c := roleConfig{Role: "mirror", Since: time.Now(), Upstream: &upstream{Host: u.Host, Port: u.Port, User: u.User, Password: u.Password, Slot: slot}}
	if err := m.Store.PutJSON(state.BucketConfig, configKey, c); err != nil {
		return err
	}
	m.Log.Warn("database becomes a mirror", "upstream", net.JoinHostPort(u.Host, fmt.Sprint(u.Port)), "slot", slot)
	m.kick()
	return nil
}

// Promote makes the mirror a production server: it replays what it has received, then takes writes.
func (m *Manager) Promote(ctx context.Context) (appliance.Promotion, error) {
	c := m.roleConfig()
	if c.Role != "mirror" {
		return appliance.Promotion{}, fmt.Errorf("promote: this unit is already the production server: %w", appliance.ErrConflict)
	}
	if err := m.running(); err != nil {
		return appliance.Promotion{}, err
	}
	start := time.Now()
	conn, err := m.connect(ctx, "postgres")
	if err != nil {
		return appliance.Promotion{}, fmt.Errorf("promote: %w", err)
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&ok); err != nil || !ok {
		return appliance.Promotion{}, fmt.Errorf("promote: not finished within 60 s (%v)", err)
	}
	c.Role, c.Since = "production", time.Now()
	if err := m.Store.PutJSON(state.BucketConfig, configKey, c); err != nil {
		return appliance.Promotion{}, err
	}
	p := appliance.Promotion{Seconds: time.Since(start).Seconds()}
	m.Log.Warn("database promoted to production", "took", time.Since(start))
	return p, nil
}

// kick makes Run restart the server with the current role.
func (m *Manager) kick() {
	select {
	case m.restart <- struct{}{}:
	default:
	}
}

// clone copies the upstream cluster with pg_basebackup into a new directory, then swaps it in; the old
// cluster is renamed, not deleted.
func (m *Manager) clone(ctx context.Context, cred *syscall.Credential, u *upstream) error {
	m.setState(fmt.Sprintf("copying from %s", net.JoinHostPort(u.Host, fmt.Sprint(u.Port))))
	tmp := m.DataDir + ".clone"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	run := func(createSlot bool) ([]byte, error) {
		args := []string{"-h", u.Host, "-p", fmt.Sprint(u.Port), "-U", u.User, "-D", tmp, "-X", "stream", "-c", "fast", "-S", u.Slot, "-w"}
		if createSlot {
			args = append(args, "-C")
		}
		cmd := exec.CommandContext(ctx, filepath.Join(m.BinDir, "pg_basebackup"), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Env = []string{"PATH=" + m.BinDir + ":/bin", "TZ=UTC", "LANG=C", "PGPASSWORD=" + u.Password, "PGCONNECT_TIMEOUT=10", "PGAPPNAME=lawbox mirror"}
		return cmd.CombinedOutput()
	}
	out, err := run(true)
	if err != nil && strings.Contains(string(out), "already exists") { // our slot from an earlier copy
		_ = os.RemoveAll(tmp)
		out, err = run(false)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("copy from %s: %w: %s", u.Host, err, strings.TrimSpace(string(out)))
	}
	// standby.signal makes the copy start as a standby (until a promotion removes it), not as a second primary.
	sig := filepath.Join(tmp, "standby.signal")
	if err := os.WriteFile(sig, nil, 0o600); err != nil {
		return err
	}
	if err := os.Chown(sig, int(cred.Uid), int(cred.Gid)); err != nil {
		return err
	}
	if _, err := os.Stat(m.DataDir); err == nil {
		old := m.DataDir + ".previous-" + time.Now().UTC().Format("20060102-150405")
		if err := os.Rename(m.DataDir, old); err != nil {
			return err
		}
		m.Log.Warn("the previous database cluster was moved aside", "dir", old)
	}
	return os.Rename(tmp, m.DataDir)
}

// replicationConf is conf.d/replication.conf for a mirror. A hot standby must allow at least as many
// connections, workers, senders, prepared transactions and locks as its upstream (recorded in the copied
// pg_control); limits are the upstream's.
func replicationConf(u *upstream, limits map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by the appliance.\nprimary_conninfo = 'host=%s port=%d user=%s password=%s application_name=lawbox_mirror'\nprimary_slot_name = '%s'\nhot_standby = on\n",
		u.Host, u.Port, u.User, u.Password, u.Slot)
	for _, k := range []string{"max_connections", "max_worker_processes", "max_wal_senders", "max_prepared_transactions", "max_locks_per_transaction"} {
		if v, ok := limits[k]; ok {
			fmt.Fprintf(&b, "%s = %s\n", k, v)
		}
	}
	return b.String()
}

// controlLimits reads the upstream's limits from pg_controldata's output ("max_connections setting: 100").
func controlLimits(out string) map[string]string {
	names := map[string]string{"max_connections": "max_connections", "max_worker_processes": "max_worker_processes",
		"max_wal_senders": "max_wal_senders", "max_prepared_xacts": "max_prepared_transactions", "max_locks_per_xact": "max_locks_per_transaction"}
	limits := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, " setting:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if n, ok := names[strings.TrimSpace(k)]; ok && regexp.MustCompile(`^[0-9]+$`).MatchString(v) {
			limits[n] = v
		}
	}
	return limits
}
