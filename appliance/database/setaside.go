package database

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

// setAsideLayout is how copyFrom names a cluster it moves aside: DataDir + ".previous-" + UTC time.
const setAsideLayout = "20060102-150405"

// asideTime says whether name is that of a cluster moved aside from m.DataDir, and when it was.
func (m *Manager) asideTime(name string) (time.Time, bool) {
	stamp, ok := strings.CutPrefix(name, filepath.Base(m.DataDir)+".previous-")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(setAsideLayout, stamp)
	return t, err == nil && t.Format(setAsideLayout) == stamp
}

// setAside lists the clusters moved aside next to the data directory, oldest first. Their sizes are
// counted once (they never change) and remembered.
func (m *Manager) setAside() ([]appliance.SetAside, error) {
	dirs, err := filepath.Glob(m.DataDir + ".previous-*")
	if err != nil {
		return nil, fmt.Errorf("list set-aside clusters: %w", err)
	}
	out := []appliance.SetAside{}
	for _, dir := range dirs {
		name := filepath.Base(dir)
		created, ok := m.asideTime(name)
		if !ok {
			continue
		}
		m.mu.Lock()
		size, ok := m.asideSizes[name]
		m.mu.Unlock()
		if !ok {
			size = 0
			err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if info, err := d.Info(); err == nil && d.Type().IsRegular() {
					size += info.Size()
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("size of set-aside cluster %s: %w", name, err)
			}
			m.mu.Lock()
			if m.asideSizes == nil {
				m.asideSizes = map[string]int64{}
			}
			m.asideSizes[name] = size
			m.mu.Unlock()
		}
		out = append(out, appliance.SetAside{Name: name, Created: created, SizeBytes: size})
	}
	return out, nil
}

// DeleteSetAside deletes a cluster moved aside, named as the status lists it. Only such a directory next
// to the data directory can be named: never the live cluster, never a path.
func (m *Manager) DeleteSetAside(_ context.Context, name string) error {
	if _, ok := m.asideTime(name); !ok {
		return fmt.Errorf("delete set-aside cluster %q: %w: not the name of a cluster moved aside", name, appliance.ErrBadInput)
	}
	dir := filepath.Join(filepath.Dir(m.DataDir), name)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("delete set-aside cluster %s: %w", name, appliance.ErrNotFound)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("delete set-aside cluster %s: %w", name, err)
	}
	m.mu.Lock()
	delete(m.asideSizes, name)
	m.mu.Unlock()
	m.Log.Warn("set-aside database cluster deleted", "dir", dir)
	return nil
}

// moveAside renames the data directory to a set-aside name (nothing to do when there is none).
func (m *Manager) moveAside() error {
	if _, err := os.Stat(m.DataDir); err != nil {
		return nil
	}
	old := m.DataDir + ".previous-" + time.Now().UTC().Format(setAsideLayout)
	if err := os.Rename(m.DataDir, old); err != nil {
		return fmt.Errorf("move the cluster aside: %w", err)
	}
	m.Log.Warn("the previous database cluster was moved aside", "dir", old)
	return nil
}

// stranded: not paired, and the cluster is an interrupted update from a former partner (a cut-short rewind
// or copy). Nothing can bring it back by itself.
func (m *Manager) stranded() bool { return !m.paired() && !m.Fit() }

// StartAfresh implements appliance.Database: the run loop moves the stranded cluster aside (it stays
// listed, and can be deleted later) and starts an empty production database.
func (m *Manager) StartAfresh(_ context.Context) error {
	if !m.stranded() {
		return fmt.Errorf("%w: this unit's database is not an interrupted copy on an unpaired unit: nothing to set aside", appliance.ErrConflict)
	}
	if err := m.Store.Put(state.BucketConfig, afreshKey, []byte("1")); err != nil {
		return fmt.Errorf("start afresh: %w", err)
	}
	m.Log.Warn("an admin asked for the stranded cluster to be set aside and an empty database started")
	m.Kick()
	return nil
}

// afresh carries out StartAfresh's request, if there is one and the cluster is still stranded.
func (m *Manager) afresh() error {
	if _, err := m.Store.Get(state.BucketConfig, afreshKey); err != nil {
		return nil
	}
	if m.stranded() {
		if err := m.moveAside(); err != nil {
			return err
		}
		if err := m.setFit(true); err != nil {
			return err
		}
		if err := m.Store.Delete(state.BucketConfig, partnerCopyKey); err != nil {
			return err
		}
	}
	return m.Store.Delete(state.BucketConfig, afreshKey)
}
