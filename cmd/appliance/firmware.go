package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance/backup"
	"github.com/lawbox/appliance/appliance/shares"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/certs"
	"github.com/lawbox/appliance/appliance/control"
	"github.com/lawbox/appliance/appliance/database"
	"github.com/lawbox/appliance/appliance/firmware"
	"github.com/lawbox/appliance/appliance/pair"
	"github.com/lawbox/appliance/appliance/replica"
	"github.com/lawbox/appliance/appliance/state"
	"github.com/lawbox/appliance/appliance/storage"
	"github.com/lawbox/appliance/hw/fat"
	"github.com/lawbox/appliance/hw/sysinit"
)

// firmwareParts are the installer (the running firmware onto every member's boot partition) and the
// updater (signed bundles into the free slot, blessing a slot on trial once the unit is healthy).
func firmwareParts(log *slog.Logger, st *state.Store, disks *storage.Manager, db *database.Manager, node *pair.Node, docs *replica.Replica,
	keeper *certs.Keeper, listen string, init *control.Client) (*firmware.Installer, *firmware.Updater, error) {
	log = log.With("part", "firmware")
	if err := os.MkdirAll("/run/firmware", 0o700); err != nil {
		return nil, nil, err
	}
	boot := &firmware.Installer{Log: log, Storage: disks, FAT: fat.Tools{Mtools: "/bin/mtools"},
		Version: version, Partitions: allPartitions, Loader: "/lib/lawbox/systemd-bootx64.efi", TmpDir: "/run/firmware"}
	b, _ := strconv.Atoi(build)
	u := &firmware.Updater{Boot: boot, Store: st, Build: b,
		BootCount: func() (string, error) { return sysinit.LoaderVar(sysinit.EFIVars, "LoaderBootCountPath") },
		Health:    healthChecks(disks, db, node, keeper, listen),
		Restart:   func(ctx context.Context) error { return init.Shutdown(ctx, true) },
		Blessed:   init.TrialPassed,
		Pair:      node, Whole: pairWhole(db, node, docs), RolloutDir: "/data/firmware", Release: releaseMirror(db, node)}
	if k, err := firmware.ParsePublicKey(updateKey); err != nil {
		log.Error("this firmware carries no valid update key: update bundles will be refused", "err", err)
	} else {
		u.Key = &k
		log.Info("firmware", "version", version, "build", build, "update_key_id", fmt.Sprintf("%x", k.ID))
	}
	return boot, u, nil
}

// healthChecks are what a firmware on trial must show before it is kept: the arrays assembled, the web UI
// answering with the unit's certificate, the database running in the role the pair gives the unit, and,
// when paired, the partner heard.
func healthChecks(disks *storage.Manager, db *database.Manager, node *pair.Node, keeper *certs.Keeper, listen string) []firmware.HealthCheck {
	return []firmware.HealthCheck{
		{Name: "the arrays", Check: func(ctx context.Context) error {
			st, err := disks.Storage(ctx)
			if err != nil {
				return err
			}
			for _, want := range []string{"system", "data"} {
				ok := false
				for _, a := range st.Arrays {
					ok = ok || a.Name == want && a.State != appliance.ArrayFailed
				}
				if !ok {
					return fmt.Errorf("the %s array is not assembled", want)
				}
			}
			return nil
		}},
		{Name: "the web interface", Check: func(ctx context.Context) error {
			_, port, err := net.SplitHostPort(listen)
			if err != nil {
				return err
			}
			d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} // checked below: the unit's own certificate
			c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
			if err != nil {
				return err
			}
			defer c.Close()
			peer := c.(*tls.Conn).ConnectionState().PeerCertificates
			if len(peer) == 0 || !bytes.Equal(peer[0].Raw, keeper.Current().Certificate[0]) {
				return errors.New("it answers with another certificate than the unit's")
			}
			return nil
		}},
		{Name: "the database", Check: func(ctx context.Context) error {
			d, err := db.Database(ctx)
			if err != nil {
				return err
			}
			want := "production"
			if r := node.Roles.Get(); r == appliance.PairStandby {
				want = "mirror"
			} else if r == appliance.PairFenced {
				want = d.Role // read-only until the lease comes back: any role, running
			}
			if d.State != "running" || d.Role != want {
				return fmt.Errorf("%s as %s, the pair wants it running as %s", d.State, d.Role, want)
			}
			return nil
		}},
		{Name: "the pair", Check: func(context.Context) error {
			p := node.Pair()
			if p.Paired && (p.Peer == nil || time.Since(p.Peer.LastSeen) > 30*time.Second) {
				return errors.New("no heartbeat from the partner in 30 s")
			}
			return nil
		}},
	}
}

// pairWhole says whether both units of the pair serve: the other unit heard, and the standby's database
// mirroring the active one's (streaming, caught up when commits wait for the mirror).
func pairWhole(db *database.Manager, node *pair.Node, docs *replica.Replica) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		p := node.Pair()
		if p.Peer == nil || !p.Peer.Reachable {
			return errors.New("the other unit is not heard")
		}
		d, err := db.Database(ctx)
		if err != nil {
			return err
		}
		switch p.Role {
		case pair.Active:
			if d.Role != "production" || d.State != "running" || !strings.HasPrefix(d.Mirror, "streaming") || d.Sync == "degraded" || d.Sync == "catching up" {
				return fmt.Errorf("the other unit's database does not mirror this one's yet (%s)", strings.TrimSpace(d.Sync+" "+d.Mirror))
			}
		case pair.Standby:
			if d.Role != "mirror" || d.State != "running" {
				return fmt.Errorf("this unit's database does not mirror the other unit's yet (%s as %s)", d.State, d.Role)
			}
		default:
			return fmt.Errorf("this unit is %s", p.Role)
		}
		if r := docs.Status(); r != nil && r.Paired && (r.Disk != "UpToDate" || r.PeerDisk != "UpToDate") {
			return fmt.Errorf("the documents are not in sync between the units (this unit's copy %s, the other's %s)", r.Disk, r.PeerDisk)
		}
		return nil
	}
}

// releaseMirrorPath is the link request that tells production its mirror restarts on purpose.
const releaseMirrorPath = "/link/v1/database/release-mirror"

// releaseMirror tells production (this unit, or the other over the link) that its mirror restarts now.
func releaseMirror(db *database.Manager, node *pair.Node) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if node.Roles.Get() == appliance.PairActive {
			db.ReleaseMirror()
			return nil
		}
		resp, err := node.Call(ctx, "POST", releaseMirrorPath, nil, 0)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("the other unit answers %s", resp.Status)
		}
		return nil
	}
}

// linkHandler serves the other unit's requests over the pair link: firmware (a rolling update), the
// release of the database's mirror before it restarts, a backup taken now (by the mirror), the file
// shares' settings (from the active unit) and the documents volume's size and fencing.
func linkHandler(u *firmware.Updater, db *database.Manager, node *pair.Node, docs *replica.Replica, backups, files http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/link/v1/firmware", u.LinkHandler())
	mux.Handle(backup.RunPath, backups)
	mux.Handle(shares.LinkPath, files)
	mux.Handle("POST "+replica.GrowPath, docs.LinkHandler())
	mux.Handle("POST "+replica.OutdatePath, docs.OutdateHandler())
	mux.HandleFunc("POST "+releaseMirrorPath, func(w http.ResponseWriter, _ *http.Request) {
		if node.Roles.Get() != appliance.PairActive {
			http.Error(w, "this unit is not production", http.StatusConflict)
			return
		}
		db.ReleaseMirror()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
