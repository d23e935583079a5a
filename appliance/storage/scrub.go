package storage

import (
	"context"
	"fmt"
	"strings"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/hw/raid"
)

// Scrub starts a check of every array now.
func (m *Manager) Scrub(ctx context.Context) error {
	m.work.Lock()
	defer m.work.Unlock()
	return m.scrub(ctx, nil)
}

// scrub starts "check" on every array, from resume[name] sectors if given. Arrays must be clean.
func (m *Manager) scrub(ctx context.Context, resume map[string]int64) error {
	var started []string
	for _, a := range arrays {
		ra, err := raid.ReadArray(m.SysRoot, a.md)
		if err != nil {
			continue
		}
		if s := ArrayState(ra); s != appliance.ArrayClean {
			return fmt.Errorf("scrub the %s array: it is %s: %w", a.name, s, appliance.ErrConflict)
		}
	}
	for _, a := range arrays {
		if _, err := raid.ReadArray(m.SysRoot, a.md); err != nil {
			continue
		}
		if err := raid.SetSyncMin(m.SysRoot, a.md, resume[a.name]); err != nil {
			return fmt.Errorf("scrub the %s array: %w", a.name, err)
		}
		if err := raid.SetSyncAction(m.SysRoot, a.md, "check"); err != nil {
			return fmt.Errorf("scrub the %s array: %w", a.name, err)
		}
		started = append(started, a.name)
	}
	if len(started) == 0 {
		return fmt.Errorf("scrub: no array is set up: %w", appliance.ErrConflict)
	}
	m.mu.Lock()
	m.cfg.LastScrub = m.Now()
	m.cfg.ScrubResume = nil
	m.mu.Unlock()
	m.saveConfig()
	if len(resume) > 0 {
		m.event("info", "scrub resumed on %s where it stopped (sectors %v)", strings.Join(started, " and "), resume)
	} else {
		m.event("info", "scrub started on %s", strings.Join(started, " and "))
	}
	m.reconcile(ctx)
	return nil
}

// scheduledScrub starts the monthly scrub when it is due and every array is clean; otherwise it waits.
func (m *Manager) scheduledScrub() {
	m.mu.Lock()
	due := ScrubDue(m.cfg.LastScrub, m.Now()) && len(m.status.Arrays) > 0
	for _, a := range m.status.Arrays {
		due = due && a.State == appliance.ArrayClean
	}
	m.mu.Unlock()
	if due {
		if err := m.scrub(context.Background(), nil); err != nil {
			m.Log.Warn("monthly scrub not started", "err", err)
		}
	}
}

// pauseScrub stops a running check and remembers where it was, so the next start resumes there.
func (m *Manager) pauseScrub() {
	resume := map[string]int64{}
	for _, a := range arrays {
		ra, err := raid.ReadArray(m.SysRoot, a.md)
		if err != nil || ra.SyncAction != "check" {
			continue
		}
		resume[a.name] = ra.SyncDone - ra.SyncDone%8192 // RAID 5 wants whole chunks (up to 4 MiB)
		_ = raid.SetSyncAction(m.SysRoot, a.md, "idle")
	}
	if len(resume) == 0 {
		return
	}
	m.mu.Lock()
	m.cfg.ScrubResume = resume
	m.mu.Unlock()
	m.saveConfig()
	m.event("info", "scrub paused for shutdown; it resumes at the next start")
}

func (m *Manager) resumeScrub() {
	m.mu.Lock()
	resume := m.cfg.ScrubResume
	m.mu.Unlock()
	if len(resume) == 0 {
		return
	}
	m.work.Lock()
	defer m.work.Unlock()
	if err := m.scrub(context.Background(), resume); err != nil {
		m.Log.Info("scrub not resumed", "err", err)
	}
}
