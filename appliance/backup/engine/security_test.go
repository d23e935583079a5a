package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql/pgtest"
)

// The owner of an office database sets traps for the superuser sessions the unit opens in that database:
// a search_path that puts its own schema before the catalog with a function named like a catalog one, an
// index whose function refuses to run as a superuser, and a role setting holding a newline that would be a
// statement of its own in a script run line by line. Backup, verification and restore must run none of
// the owner's code as superuser and must never make the owner a superuser.
func TestOwnerCannotRunCodeAsSuperuser(t *testing.T) {
	s := pgtest.Start(t)
	s.Exec(t, "postgres", "CREATE ROLE practice_app LOGIN PASSWORD 'pw'", "CREATE DATABASE practice OWNER practice_app")
	s.Exec(t, "practice", "SET ROLE practice_app",
		"CREATE TABLE matters (id int PRIMARY KEY, client text NOT NULL)",
		"INSERT INTO matters SELECT g, 'client ' || g FROM generate_series(1, 200) g")
	s.Exec(t, "practice", append([]string{"SET ROLE practice_app"}, ownerTraps(t, "testdata/owner_traps.sql")...)...)
	local := target.Dir{Path: t.TempDir()}
	e := newEngine(t, s, local)
	ctx := context.Background()
	m, err := e.Backup(ctx, KindDump)
	if err != nil {
		t.Fatalf("backup of a database with the owner's traps: %v", err)
	}
	if _, err := e.Verify(ctx, local, m.ID); err != nil {
		t.Fatalf("verify: %v", err)
	}
	// A restore onto a server that lacks the role (as after a disaster): the role comes back, not as a
	// superuser, and the index's function ran as the owner.
	s.Exec(t, "postgres", "DROP DATABASE practice", "DROP ROLE practice_app")
	if _, err := e.Restore(ctx, local, m.ID, nil, "", false); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if n := s.Count(t, "postgres", "SELECT count(*) FROM pg_roles WHERE rolname = 'practice_app' AND NOT rolsuper AND rolcanlogin"); n != 1 {
		t.Error("the restored practice_app is missing, cannot log in, or is a superuser")
	}
	if n := s.Count(t, "practice", "SELECT count(*) FROM pg_catalog.pg_indexes WHERE indexname = 'matters_trap'"); n != 1 {
		t.Error("the index on the owner's function was not restored")
	}
	if n := s.Count(t, "practice", "SELECT count(*) FROM public.matters"); n != 200 {
		t.Errorf("restored %d matters, want 200", n)
	}
}

// ownerTraps reads the statements of the owner's traps (testdata/owner_traps.sql).
func ownerTraps(t testing.TB, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, q := range strings.Split(string(b), "\n-- next\n") {
		if q = strings.TrimSpace(q); q != "" {
			out = append(out, q)
		}
	}
	return out
}

// A restored table whose values differ from the dump's, with the same number of rows, fails verification.
func TestVerifyComparesValues(t *testing.T) {
	s := pgtest.Start(t)
	s.Exec(t, "postgres", "CREATE ROLE practice_app LOGIN PASSWORD 'pw'", "CREATE DATABASE practice OWNER practice_app")
	s.Exec(t, "practice", "SET ROLE practice_app",
		"CREATE TABLE matters (id int PRIMARY KEY, client text NOT NULL, r text)",
		"INSERT INTO matters SELECT g, 'client ' || g, 'x' FROM generate_series(1, 100) g",
		// json has no hash function: this table is summed by its rows' text
		"CREATE TABLE notes (id int, body json)",
		`INSERT INTO notes SELECT g, json_build_object('note', g) FROM generate_series(1, 50) g`)
	e := newEngine(t, s, target.Dir{Path: t.TempDir()})
	ctx := context.Background()
	m, err := e.Backup(ctx, KindDump)
	if err != nil {
		t.Fatal(err)
	}
	d := m.Databases[0]
	c, err := s.Connect("practice")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := checkRows(ctx, c, d); err != nil {
		t.Fatalf("checkRows on the unchanged database: %v", err)
	}
	if !strings.HasPrefix(d.Sums["public.matters"], "r:") || !strings.HasPrefix(d.Sums["public.notes"], "t:") {
		t.Errorf("sums %v: want matters hashed by row, notes (json) by text", d.Sums)
	}
	for _, q := range []string{"UPDATE matters SET client = 'client 1000' WHERE id = 7", `UPDATE notes SET body = '{"note": 1000}' WHERE id = 7`} {
		s.Exec(t, "practice", q)
		err = checkRows(ctx, c, d)
		if err == nil || !strings.Contains(err.Error(), "other values") {
			t.Errorf("checkRows after %s = %v, want a checksum mismatch", q, err)
		}
		s.Exec(t, "practice", strings.NewReplacer("1000", "7").Replace(q))
	}
}

// A base copy's tar that tries to write outside the scratch directory (a link out, then a file through
// it; a link to an absolute path; a path with ..) is refused and writes nothing outside.
func TestUntarStaysInside(t *testing.T) {
	type entry struct {
		name, link string
		body       string
	}
	for name, entries := range map[string][]entry{
		"link then file through it": {{name: "out", link: "../outside"}, {name: "out/owned", body: "x"}},
		"absolute link":             {{name: "abs", link: "/tmp"}, {name: "abs/owned", body: "x"}},
		"dot-dot path":              {{name: "../owned", body: "x"}},
		"link through a local link": {{name: "d", link: "."}, {name: "d/../../owned", body: "x"}},
	} {
		t.Run(name, func(t *testing.T) {
			top := t.TempDir()
			os.Mkdir(filepath.Join(top, "outside"), 0o755)
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, e := range entries {
				h := &tar.Header{Name: e.name, Mode: 0o600, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
				if e.link != "" {
					h = &tar.Header{Name: e.name, Linkname: e.link, Typeflag: tar.TypeSymlink}
				}
				if err := tw.WriteHeader(h); err != nil {
					t.Fatal(err)
				}
				tw.Write([]byte(e.body))
			}
			tw.Close()
			err := untar(&buf, filepath.Join(top, "data"), os.Getuid(), os.Getgid())
			if err == nil {
				t.Error("untar accepted it")
			}
			for _, p := range []string{filepath.Join(top, "outside", "owned"), filepath.Join(top, "owned"), "/tmp/owned"} {
				if _, serr := os.Stat(p); serr == nil {
					t.Errorf("untar wrote %s", p)
				}
			}
		})
	}
}
