package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql/pgtest"
)

func newEngine(t testing.TB, s *pgtest.Server, local target.Target) *Engine {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return &Engine{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), BinDir: pgtest.BinDir, Socket: s.Dir, Port: s.Port, WALDir: s.WALDir(),
		Scratch: filepath.Join(s.Dir, "scratch"), Local: local, Firmware: "test",
		Identity: func() (*age.X25519Identity, error) { return id, nil }}
}

// A dump of a real database: encrypted and compressed (no client name readable in what is stored),
// verified by a restore with the dump's row counts; a damaged, truncated or foreign backup fails
// verification with what is wrong.
func TestBackupAndVerify(t *testing.T) {
	s := pgtest.Start(t)
	s.Exec(t, "postgres", "CREATE ROLE practice_app LOGIN PASSWORD 'pw'", "CREATE DATABASE practice OWNER practice_app")
	s.Exec(t, "practice", "SET ROLE practice_app",
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
	os.WriteFile(filepath.Join(local.Path, m.ID, ManifestName), buf.Bytes(), 0o600)
	if _, err := e.Verify(ctx, local, m.ID); err == nil || !strings.Contains(err.Error(), "forged or altered") {
		t.Errorf("a forged manifest: %v", err)
	}
}

// Retention keeps the newest dumps and never the last verified one, whatever its age.
func TestPrune(t *testing.T) {
	s := pgtest.Start(t)
	s.Exec(t, "postgres", "CREATE DATABASE practice")
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

// A database server that does not answer (starting with the unit, being promoted) is the unit's state for
// a moment, not an internal error: the admin is told to try again.
func TestConnectToAServerNotRunning(t *testing.T) {
	e := &Engine{Socket: t.TempDir(), Port: 5432}
	if _, err := e.Connect(context.Background(), "postgres"); !errors.Is(err, appliance.ErrUnavailable) || !strings.Contains(err.Error(), "try again in a minute") {
		t.Errorf("connect without a server: %v", err)
	}
}
