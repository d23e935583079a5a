package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql"
)

const pgBin = "/usr/lib/postgresql/15/bin"

// hostServer is a PostgreSQL 15 cluster on this machine, reachable on its socket only (trust).
type hostServer struct {
	dir  string
	port int
}

func startServer(t testing.TB) *hostServer {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("runs PostgreSQL as the postgres user: needs root")
	}
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		t.Skip("PostgreSQL 15 is not installed")
	}
	cred, err := pgsql.PostgresUser()
	if err != nil {
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("", "backuptest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	os.Chown(dir, int(cred.Uid), int(cred.Gid))
	cl := &pgsql.Cluster{BinDir: pgBin, DataDir: dir + "/data", Cred: cred}
	if err := cl.InitDB(context.Background(), "--auth=trust", "--wal-segsize=1"); err != nil {
		t.Fatal(err)
	}
	s := &hostServer{dir: dir, port: 5488}
	// WAL is archived as on the unit (basic_archive into a directory).
	os.Mkdir(s.walDir(), 0o700)
	os.Chown(s.walDir(), int(cred.Uid), int(cred.Gid))
	pg, err := cl.Start(nil, "-k", dir, "-p", strconv.Itoa(s.port), "-c", "listen_addresses=",
		"-c", "archive_mode=on", "-c", "archive_library=basic_archive", "-c", "basic_archive.archive_directory="+s.walDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop(syscall.SIGINT, time.Minute) })
	err = pg.Ready(context.Background(), func(ctx context.Context) error {
		c, err := s.connect("postgres")
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

func (s *hostServer) walDir() string { return filepath.Join(s.dir, "wal-archive") }

func (s *hostServer) connect(db string) (*pgx.Conn, error) {
	// An office client's session (not the unit's pinned one): the tests create tables as the office would.
	return pgx.Connect(context.Background(), fmt.Sprintf("host=%s port=%d user=postgres dbname=%s", s.dir, s.port, db))
}

func (s *hostServer) exec(t testing.TB, db string, qs ...string) {
	t.Helper()
	c, err := s.connect(db)
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

func newEngine(t testing.TB, s *hostServer, local target.Target) *Engine {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return &Engine{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), BinDir: pgBin, Socket: s.dir, Port: s.port, WALDir: s.walDir(),
		Scratch: filepath.Join(s.dir, "scratch"), Local: local, Firmware: "test",
		Identity: func() (*age.X25519Identity, error) { return id, nil }}
}

// A dump of a real database: encrypted and compressed (no client name readable in what is stored),
// verified by a restore with the dump's row counts; a damaged, truncated or foreign backup fails
// verification with what is wrong.
func TestBackupAndVerify(t *testing.T) {
	s := startServer(t)
	s.exec(t, "postgres", "CREATE ROLE practice_app LOGIN PASSWORD 'pw'", "CREATE DATABASE practice OWNER practice_app")
	s.exec(t, "practice", "SET ROLE practice_app",
		"CREATE TABLE matters (id int PRIMARY KEY, client text NOT NULL)",
		"INSERT INTO matters SELECT g, 'client ' || g FROM generate_series(1, 5000) g",
		"CREATE TABLE notes (id int, body text)")
	local := target.Dir{Path: t.TempDir()}
	e := newEngine(t, s, local)
	ctx := context.Background()
	m, err := e.Backup(ctx, KindDump)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Databases) != 1 || m.Databases[0].Rows["public.matters"] != 5000 || m.Databases[0].Rows["public.notes"] != 0 || len(m.Objects) != 4 {
		t.Fatalf("manifest %+v", m)
	}
	for _, o := range m.Objects {
		if strings.HasSuffix(o.Key, "/"+guideName) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(local.Path, o.Key))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("client 42")) || bytes.Contains(b, []byte("practice_app")) || !bytes.HasPrefix(b, []byte("age-encryption.org/v1")) {
			t.Errorf("%s is readable without the recovery identity", o.Key)
		}
	}
	v, err := e.Verify(ctx, local, m.ID)
	if err != nil || !v.OK {
		t.Fatalf("verify: %+v %v", v, err)
	}
	t.Logf("verified in %.1f s", v.Seconds)

	// Another unit's identity cannot read it.
	other := newEngine(t, s, local)
	if _, err := other.Verify(ctx, local, m.ID); err == nil || !strings.Contains(err.Error(), "not made for this recovery identity") {
		t.Errorf("verify with another identity: %v", err)
	}

	// A flipped byte, then a truncated object.
	dump := filepath.Join(local.Path, m.Databases[0].Object)
	orig, _ := os.ReadFile(dump)
	bad := bytes.Clone(orig)
	bad[len(bad)/2] ^= 0x40
	os.WriteFile(dump, bad, 0o600)
	if _, err := e.Verify(ctx, local, m.ID); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("a damaged object: %v", err)
	}
	os.WriteFile(dump, orig[:len(orig)-100], 0o600)
	if _, err := e.Verify(ctx, local, m.ID); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("a truncated object: %v", err)
	}
	os.WriteFile(dump, orig, 0o600)
	if _, err := e.Verify(ctx, local, m.ID); err != nil {
		t.Errorf("restored object: %v", err)
	}

	// Someone with write access to the target and the public key (it is in RESTORE.txt) writes a manifest
	// of their own: it is refused before anything is restored.
	forged := *m
	forged.Databases = append([]DumpedDB(nil), m.Databases...)
	forged.Databases[0].Rows = map[string]int64{"public.matters": 1}
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, must(e.Identity()).Recipient())
	json.NewEncoder(w).Encode(forged)
	w.Close()
	os.WriteFile(filepath.Join(local.Path, m.ID, manifestName), buf.Bytes(), 0o600)
	if _, err := e.Verify(ctx, local, m.ID); err == nil || !strings.Contains(err.Error(), "forged or altered") {
		t.Errorf("a forged manifest: %v", err)
	}
}

