// Package pgtest runs a PostgreSQL 15 cluster (Debian's) on this machine for the tests of the parts that
// work on one (the backups' engine and service): the unit's own lifecycle (package pgsql), as the postgres
// user, reachable on its unix socket only (trust), WAL archived into a directory as on the unit.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lawbox/appliance/appliance/pgsql"
)

// BinDir holds Debian's PostgreSQL 15 programs.
const BinDir = "/usr/lib/postgresql/15/bin"

// Server is a running cluster; it stops and is removed when its test ends.
type Server struct {
	Dir  string // its socket's directory; the cluster is in Dir/data
	Port int
}

// Start initialises and starts a cluster; the test is skipped where PostgreSQL 15 cannot run (not root,
// not installed).
func Start(t testing.TB) *Server {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("runs PostgreSQL as the postgres user: needs root")
	}
	if _, err := os.Stat(filepath.Join(BinDir, "postgres")); err != nil {
		t.Skip("PostgreSQL 15 is not installed")
	}
	cred, err := pgsql.PostgresUser()
	if err != nil {
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("", "pgtest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	os.Chown(dir, int(cred.Uid), int(cred.Gid))
	cl := &pgsql.Cluster{BinDir: BinDir, DataDir: dir + "/data", Cred: cred}
	if err := cl.InitDB(context.Background(), "--auth=trust", "--wal-segsize=1"); err != nil {
		t.Fatal(err)
	}
	s := &Server{Dir: dir, Port: 5488}
	os.Mkdir(s.WALDir(), 0o700)
	os.Chown(s.WALDir(), int(cred.Uid), int(cred.Gid))
	pg, err := cl.Start(nil, "-k", dir, "-p", strconv.Itoa(s.Port), "-c", "listen_addresses=",
		"-c", "archive_mode=on", "-c", "archive_library=basic_archive", "-c", "basic_archive.archive_directory="+s.WALDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop(syscall.SIGINT, time.Minute) })
	err = pg.Ready(context.Background(), func(ctx context.Context) error {
		c, err := s.Connect("postgres")
		if err == nil {
			c.Close(ctx)
		}
		return err
	}, 100*time.Millisecond, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// WALDir is where the server archives its WAL segments (basic_archive).
func (s *Server) WALDir() string { return filepath.Join(s.Dir, "wal-archive") }

// Connect opens a superuser session on database db: an office client's session, not the unit's pinned
// one (the tests create tables as the office would).
func (s *Server) Connect(db string) (*pgx.Conn, error) {
	return pgx.Connect(context.Background(), fmt.Sprintf("host=%s port=%d user=postgres dbname=%s", s.Dir, s.Port, db))
}

// Exec runs each statement of qs in database db, failing the test on the first error.
func (s *Server) Exec(t testing.TB, db string, qs ...string) {
	t.Helper()
	c, err := s.Connect(db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	for _, q := range qs {
		if _, err := c.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// ArchiveNow ends the current WAL segment and waits until the server archived it.
func (s *Server) ArchiveNow(t testing.TB) {
	t.Helper()
	c, err := s.Connect("postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var seg string
	if err := c.QueryRow(context.Background(), "SELECT pg_walfile_name(pg_switch_wal())").Scan(&seg); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		var last string
		if err := c.QueryRow(context.Background(), "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver").Scan(&last); err != nil {
			t.Fatal(err)
		}
		if last >= seg {
			return
		}
		if i == 100 {
			t.Fatalf("segment %s not archived (last %q)", seg, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Count is the number query q in database db answers.
func (s *Server) Count(t testing.TB, db, q string) int64 {
	t.Helper()
	c, err := s.Connect(db)
	if err != nil {
		t.Fatalf("%s: %v", db, err)
	}
	defer c.Close(context.Background())
	var n int64
	if err := c.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %s: %v", db, q, err)
	}
	return n
}
