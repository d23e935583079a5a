package pgsql

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const pgBin = "/usr/lib/postgresql/15/bin"

// The lifecycle with Debian's PostgreSQL 15: initdb into place (a half-made side directory from a power
// cut is started over, a directory holding something else is refused), a server that takes connections,
// a clean stop, and a server that cannot start is reported as exited with its words.
func TestClusterLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs PostgreSQL as the postgres user: needs root")
	}
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		t.Skip("PostgreSQL 15 is not installed")
	}
	cred, err := PostgresUser()
	if err != nil {
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("", "pgsqltest") // t.TempDir's parent is closed to the postgres user
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	os.Chown(dir, int(cred.Uid), int(cred.Gid))
	ctx := context.Background()
	c := &Cluster{BinDir: pgBin, DataDir: filepath.Join(dir, "data"), Cred: cred}

	// What a power cut during initdb leaves: a side directory with half a cluster.
	if err := os.MkdirAll(filepath.Join(c.DataDir+".init", "base"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := c.InitDB(ctx, "--auth=trust"); err != nil {
		t.Fatalf("InitDB over an unfinished one: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.DataDir, "PG_VERSION")); err != nil {
		t.Fatalf("no cluster in place after InitDB: %v", err)
	}
	if _, err := os.Stat(c.DataDir + ".init"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the side directory is still there: %v", err)
	}
	if err := c.InitDB(ctx, "--auth=trust"); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("InitDB over a cluster = %v, want a refusal", err)
	}

	port := 5477
	p, err := c.Start(nil, "-k", dir, "-p", strconv.Itoa(port), "-c", "listen_addresses=")
	if err != nil {
		t.Fatal(err)
	}
	var version string
	err = p.Ready(ctx, func(ctx context.Context) error {
		s, err := Local(ctx, dir, port, "postgres")
		if err != nil {
			return err
		}
		defer s.Close(ctx)
		return s.QueryRow(ctx, "SHOW server_version").Scan(&version)
	}, 100*time.Millisecond, 30*time.Second)
	if err != nil || !strings.HasPrefix(version, "15") {
		t.Fatalf("Ready = %v, version %q", err, version)
	}
	p.Stop(syscall.SIGINT, 30*time.Second)
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop returned before the server exited")
	}
	if p.Err() != nil {
		t.Errorf("a fast shutdown exited with %v", p.Err())
	}

	// A setting postgres refuses: it exits at once, and Ready says so rather than waiting out its time.
	var out strings.Builder
	p, err = c.Start(&out, "-k", dir, "-p", strconv.Itoa(port), "-c", "shared_buffers=nonsense")
	if err != nil {
		t.Fatal(err)
	}
	err = p.Ready(ctx, func(context.Context) error { return errors.New("no answer") }, 100*time.Millisecond, time.Minute)
	if !errors.Is(err, ErrExited) {
		t.Fatalf("Ready on a server that cannot start = %v, want ErrExited", err)
	}
	p.Stop(syscall.SIGINT, time.Second)
	if !strings.Contains(out.String(), "shared_buffers") {
		t.Errorf("the server's words do not name the setting: %q", out.String())
	}
}
