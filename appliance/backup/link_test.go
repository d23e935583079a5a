package backup

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/engine"
	"github.com/lawbox/appliance/appliance/pgsql/pgtest"
	"github.com/lawbox/appliance/appliance/shares"
	"github.com/lawbox/appliance/appliance/state"
)

// "Back up now" on the production unit of a pair: the mirror (here a real PostgreSQL server and engine
// behind the link handler) takes the backup and says so; what it refuses comes back with its kind; a
// mirror that cannot be reached is "unavailable"; a unit that does not take backups never passes a link
// request on.
func TestBackupNowOnProductionRunsOnTheMirror(t *testing.T) {
	srv := pgtest.Start(t)
	srv.Exec(t, "postgres", "CREATE DATABASE practice")
	srv.Exec(t, "practice", "CREATE TABLE matters (id int PRIMARY KEY)", "INSERT INTO matters SELECT generate_series(1, 100)")
	mirror := newService(t, srv)
	ctx := context.Background()
	if _, err := mirror.CreateIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	link := httptest.NewServer(mirror.LinkHandler("unit-b"))
	defer link.Close()
	call := func(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, link.URL+path, body)
		if err != nil {
			return nil, err
		}
		return http.DefaultClient.Do(req)
	}
	production := &Service{Engine: &engine.Engine{}, ShouldRun: func(context.Context) bool { return false }, Partner: LinkClient(call)}

	b, err := production.RunBackup(ctx, engine.KindDump)
	if err != nil {
		t.Fatal(err)
	}
	if b.TakenOn != "unit-b" || b.Kind != engine.KindDump || !strings.Contains(strings.Join(b.Databases, ","), "practice") {
		t.Errorf("backup taken through the link: %+v", b)
	}
	if st, err := mirror.Backups(ctx); err != nil || len(st.Backups) != 1 {
		t.Errorf("the mirror's backups: %+v %v", st, err)
	}
	if _, err := production.RunBackup(ctx, "everything"); !errors.Is(err, appliance.ErrBadInput) || !strings.Contains(err.Error(), "other unit") {
		t.Errorf("a kind the mirror refuses: %v", err)
	}
	mirror.ShouldRun = func(context.Context) bool { return false }
	if _, err := production.RunBackup(ctx, engine.KindDump); !errors.Is(err, appliance.ErrConflict) || !strings.Contains(err.Error(), "does not take the backups either") {
		t.Errorf("a partner that does not take backups: %v", err)
	}
	if st, _ := mirror.Backups(ctx); len(st.Backups) != 1 {
		t.Errorf("a unit that does not take backups took one: %+v", st.Backups)
	}
	link.Close()
	if _, err := production.RunBackup(ctx, engine.KindDump); !errors.Is(err, appliance.ErrUnavailable) {
		t.Errorf("an unreachable mirror: %v", err)
	}
}

// A new unit takes the file shares and accounts of a lost one from its backup (the NT hashes too, so the
// same passwords work), and says what it did not restore; a documents backup has no configuration.
func TestRestoreConfigOntoANewUnit(t *testing.T) {
	srv := pgtest.Start(t)
	old := newService(t, srv)
	ctx := context.Background()
	if _, err := old.CreateIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	oldShares := &shares.Server{Log: old.Engine.Log, Store: old.Engine.Store}
	if err := oldShares.PutAccount(ctx, "marie", "Marie's long password"); err != nil {
		t.Fatal(err)
	}
	if err := oldShares.PutShare(ctx, appliance.FileShare{Name: "Clients", ReadWrite: []string{"marie"}, Encrypt: true}); err != nil {
		t.Fatal(err)
	}
	b, err := old.RunBackup(ctx, engine.KindDump)
	if err != nil {
		t.Fatal(err)
	}
	// The new unit: its own state store, the same backups (the recovery identity is the cluster's here,
	// as after its import).
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := newEngine(t, srv, old.Engine.Local)
	e.Store, e.Log = st, old.Engine.Log
	fresh := NewService(e, func(context.Context) bool { return true }, 30)
	newShares := &shares.Server{Log: old.Engine.Log, Store: st}
	fresh.ConfigParts = []ConfigPart{func(ctx context.Context, b engine.Buckets) (string, error) { return newShares.RestoreConfig(ctx, b) }}
	res, err := fresh.RestoreConfig(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Restored) != 1 || !strings.Contains(res.Restored[0], "1 file shares and 1 file accounts") || len(res.NotRestored) == 0 {
		t.Errorf("restore said %+v", res)
	}
	got, want := newShares.Shares(ctx), oldShares.Shares(ctx)
	if len(got.Shares) != 1 || got.Shares[0].Name != "Clients" || !got.Shares[0].Encrypt || len(got.Accounts) != 1 || got.Accounts[0] != want.Accounts[0] {
		t.Errorf("restored shares %+v, want %+v", got, want)
	}
	if _, err := fresh.RestoreConfig(ctx, "20990101T000000Z-dump"); err == nil {
		t.Error("a backup that does not exist restored")
	}
}