// Retention keeps the newest dumps and never the last verified one, whatever its age.
func TestPrune(t *testing.T) {
	s := startServer(t)
	s.exec(t, "postgres", "CREATE DATABASE practice")
	local := target.Dir{Path: t.TempDir()}
	e := newEngine(t, s, local)
	clock := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	e.Now = func() time.Time { return clock }
	ctx := context.Background()
	var ids []string
	for range 4 {
		m, err := e.Backup(ctx, KindDump)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
		clock = clock.Add(24 * time.Hour)
	}
	inc, err := e.Backup(ctx, KindIncrement)
	if err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(72 * time.Hour)
	gone, err := e.Prune(ctx, local, appliance.BackupRetention{Daily: 2}, map[string]bool{ids[0]: true})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(gone, " ") != ids[1]+" "+inc.ID {
		t.Errorf("pruned %v; want the second dump and the old increment (the first is the last verified)", gone)
	}
	left, _, err := Manifests(ctx, local, must(e.Identity()))
	if err != nil || len(left) != 3 {
		t.Fatalf("left %d backups (%v)", len(left), err)
	}
	keys, _ := local.List(ctx)
	for _, k := range keys {
		if strings.HasPrefix(k, ids[1]) || strings.HasPrefix(k, inc.ID) {
			t.Errorf("%s left behind", k)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Retention keeps the newest nightly dumps, then the newest of each of the last weeks and months.
func TestRetained(t *testing.T) {
	var dumps []*Manifest
	day := time.Date(2026, 8, 1, 2, 0, 0, 0, time.UTC) // a Saturday
	for i := range 100 {
		c := day.AddDate(0, 0, i)
		dumps = append(dumps, &Manifest{ID: c.Format("0102"), Created: c})
	}
	keep := retained(dumps, appliance.BackupRetention{Daily: 3, Weekly: 3, Monthly: 4})
	var got []string
	for _, m := range dumps {
		if keep[m.ID] {
			got = append(got, m.ID)
		}
	}
	// The last day is Sun 11-08: the last 3 days; the Sundays ending the two weeks before (the newest of
	// the current week is 11-08 itself); the last day of August, September and October (November's is 11-08).
	want := "0831 0930 1025 1031 1101 1106 1107 1108"
	if strings.Join(got, " ") != want {
		t.Errorf("kept %s, want %s", strings.Join(got, " "), want)
	}
	if n := len(retained(dumps, appliance.BackupRetention{Daily: 30})); n != 30 {
		t.Errorf("30 nightly dumps: kept %d", n)
	}
}
