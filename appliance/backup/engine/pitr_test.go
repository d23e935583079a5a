package engine

import (
	"bytes"
	"context"
	"errors"
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

// A mistake undone with a point-in-time restore: a base copy, more work, then every matter deleted; the
// WAL is shipped sealed; the database as it was one second before the mistake comes back under a new name
// with every row committed before that moment. A moment past the archived WAL, or before the first base
// copy, is refused with what the backups reach; a dump is not a base copy; the base copy verifies; WAL
// older than the oldest base copy is pruned.
func TestPointInTimeRestore(t *testing.T) {
	s := pgtest.Start(t)
	s.Exec(t, "postgres", "CREATE ROLE practice_app LOGIN PASSWORD 'pw'", "CREATE DATABASE practice OWNER practice_app")
	s.Exec(t, "practice", "SET ROLE practice_app", "CREATE TABLE matters (id int PRIMARY KEY, client text)",
		"INSERT INTO matters SELECT g, 'client ' || g FROM generate_series(1, 1000) g")
	local := target.Dir{Path: t.TempDir()}
	e := newEngine(t, s, local)
	ctx := context.Background()
	base, err := e.Backup(ctx, KindBase)
	if err != nil {
		t.Fatal(err)
	}
	if base.Timeline != 1 || base.LSN == "" || len(base.Databases) != 1 {
		t.Fatalf("base manifest: %+v", base)
	}
	s.Exec(t, "practice", "INSERT INTO matters SELECT g, 'client ' || g FROM generate_series(1001, 1500) g")
	before := time.Now()
	time.Sleep(1200 * time.Millisecond)
	s.Exec(t, "practice", "DELETE FROM matters")
	s.ArchiveNow(t)
	n, err := e.ShipWAL(ctx)
	if err != nil || n == 0 {
		t.Fatalf("shipped %d WAL files: %v", n, err)
	}
	if left, _ := e.archived(); len(left) != 0 {
		t.Errorf("WAL left unshipped: %v", left)
	}

	rs, err := e.RestoreTo(ctx, local, before, []string{"practice"}, "practice_before_mistake", false)
	if err != nil || len(rs) != 1 || rs[0].Rows != 1500 {
		t.Fatalf("point-in-time restore: %+v %v", rs, err)
	}
	if n := s.Count(t, "practice_before_mistake", "SELECT count(*) FROM matters"); n != 1500 {
		t.Errorf("the database before the mistake has %d matters", n)
	}
	if n := s.Count(t, "practice", "SELECT count(*) FROM matters"); n != 0 {
		t.Errorf("the current database changed: %d matters", n)
	}
	if _, err := e.RestoreTo(ctx, local, time.Now().Add(time.Hour), []string{"practice"}, "practice_future", false); !errors.Is(err, appliance.ErrConflict) || !strings.Contains(err.Error(), "reach") {
		t.Errorf("a moment past the archived WAL: %v", err)
	}
	if _, err := e.RestoreTo(ctx, local, base.Created.Add(-time.Hour), nil, "", false); !errors.Is(err, appliance.ErrNotFound) {
		t.Errorf("a moment before the first base copy: %v", err)
	}
	if v, err := e.Verify(ctx, local, base.ID); err != nil || !v.OK {
		t.Errorf("verify the base copy: %+v %v", v, err)
	}

	time.Sleep(time.Second) // a new backup id
	dump, err := e.Backup(ctx, KindDump)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Restore(ctx, local, base.ID, nil, "x", false); !errors.Is(err, appliance.ErrBadInput) {
		t.Errorf("restore a base copy as a dump: %v", err)
	}
	s.ArchiveNow(t)
	time.Sleep(time.Second)
	second, err := e.Backup(ctx, KindBase)
	if err != nil {
		t.Fatal(err)
	}
	s.ArchiveNow(t)
	if _, err := e.ShipWAL(ctx); err != nil {
		t.Fatal(err)
	}
	gone, err := e.pruneWAL(ctx, local, []*Manifest{dump, second})
	if err != nil || gone == 0 {
		t.Errorf("pruned %d WAL files older than the second base copy: %v", gone, err)
	}
	keys, _ := local.List(ctx)
	start, _ := second.startSegment()
	for _, k := range keys {
		if name, ok := strings.CutPrefix(k, WALPrefix); ok && !strings.Contains(name, "history") && name[8:24] < start {
			t.Errorf("%s is older than the oldest base copy and was kept", k)
		}
	}
}

// A point-in-time restore starts from the newest base copy that was complete at that moment: one still
// being taken then (the scheduled copy of a busy night) ends after it and could not stop there.
func TestPickBase(t *testing.T) {
	at := func(hm string) time.Time {
		v, err := time.Parse("15:04", hm)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ms := []*Manifest{
		{ID: "b1", Kind: KindBase, Created: at("10:00"), Ended: at("10:05")},
		{ID: "d1", Kind: KindDump, Created: at("10:10")},
		{ID: "b2", Kind: KindBase, Created: at("10:20"), Ended: at("10:40")},
		{ID: "b0", Kind: KindBase, Created: at("09:00")}, // no end recorded: its start
	}
	for _, c := range []struct{ at, want string }{
		{"09:30", "b0"}, {"10:04", "b0"}, {"10:05", "b1"}, {"10:30", "b1"}, {"10:40", "b2"}, {"12:00", "b2"},
	} {
		b, err := pickBase(ms, at(c.at))
		if err != nil || b.ID != c.want {
			t.Errorf("at %s: %v %v, want %s", c.at, b, err, c.want)
		}
	}
	if _, err := pickBase(ms, at("08:59")); !errors.Is(err, appliance.ErrNotFound) || !strings.Contains(err.Error(), "09:00") {
		t.Errorf("before every base copy: %v", err)
	}
	if _, err := pickBase(ms[1:2], at("12:00")); !errors.Is(err, appliance.ErrNotFound) || !strings.Contains(err.Error(), "no base copy") {
		t.Errorf("no base copy: %v", err)
	}
}

// A base copy's first WAL segment is the one its backup_label names, whatever the cluster's segment size
// (the unit's are 1 MB); a copy recorded without it is of a cluster with 16 MB segments.
func TestStartSegment(t *testing.T) {
	for _, c := range []struct {
		m    Manifest
		want string
	}{
		{Manifest{LSN: "0/2000028", WALFile: "000000010000000000000020"}, "0000000000000020"},
		{Manifest{LSN: "1/A3000060", WALFile: "0000000300000001000000A3"}, "00000001000000A3"},
		{Manifest{LSN: "1/A3000060"}, "00000001000000A3"},
	} {
		if got, err := c.m.startSegment(); err != nil || got != c.want {
			t.Errorf("%+v: %s %v, want %s", c.m, got, err, c.want)
		}
	}
	if _, err := (&Manifest{LSN: "nonsense"}).startSegment(); err == nil {
		t.Error("a WAL position that is none was taken")
	}
}

// A WAL object proves who archived it: one written at a target by anyone else (encrypted to the public key,
// which is no secret), one sealed for another identity, and a genuine one stored under another segment's
// name are refused, and nothing of them is left for the recovery.
func TestWALIsAuthenticated(t *testing.T) {
	ctx := context.Background()
	id, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	dir := target.Dir{Path: t.TempDir()}
	const a, b = "000000010000000000000003", "000000010000000000000004"
	segment := bytes.Repeat([]byte("committed work "), 1000)
	put := func(name string, plain []byte) string {
		key := WALPrefix + name + ".zst.age"
		if _, err := seal(ctx, dir, key, bytes.NewReader(plain), id.Recipient()); err != nil {
			t.Fatal(err)
		}
		return key
	}
	out := filepath.Join(t.TempDir(), "segment")
	if err := fetch(ctx, dir, put(a, sealWAL(id, a, segment)), a, id, out); err != nil {
		t.Fatalf("a genuine segment: %v", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, segment) {
		t.Fatalf("a genuine segment came back as %d other bytes", len(got))
	}
	for _, c := range []struct {
		what  string
		plain []byte
		want  string
	}{
		{"no authentication", segment, "no authentication"},
		{"another identity's MAC", sealWAL(other, b, segment), "forged or altered"},
		{"a genuine one under b's name", sealWAL(id, a, segment), "forged or altered"},
	} {
		os.Remove(out)
		err := fetch(ctx, dir, put(b, c.plain), b, id, out)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.what, err, c.want)
		}
		if _, serr := os.Stat(out); serr == nil {
			t.Errorf("%s: the refused segment was left for the recovery", c.what)
		}
	}
}
