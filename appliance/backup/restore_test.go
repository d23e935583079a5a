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
	"github.com/lawbox/appliance/appliance/backup/engine"
	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql/pgtest"
	"github.com/lawbox/appliance/appliance/state"
)

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
	if err := oldSvc.Engine.Store.PutJSON(state.BucketConfig, "network", map[string]string{"address": "192.0.2.10/24"}); err != nil {
		t.Fatal(err)
	}
	sheet, err := oldSvc.CreateIdentity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := oldSvc.SetTargets(ctx, []appliance.BackupTarget{gw.target("office")}); err != nil {
		t.Fatal(err)
	}
	b, err := oldSvc.RunBackup(ctx, engine.KindDump)
	if err != nil {
		t.Fatal(err)
	}

	// The backup carries its own restore guide, in plain text, and the unit's settings, encrypted.
	guide, err := os.ReadFile(filepath.Join(gw.dir, "office", b.ID, "RESTORE.txt"))
	if err != nil || !strings.Contains(string(guide), must(age.ParseX25519Identity(sheet)).Recipient().String()) || !strings.Contains(string(guide), "pg_restore") || strings.Contains(string(guide), sheet) {
		t.Errorf("restore guide (%v):\n%s", err, guide)
	}
	conf, err := os.ReadFile(filepath.Join(gw.dir, "office", b.ID, "config.json.zst.age"))
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
	m, err := engine.ReadManifest(ctx, bucket, b.ID+"/"+engine.ManifestName, must(svc.loadIdentity()))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range m.Objects {
		if strings.HasSuffix(o.Key, "/config.json.zst.age") {
			r, err := engine.Open(ctx, bucket, o, must(svc.loadIdentity()))
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

// newEngine is an engine on the test's server; the service it is given to keeps its recovery identity.
func newEngine(t testing.TB, s *pgtest.Server, local target.Target) *engine.Engine {
	return &engine.Engine{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), BinDir: pgtest.BinDir, Socket: s.Dir, Port: s.Port,
		WALDir: s.WALDir(), Scratch: filepath.Join(s.Dir, "scratch"), Local: local, Firmware: "test"}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
