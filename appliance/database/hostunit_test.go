package database

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/certs"
	"github.com/lawbox/appliance/appliance/state"
)

// hostUnit is a Manager on this machine: its own data directory, socket and port, PostgreSQL 15 from
// Debian, run as the postgres user like on the appliance.
type hostUnit struct {
	*Manager
	pair *fakePair
	stop context.CancelFunc
	done chan error
}

func startHostUnit(t *testing.T, name string, port, peerPort int, role string) *hostUnit {
	return startHostUnitOn(t, name, port, peerPort, role, "")
}

// startHostUnitOn is startHostUnit with the data directory on a tmpfs of that size ("" for none).
func startHostUnitOn(t *testing.T, name string, port, peerPort int, role, tmpfs string) *hostUnit {
	t.Helper()
	dir := filepath.Join(hostDir(t), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if tmpfs != "" {
		data := filepath.Join(dir, "15")
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mount("tmpfs", data, "tmpfs", 0, "size="+tmpfs); err != nil {
			t.Skipf("mount a tmpfs: %v", err)
		}
		t.Cleanup(func() { syscall.Unmount(data, syscall.MNT_DETACH) })
	}
	st, err := state.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := certs.LoadOrCreate(st, name, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	p := &fakePair{}
	p.set(role)
	u := &hostUnit{pair: p, done: make(chan error, 1), Manager: &Manager{
		Log:    slog.New(slog.NewTextHandler(&testWriter{t: t, name: name}, nil)),
		BinDir: "/usr/lib/postgresql/15/bin", DataDir: filepath.Join(dir, "15", "main"), Socket: filepath.Join(dir, "run"),
		Port: port, PeerPort: peerPort, Ready: func() bool { return true }, Host: func() string { return "127.0.0.1" },
		TLS: func() ([]byte, []byte, error) { return certs.PEM(st) }, Store: st, Pair: p, Roles: &p.roles,
	}}
	u.run(t)
	return u
}

func (u *hostUnit) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	u.stop, u.done = cancel, make(chan error, 1)
	go func() { u.done <- u.Run(ctx) }()
	t.Cleanup(u.halt)
}

// halt stops the server (fast shutdown) and waits for it.
func (u *hostUnit) halt() {
	u.stop()
	select {
	case <-u.done:
	case <-time.After(2 * time.Minute):
		panic("the database manager did not stop within 2 minutes")
	}
	u.done <- nil // a second halt returns at once
}

// hostDir is a directory the postgres user can reach.
func hostDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("runs PostgreSQL as the postgres user: needs root")
	}
	if _, err := os.Stat("/usr/lib/postgresql/15/bin/postgres"); err != nil {
		t.Skip("PostgreSQL 15 is not installed")
	}
	dir, err := os.MkdirTemp("", "pgunit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

type testWriter struct {
	t    *testing.T
	name string
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Log(w.name + ": " + strings.TrimSpace(string(b)))
	return len(b), nil
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitFor(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (u *hostUnit) waitStatus(t *testing.T, what string, ok func(appliance.DatabaseStatus) bool) appliance.DatabaseStatus {
	t.Helper()
	var st appliance.DatabaseStatus
	waitFor(t, 2*time.Minute, what, func() error {
		var err error
		st, err = u.Database(context.Background())
		if err == nil && ok(st) {
			return nil
		}
		return fmt.Errorf("%+v (%v)", st, err)
	})
	return st
}

// walPosition is the unit's current WAL position; checkpointRedo the redo position of its last checkpoint.
func (u *hostUnit) walPosition(t *testing.T) uint64 {
	return u.lsn(t, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
}

func (u *hostUnit) checkpointRedo(t *testing.T) uint64 {
	return u.lsn(t, "SELECT pg_wal_lsn_diff(redo_lsn, '0/0')::bigint FROM pg_control_checkpoint()")
}

func (u *hostUnit) lsn(t *testing.T, query string) uint64 {
	t.Helper()
	ctx := context.Background()
	c, err := u.connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int64
	if err := c.QueryRow(ctx, query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return uint64(n)
}

// at is the connection string for the same database on another unit.
func at(connURL string, port int) string {
	p, _ := url.Parse(connURL)
	p.Host = fmt.Sprintf("127.0.0.1:%d", port)
	return p.String()
}

func count(ctx context.Context, connURL string) (int, error) {
	c, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	var n int
	err = c.QueryRow(ctx, "SELECT count(*) FROM matters").Scan(&n)
	return n, err
}
