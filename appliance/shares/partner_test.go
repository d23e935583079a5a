package shares

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

func newTestServer(t *testing.T) *Server {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &Server{Log: slog.New(slog.DiscardHandler), Store: st}
}

// The active unit hands its shares and accounts to the standby, which takes them as they are and refuses
// changes of its own; a unit that leads never takes the other's.
func TestSettingsFollowThePair(t *testing.T) {
	a, b := newTestServer(t), newTestServer(t)
	a.Roles, b.Roles = &appliance.Feed[appliance.PairRole]{}, &appliance.Feed[appliance.PairRole]{}
	a.Roles.Set(appliance.PairActive)
	b.Roles.Set(appliance.PairStandby)
	link := httptest.NewServer(b.LinkHandler())
	defer link.Close()
	a.Send = LinkClient(func(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, link.URL+path, body)
		if err != nil {
			return nil, err
		}
		return http.DefaultClient.Do(req)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.RunSync(ctx)
	if err := a.PutAccount(ctx, "marie", "a long password"); err != nil {
		t.Fatal(err)
	}
	if err := a.PutShare(ctx, appliance.FileShare{Name: "Clients", ReadWrite: []string{"marie"}}); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if st := b.Shares(ctx); len(st.Shares) == 1 && len(st.Accounts) == 1 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the standby never got the settings: %+v", b.Shares(ctx))
		}
	}
	b.mu.Lock()
	same := string(b.cfg.smbpasswd()) == string(a.cfg.smbpasswd())
	b.mu.Unlock()
	if !same {
		t.Error("the standby's accounts have other hashes than the active unit's")
	}
	if err := b.PutShare(ctx, appliance.FileShare{Name: "Other", ReadOnly: []string{"marie"}}); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("a change on the standby: %v", err)
	}
	// After a failover B leads: it keeps its settings and refuses A's (A, back, must take B's instead).
	b.Roles.Set(appliance.PairActive)
	if err := a.Send(ctx, []byte(`{"shares":[],"accounts":[]}`)); err == nil {
		t.Error("a unit that leads took the other's settings")
	}
	if st := b.Shares(ctx); len(st.Shares) != 1 {
		t.Errorf("B's settings after the refused send: %+v", st)
	}
	if err := b.PutShare(ctx, appliance.FileShare{Name: "Other", ReadOnly: []string{"marie"}}); err != nil {
		t.Errorf("a change on the unit that leads: %v", err)
	}
}
