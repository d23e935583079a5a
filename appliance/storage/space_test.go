package storage

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
)

func TestSpaceAlerts(t *testing.T) {
	for _, c := range []struct {
		percent float64
		level   string
	}{{50, ""}, {84.9, ""}, {85, "warning"}, {94.9, "warning"}, {95, "critical"}, {100, "critical"}} {
		a := spaceAlerts(appliance.Space{Name: "data", Percent: c.percent, FreeBytes: 2_500_000_000})
		switch {
		case c.level == "" && len(a) != 0, c.level != "" && (len(a) != 1 || a[0].Level != c.level):
			t.Errorf("%.1f %%: %+v, want %q", c.percent, a, c.level)
		case c.level != "" && !strings.Contains(a[0].Message, "the data filesystem is") || c.level != "" && !strings.Contains(a[0].Message, "2.5 GB free"):
			t.Errorf("%.1f %%: %q", c.percent, a[0].Message)
		}
	}
}

// One point a day (the last reading of the day), thirty days kept.
func TestSpaceHistory(t *testing.T) {
	var h []appliance.SpacePoint
	start := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	for i := range 40 {
		h = addPoint(h, start.Add(time.Duration(i)*24*time.Hour), int64(i))
		h = addPoint(h, start.Add(time.Duration(i)*24*time.Hour+time.Hour), int64(i)*10)
	}
	if len(h) != 30 || h[0].UsedBytes != 100 || h[29].UsedBytes != 390 || !h[29].Day.Equal(time.Date(2026, 12, 10, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("history: %d points, first %+v, last %+v", len(h), h[0], h[len(h)-1])
	}
}

// statfs and du on a real filesystem: a 1 MiB file takes at least 1 MiB; a missing directory takes none.
func TestSpaceMeasures(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "db", "base"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "db", "base", "1"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if n := du(context.Background(), filepath.Join(dir, "db")); n < 1<<20 || n > 2<<20 {
		t.Errorf("du = %d, want about 1 MiB", n)
	}
	if n := du(context.Background(), filepath.Join(dir, "missing")); n != 0 {
		t.Errorf("du of a missing directory = %d", n)
	}
	sp, err := statfs(dir)
	if err != nil || sp.SizeBytes <= 0 || sp.UsedBytes <= 0 || sp.UsedBytes > sp.SizeBytes || sp.Percent <= 0 || sp.Percent > 100 {
		t.Errorf("statfs = %+v, %v", sp, err)
	}
}
