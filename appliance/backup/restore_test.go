package backup

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql/pgtest"
	"github.com/lawbox/appliance/appliance/state"
)

// Restores into a real server: under a new name beside the current database; in place only when asked,
// the current database kept under another name and its open sessions ended; existing roles left as they
// are; a damaged backup restores nothing and leaves no half-restored database; a mirror refuses.
func TestRestore(t *testing.T) {
	s := pgtest.Start(t)
	s.Exec(t, "postgres", "CREATE ROLE practice_app LOGIN PASSWORD 'pw'", "CREATE DATABASE practice OWNER practice_app")
	s.Exec(t, "practice", "SET ROLE practice_app",
		"CREATE TABLE matters (id int PRIMARY KEY, client text NOT NULL)",
		"INSERT INTO matters SELECT g, 'client ' || g FROM generate_series(1, 3000) g")
	local := target.Dir{Path: t.TempDir()}
	e := newEngine(t, s, local)
	ctx := context.Background()
	m, err := e.Backup(ctx, KindDump)
	if err != nil {
		t.Fatal(err)
	}
	if m.Databases[0].Owner != "practice_app" {
		t.Errorf("the manifest's owner: %q", m.Databases[0].Owner)
	}
	// After the backup: a mistake deletes most matters; the role's password changes.
	s.Exec(t, "practice", "DELETE FROM matters WHERE id > 10")
	s.Exec(t, "postgres", "ALTER ROLE practice_app PASSWORD 'changed since'")
	pwBefore := s.Count(t, "postgres", "SELECT length(rolpassword) + ascii(substr(rolpassword, 30)) FROM pg_authid WHERE rolname = 'practice_app'")

	if _, err := e.Restore(ctx, local, m.ID, []string{"practice"}, "", false); !errors.Is(err, appliance.ErrConflict) {
		t.Fatalf("restore over the current database without replace: %v", err)
	}
	if _, err := e.Restore(ctx, local, m.ID, []string{"nope"}, "", false); !errors.Is(err, appliance.ErrNotFound) {
		t.Errorf("restore of a database the backup lacks: %v", err)
	}
	for _, bad := range []string{"Bad-Name", "postgres", "template1", "lawbox_restore_x"} {
		if _, err := e.Restore(ctx, local, m.ID, nil, bad, true); !errors.Is(err, appliance.ErrBadInput) {
			t.Errorf("restore under the name %q: %v", bad, err)
		}
	}
	rs, err := e.Restore(ctx, local, m.ID, []string{"practice"}, "practice_copy", false)
	if err != nil || len(rs) != 1 || rs[0].Into != "practice_copy" || rs[0].Rows != 3000 || rs[0].KeptAs != "" {
		t.Fatalf("restore under a new name: %+v %v", rs, err)
	}
	if n := s.Count(t, "practice_copy", "SELECT count(*) FROM matters"); n != 3000 {
		t.Errorf("practice_copy has %d matters", n)
	}
	if n := s.Count(t, "practice", "SELECT count(*) FROM matters"); n != 10 {
		t.Errorf("the current practice changed: %d matters", n)
	}
	if n := s.Count(t, "postgres", "SELECT count(*) FROM pg_database WHERE datname = 'practice_copy' AND pg_get_userbyid(datdba) = 'practice_app'"); n != 1 {
		t.Error("practice_copy is not owned by practice_app")
	}
	if n := s.Count(t, "postgres", "SELECT length(rolpassword) + ascii(substr(rolpassword, 30)) FROM pg_authid WHERE rolname = 'practice_app'"); n != pwBefore {
		t.Error("the restore changed an existing role's password")
	}

	// In place, with the office's application connected: its session ends, the old database is kept.
	app, err := s.Connect("practice")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	rs, err = e.Restore(ctx, local, m.ID, nil, "", true)
	if err != nil || len(rs) != 1 || !strings.HasPrefix(rs[0].KeptAs, "practice_before_") {
		t.Fatalf("restore in place: %+v %v", rs, err)
	}
	if n := s.Count(t, "practice", "SELECT count(*) FROM matters"); n != 3000 {
		t.Errorf("practice has %d matters after the restore", n)
	}
	if n := s.Count(t, rs[0].KeptAs, "SELECT count(*) FROM matters"); n != 10 {
		t.Errorf("the kept database has %d matters", n)
	}
	if err := app.Ping(ctx); err == nil {
		t.Error("the application's session on the replaced database is still open")
	}

	// A damaged dump: nothing restored, nothing left behind, the current database as it was.
	s.Exec(t, "practice", "DELETE FROM matters WHERE id > 20")
	dump := filepath.Join(local.Path, m.Databases[0].Object)
	orig, _ := os.ReadFile(dump)
	os.WriteFile(dump, orig[:len(orig)*2/3], 0o600)
	if _, err := e.Restore(ctx, local, m.ID, nil, "", true); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("restore of a truncated dump: %v", err)
	}
	os.WriteFile(dump, orig, 0o600)
	if n := s.Count(t, "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'lawbox_restore_%'"); n != 0 {
		t.Error("a failed restore left its unfinished copy")
	}
	if n := s.Count(t, "practice", "SELECT count(*) FROM matters"); n != 20 {
		t.Errorf("a failed restore changed practice: %d matters", n)
	}

	// Export: a current dump in pg_dump's custom format.
	var b strings.Builder
	if err := e.Export(ctx, "practice", &b); err != nil || !strings.HasPrefix(b.String(), "PGDMP") {
		t.Errorf("export: %v (%d bytes)", err, b.Len())
	}
	if err := e.Export(ctx, "nope", &b); !errors.Is(err, appliance.ErrNotFound) {
		t.Errorf("export of an unknown database: %v", err)
	}
}

