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

// The day's graph keeps the highest lag of every 5 minutes, so a spike between two samples of the hour's
// graph is not lost once the hour has passed; the periods that ended survive a restart.
func TestLagDayKeepsEachPeriodsHighest(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := &Manager{Store: st, Log: log}
	start := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	for i := range 90 { // 15 minutes, a sample every 10 s; a spike of 42 s in the second period
		s := float64(i % 3)
		if i == 40 {
			s = 42
		}
		m.addLag(appliance.LagPoint{Time: start.Add(time.Duration(i) * lagEvery), Seconds: s, Bytes: int64(s * 1000)})
	}
	want := []appliance.LagPoint{{Time: start, Seconds: 2, Bytes: 2000}, {Time: start.Add(5 * time.Minute), Seconds: 42, Bytes: 42000},
		{Time: start.Add(10 * time.Minute), Seconds: 2, Bytes: 2000}}
	if !slices.Equal(m.lagDay, want) {
		t.Fatalf("the day's periods: %+v, want %+v", m.lagDay, want)
	}
	after := &Manager{Store: st, Log: log}
	after.loadLag(start.Add(15 * time.Minute))
	if !slices.Equal(after.lagDay, want[:2]) {
		t.Errorf("after a restart: %+v, want the two periods that ended %+v", after.lagDay, want[:2])
	}
	after.loadLag(start.Add(25 * time.Hour))
	if len(after.lagDay) != 0 {
		t.Errorf("periods older than a day came back: %+v", after.lagDay)
	}
}
