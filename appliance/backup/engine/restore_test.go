package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql/pgtest"
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