// Disaster recovery: both units are lost; a new unit with an empty database gets the recovery identity of
// the sheet and the offsite target, lists the backups that are only there, and restores every database,
// roles included.
func TestDisasterRecovery(t *testing.T) {
	old := pgtest.Start(t)
	old.Exec(t, "postgres", "CREATE ROLE practice_app LOGIN PASSWORD 'pw'", "CREATE DATABASE practice OWNER practice_app", "CREATE DATABASE billing")
	old.Exec(t, "practice", "SET ROLE practice_app", "CREATE TABLE matters (id int PRIMARY KEY, client text)", "INSERT INTO matters SELECT g, md5(g::text) FROM generate_series(1, 4000) g")
	old.Exec(t, "billing", "CREATE TABLE invoices (id int)", "INSERT INTO invoices SELECT generate_series(1, 77)")
	gw := startS3(t, t.TempDir())
	os.Mkdir(filepath.Join(gw.dir, "office"), 0o755)
	ctx := context.Background()
	oldSvc := newService(t, old)
	if err := oldSvc.Store.PutJSON(state.BucketConfig, "network", map[string]string{"address": "192.0.2.10/24"}); err != nil {
		t.Fatal(err)
	}
	sheet, err := oldSvc.CreateIdentity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := oldSvc.SetTargets(ctx, []appliance.BackupTarget{gw.target("office")}); err != nil {
		t.Fatal(err)
	}
	b, err := oldSvc.RunBackup(ctx, KindDump)
	if err != nil {
		t.Fatal(err)
	}

	// The backup carries its own restore guide, in plain text, and the unit's settings, encrypted.
	guide, err := os.ReadFile(filepath.Join(gw.dir, "office", b.ID, guideName))
	if err != nil || !strings.Contains(string(guide), must(age.ParseX25519Identity(sheet)).Recipient().String()) || !strings.Contains(string(guide), "pg_restore") || strings.Contains(string(guide), sheet) {
		t.Errorf("restore guide (%v):\n%s", err, guide)
	}
	conf, err := os.ReadFile(filepath.Join(gw.dir, "office", b.ID, configName))
	if err != nil || strings.Contains(string(conf), "192.0.2.10") {
		t.Errorf("the settings are missing or readable in the bucket (%v)", err)
	}

	blank := pgtest.Start(t)
	svc := newService(t, blank)
	if err := svc.ImportIdentity(ctx, "AGE-SECRET-KEY-1NOTAKEY"); !errors.Is(err, appliance.ErrBadInput) {
		t.Errorf("a mistyped identity: %v", err)
	}
	if err := svc.ImportIdentity(ctx, "  "+sheet+"\n"); err != nil {
		t.Fatal(err)
	}
	if err := svc.ImportIdentity(ctx, sheet); err != nil {
		t.Errorf("the same identity again: %v", err)
	}
	if err := svc.ImportIdentity(ctx, must(age.GenerateX25519Identity()).String()); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("another identity over the first: %v", err)
	}
	if err := svc.SetTargets(ctx, []appliance.BackupTarget{gw.target("office")}); err != nil {
		t.Fatal(err)
	}
	st, err := svc.Backups(ctx)
	if err != nil || len(st.Backups) != 1 || st.Backups[0].ID != b.ID || len(st.Backups[0].Targets) != 1 || !strings.HasPrefix(st.Backups[0].Targets[0], "s3://") {
		t.Fatalf("the new unit lists %+v (%v)", st.Backups, err)
	}
	if strings.Join(st.Backups[0].Databases, ",") != "billing,practice" {
		t.Errorf("databases in the backup: %v", st.Backups[0].Databases)
	}
	res, err := svc.RestoreBackup(ctx, b.ID, appliance.BackupRestore{})
	if err != nil || len(res.Databases) != 2 || !strings.HasPrefix(res.Target, "s3://") {
		t.Fatalf("restore: %+v %v", res, err)
	}
	t.Logf("restored %d databases from %s in %.1f s", len(res.Databases), res.Target, res.Seconds)
	if n := blank.Count(t, "practice", "SELECT count(*) FROM matters"); n != 4000 {
		t.Errorf("practice: %d matters", n)
	}
	if n := blank.Count(t, "billing", "SELECT count(*) FROM invoices"); n != 77 {
		t.Errorf("billing: %d invoices", n)
	}
	var settings struct {
		Buckets map[string]map[string]json.RawMessage
	}
	bucket := toTarget(gw.target("office"))
	m, err := readManifest(ctx, bucket, b.ID+"/"+manifestName, must(svc.loadIdentity()))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range m.Objects {
		if strings.HasSuffix(o.Key, configName) {
			r, err := open(ctx, bucket, o, must(svc.loadIdentity()))
			if err != nil {
				t.Fatal(err)
			}
			err = json.NewDecoder(r).Decode(&settings)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if !strings.Contains(string(settings.Buckets[state.BucketConfig]["network"]), "192.0.2.10/24") {
		t.Errorf("the backup's settings: %v", settings.Buckets)
	}
	if n := blank.Count(t, "postgres", "SELECT count(*) FROM pg_authid WHERE rolname = 'practice_app' AND rolcanlogin AND rolpassword LIKE 'SCRAM-SHA-256$%'"); n != 1 {
		t.Error("the application's role did not come back with its password")
	}
}

func newService(t *testing.T, s *pgtest.Server) *Service {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEngine(t, s, target.Dir{Path: t.TempDir()})
	e.Store, e.Log = st, slog.New(slog.NewTextHandler(io.Discard, nil))
	return NewService(e, func(context.Context) bool { return true }, 30)
}
