package database

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance/state"
)

// An external upstream's password is kept among the sealed secrets, not with the role: one an older
// firmware kept with the role moves there once they open; while they are sealed the mirror waits.
func TestUpstreamPasswordSealed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := state.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	old := roleConfig{Role: mirror, Since: time.Now(), Upstream: &upstream{Host: "db.office.example", Port: 5432, User: "repl", Password: "server password", Slot: "lawbox_unit"}}
	if err := st.PutJSON(state.BucketConfig, configKey, old); err != nil {
		t.Fatal(err)
	}
	st.SealBuckets(state.BucketSecrets)
	if err := st.Seal(); err != nil {
		t.Fatal(err)
	}
	m := &Manager{Log: slog.New(slog.DiscardHandler), Store: st}
	if c := m.roleConfig(); c.Upstream == nil || c.Upstream.Password != "server password" || c.Upstream.sealed {
		t.Fatalf("the older firmware's password while sealed: %+v", c.Upstream)
	}
	key := bytes.Repeat([]byte{1}, state.SealKeySize)
	if err := st.Unseal(key); err != nil {
		t.Fatal(err)
	}
	if c := m.roleConfig(); c.Upstream.Password != "server password" {
		t.Fatalf("after the move: %+v", c.Upstream)
	}
	raw, err := st.Get(state.BucketConfig, configKey)
	if err != nil || bytes.Contains(raw, []byte("server password")) || !bytes.Contains(raw, []byte("db.office.example")) {
		t.Errorf("the role as kept: %s %v", raw, err)
	}
	st.Close()

	st, err = state.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SealBuckets(state.BucketSecrets)
	if err := st.Seal(); err != nil {
		t.Fatal(err)
	}
	m.Store = st
	want := m.desired()
	if want.Kind != mirror || want.Up == nil || !want.Up.sealed || want.Up.Password != "" {
		t.Fatalf("sealed: %+v %+v", want, want.Up)
	}
	var w waiting
	if _, err := m.prepare(t.Context(), want); !errors.As(err, &w) {
		t.Errorf("a mirror whose upstream password is sealed: %v, want it to wait", err)
	}
	if err := st.Unseal(key); err != nil {
		t.Fatal(err)
	}
	if up := m.desired().Up; up == nil || up.sealed || up.Password != "server password" || m.desired().same(want) {
		t.Errorf("unsealed: %+v", up)
	}
	// Going back to a firmware that does not read the secrets: the password is with the role again.
	if err := errors.Join(st.Clear(), m.ForOlderFirmware()); err != nil {
		t.Fatal(err)
	}
	var kept roleConfig
	if err := st.GetJSON(state.BucketConfig, configKey, &kept); err != nil || kept.Upstream == nil || kept.Upstream.Password != "server password" {
		t.Errorf("for an older firmware: %+v %v", kept.Upstream, err)
	}
	if _, err := st.Get(state.BucketSecrets, upstreamPasswordKey); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("the secret is still kept: %v", err)
	}
}
