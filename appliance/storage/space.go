package storage

import (
	"context"
	iofs "io/fs"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
	"github.com/lawbox/appliance/hw/fs"
	"golang.org/x/sys/unix"
)

// The filesystems' space: df's figures at every status read (statfs is cheap), what each volume takes
// every 10 minutes (a walk of its files), and the use once a day for the last 30 days, kept in the store.

const (
	spaceKey     = "storage-space"
	spaceEvery   = 10 * time.Minute
	spaceHistory = 30
)

// Volume is a directory on an array's filesystem whose use the status shows.
type Volume struct {
	Name string // "database"
	Dir  string // relative to the filesystem's mount point
}

// spaceState is what the manager keeps between status reads.
type spaceState struct {
	parts   map[string][]appliance.SpacePart // filesystem -> its volumes, as last measured
	history map[string][]appliance.SpacePoint
}

// statfs is the filesystem at dir: its size, use and free space as df reports them.
func statfs(dir string) (appliance.Space, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return appliance.Space{}, err
	}
	bs := int64(st.Bsize)
	sp := appliance.Space{SizeBytes: int64(st.Blocks) * bs, UsedBytes: int64(st.Blocks-st.Bfree) * bs, FreeBytes: int64(st.Bavail) * bs}
	if total := sp.UsedBytes + sp.FreeBytes; total > 0 {
		sp.Percent = float64(sp.UsedBytes) * 100 / float64(total)
	}
	return sp, nil
}

// spaceAlerts warns of a filesystem filling up.
func spaceAlerts(sp appliance.Space) []appliance.Alert {
	full := strconv.FormatFloat(sp.Percent, 'f', 0, 64) + " %"
	switch {
	case sp.Percent >= appliance.SpaceCritical:
		return []appliance.Alert{appliance.NewAlert("critical", "the %s filesystem is %s full (%s free): writes will soon fail; delete old backups or documents, or add a larger disk",
			sp.Name, full, bytesIn(sp.FreeBytes))}
	case sp.Percent >= appliance.SpaceWarning:
		return []appliance.Alert{appliance.NewAlert("warning", "the %s filesystem is %s full (%s free): plan more room", sp.Name, full, bytesIn(sp.FreeBytes))}
	}
	return nil
}

// bytesIn is a size in GB or MB for an alert's sentence.
func bytesIn(n int64) string {
	if n >= 1e9 {
		return strconv.FormatFloat(float64(n)/1e9, 'f', 1, 64) + " GB"
	}
	return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + " MB"
}

// addPoint records the day's use: a new day adds a point, the same day updates it; 30 are kept.
func addPoint(h []appliance.SpacePoint, now time.Time, used int64) []appliance.SpacePoint {
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	if n := len(h); n > 0 && h[n-1].Day.Equal(day) {
		h[n-1].UsedBytes = used
		return h
	}
	h = append(h, appliance.SpacePoint{Day: day, UsedBytes: used})
	if len(h) > spaceHistory {
		h = h[len(h)-spaceHistory:]
	}
	return h
}

// du is the bytes the files under dir take on disk (a missing dir takes none).
func du(ctx context.Context, dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d iofs.DirEntry, err error) error {
		if err != nil || ctx.Err() != nil {
			return ctx.Err()
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			}
		}
		return nil
	})
	return total
}

// measureSpace measures the volumes and records the day's use, every spaceEvery until ctx ends.
func (m *Manager) measureSpace(ctx context.Context) {
	wait := 30 * time.Second // not while the unit starts its services
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		m.measureOnce(ctx)
		wait = spaceEvery
	}
}

func (m *Manager) measureOnce(ctx context.Context) {
	parts := map[string][]appliance.SpacePart{}
	for _, a := range arrays {
		if fs.MountedAt(a.mount) == "" {
			continue
		}
		for _, v := range m.Volumes[a.name] {
			parts[a.name] = append(parts[a.name], appliance.SpacePart{Name: v.Name, UsedBytes: du(ctx, filepath.Join(a.mount, v.Dir))})
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.space.parts = parts
	if m.store == nil {
		return
	}
	if m.space.history == nil {
		m.space.history = map[string][]appliance.SpacePoint{}
		_ = m.store.GetJSON(state.BucketConfig, spaceKey, &m.space.history)
	}
	for _, a := range arrays {
		if fs.MountedAt(a.mount) == "" {
			continue
		}
		if sp, err := statfs(a.mount); err == nil {
			m.space.history[a.name] = addPoint(m.space.history[a.name], m.Now(), sp.UsedBytes)
		}
	}
	if err := m.store.PutJSON(state.BucketConfig, spaceKey, m.space.history); err != nil {
		m.Log.Warn("record the space used", "err", err)
	}
}

// spaceStatus is each mounted array's filesystem for the status. m.mu is held.
func (m *Manager) spaceStatus() []appliance.Space {
	out := []appliance.Space{}
	for _, a := range arrays {
		if fs.MountedAt(a.mount) == "" {
			continue
		}
		sp, err := statfs(a.mount)
		if err != nil {
			continue
		}
		sp.Name, sp.Parts, sp.History = a.name, m.space.parts[a.name], m.space.history[a.name]
		if sp.History == nil {
			sp.History = []appliance.SpacePoint{}
		}
		out = append(out, sp)
	}
	// The documents' own filesystem (on DRBD) where this unit serves them: it fills on its own, and grows
	// from the data array's free space (the Shares page).
	if docs := filepath.Join(Data.mount, "documents"); fs.MountedAt(docs) != "" && fs.MountedAt(docs) != fs.MountedAt(Data.mount) {
		if sp, err := statfs(docs); err == nil {
			sp.Name, sp.History = "documents", []appliance.SpacePoint{}
			out = append(out, sp)
		}
	}
	return out
}
