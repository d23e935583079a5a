package database

import (
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

// The lag graph survives a restart: samples of the last hour come back in order, older ones do not.
func TestLagHistorySurvivesRestart(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	before := &Manager{Store: st, Log: log}
	now := time.Now()
	for i := 400; i >= 0; i-- { // one every 10 s for 66 minutes, the newest now
		before.addLag(appliance.LagPoint{Time: now.Add(-time.Duration(i) * lagEvery), Seconds: float64(i), Bytes: int64(i)})
	}
	after := &Manager{Store: st, Log: log}
	after.loadLag(now)
	h := after.lagHistory
	if len(h) != lagKeep || h[len(h)-1].Bytes != 0 || h[0].Bytes != lagKeep-1 || !slices.IsSortedFunc(h, func(a, b appliance.LagPoint) int { return a.Time.Compare(b.Time) }) {
		t.Fatalf("after a restart: %d samples, first %+v, last %+v", len(h), h[0], h[len(h)-1])
	}
	later := &Manager{Store: st, Log: log}
	later.loadLag(now.Add(2 * time.Hour))
	if len(later.lagHistory) != 0 {
		t.Errorf("samples older than an hour came back: %d", len(later.lagHistory))
	}
}
