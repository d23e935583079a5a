package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/hw/fs"
	"github.com/lawbox/appliance/hw/lvm"
	"github.com/lawbox/appliance/hw/raid"
)

// Growing (docs/storage.md). A blank disk added to healthy arrays first joins them as a spare (addDisk);
// unless the policy keeps spares, the arrays then grow onto it: the system array (RAID 1 of every disk)
// gains a mirror, the data array a member (a RAID 1 of two becomes a RAID 5 of two, the same bytes, then a
// RAID 5 of three). md reshapes in the background and records how far it is in the superblocks, so a power
// cut resumes the reshape at the next assembly. Once md is done, the volume group, the data volume and
// the filesystem on /data take the new room (finishGrow), online, each step safe to repeat.

// maxBackupAge is how old the last backup may be for the data array to grow without an admin's say-so.
const maxBackupAge = 24 * time.Hour

// retryGrow is how often a spare the data array did not grow onto is looked at again.
const retryGrow = 10 * time.Minute

// errOldBackup is the one refusal to grow an admin may override.
var errOldBackup = errors.New("the last backup of the data is more than a day old")

// growRefusal says why the data array may not grow onto its spares now (nil: it may). health is the
// SMART verdict of each member's disk; lastBackup the newest backup (zero: none). errOldBackup is the only
// refusal an admin may override; the others are never overridden: a reshape reads and rewrites every
// stripe, which a degraded array, a failing disk or a running sync must not meet.
func growRefusal(a raid.Array, health map[string]string, lastBackup, now time.Time) error {
	switch {
	case a.Degraded > 0:
		return errors.New("the array is degraded: the missing disk is replaced first")
	case a.Reshaping:
		return errors.New("the array is growing already")
	case a.SyncAction != "idle" && a.SyncAction != "":
		return fmt.Errorf("the array is busy (%s): it grows once that is done", a.SyncAction)
	case a.Level != "raid5" && !(a.Level == "raid1" && a.RaidDisks == 2):
		return fmt.Errorf("a %s of %d disks cannot grow", a.Level, a.RaidDisks)
	}
	for _, mb := range a.Members {
		if MemberState(mb) != appliance.MemberInSync {
			continue
		}
		if h := health[mb.Dev]; h == "replace" || h == "failed" {
			return fmt.Errorf("the disk of member %s should be replaced (SMART: %s): replace it before growing", mb.Dev, h)
		}
	}
	if now.Sub(lastBackup) > maxBackupAge {
		return errOldBackup
	}
	return nil
}

// spares are an array's spare members.
func spares(a raid.Array) []string {
	var out []string
	for _, mb := range a.Members {
		if MemberState(mb) == appliance.MemberSpare {
			out = append(out, mb.Dev)
		}
	}
	return out
}

// Grow grows the arrays onto their spares now: what an admin asks when the policy keeps spares, or when
// the storage refused because the last backup is old (anyway: grow all the same; the caller audits it).
func (m *Manager) Grow(ctx context.Context, anyway bool) error {
	m.work.Lock()
	defer m.work.Unlock()
	return m.grow(ctx, anyway)
}

// grow starts growing the arrays onto their spares, or says why not. m.work is held.
func (m *Manager) grow(ctx context.Context, anyway bool) error {
	data, err := raid.ReadArray(m.SysRoot, Data.md)
	if err != nil {
		return fmt.Errorf("grow the data array: %w", err)
	}
	more := spares(data)
	if len(more) == 0 {
		return fmt.Errorf("grow the data array: no spare disk to grow onto: %w", appliance.ErrConflict)
	}
	health := map[string]string{}
	m.mu.Lock()
	h, last := m.health, m.lastBackup
	m.mu.Unlock()
	for _, mb := range data.Members {
		if h != nil {
			health[mb.Dev] = h(m.serialOf(mb.Dev))
		}
	}
	var lastBackup time.Time
	if last != nil {
		lastBackup = last(ctx)
	}
	refusal := growRefusal(data, health, lastBackup, m.Now())
	if refusal != nil && !(anyway && errors.Is(refusal, errOldBackup)) {
		m.setGrowWait(refusal)
		return fmt.Errorf("grow the data array: %w: %w", refusal, appliance.ErrConflict)
	}
	m.setGrowWait(nil)
	m.mu.Lock()
	m.cfg.Growing = true // finishGrow gives the room to the volume and the filesystem, after a restart too
	m.mu.Unlock()
	m.saveConfig()
	if sys, err := raid.ReadArray(m.SysRoot, System.md); err == nil && sys.Degraded == 0 && len(spares(sys)) > 0 {
		if err := m.MD.Grow(ctx, m.dev(System.md), 0, sys.RaidDisks+len(spares(sys))); err != nil {
			m.Log.Warn("system array: one more copy", "err", err)
			m.record("warning", "The system array could not take the new disk as one more copy (the unit's log says why); the data array grows all the same.")
		}
	}
	n := data.RaidDisks + len(more)
	if err := m.reshape(ctx, data.Level, n); err != nil {
		m.mu.Lock()
		m.cfg.Growing = false
		m.mu.Unlock()
		m.saveConfig()
		m.Log.Error("grow the data array", "err", err) // md's words stay in the log; the page says what to do
		m.setGrowWait(errors.New("md refused to reshape it (the unit's log has its words); it tries again every 10 minutes"))
		return fmt.Errorf("grow the data array: %w", err)
	}
	var serials []string
	for _, d := range more {
		serials = append(serials, m.serialOf(d))
	}
	how := ""
	if refusal != nil {
		how = " (asked by an admin although " + refusal.Error() + ")"
	}
	m.event("info", "growing the data array onto disk %s: RAID 5 of %d disks%s; the office keeps working meanwhile",
		strings.Join(serials, ", "), n, how)
	return nil
}

// reshape asks md to make the data array, now a level, a RAID 5 of n members.
func (m *Manager) reshape(ctx context.Context, level string, n int) error {
	if level == "raid1" {
		if err := m.MD.Grow(ctx, m.dev(Data.md), 5, 0); err != nil {
			return err
		}
	}
	if err := raid.SetStripeCache(m.SysRoot, Data.md, stripeCache); err != nil {
		m.Log.Warn("stripe cache", "err", err)
	}
	return m.MD.Grow(ctx, m.dev(Data.md), 0, n)
}

// SetLastBackup connects the time of the newest backup of the data (zero: none), which growing checks.
func (m *Manager) SetLastBackup(f func(context.Context) time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastBackup = f
}

// setGrowWait keeps why the arrays did not grow onto their spares, for the status, and says it once.
func (m *Manager) setGrowWait(why error) {
	text := ""
	if why != nil {
		text = why.Error()
	}
	m.mu.Lock()
	changed := m.growWait != text
	m.growWait = text
	m.mu.Unlock()
	if changed && text != "" {
		m.event("warning", "the new disk waits as a spare; the data array did not grow: %s", text)
	}
}

// stripeCache is the data array's stripe cache as a RAID 5 (pages of 4 KiB per member: 8 MiB a member).
// md's default, 256, makes a reshape crawl: bench figures in docs/storage.md.
const stripeCache = 2048

// growPass grows the arrays onto their spares when the policy says so, and finishes a grow md is done with.
func (m *Manager) growPass(ctx context.Context) {
	if n := raid.StripeCache(m.SysRoot, Data.md); n > 0 && n != stripeCache {
		if err := raid.SetStripeCache(m.SysRoot, Data.md, stripeCache); err != nil {
			m.Log.Warn("stripe cache", "err", err)
		}
	}
	m.mu.Lock()
	keep, growing, attached := m.cfg.KeepSpare, m.cfg.Growing, m.store != nil
	// A refusal is looked at again every retryGrow (finding the last backup lists the targets' backups).
	retry := m.growWait == "" || m.Now().Sub(m.growTried) >= retryGrow
	m.mu.Unlock()
	if !attached { // the policy is not read yet (first pass at boot)
		return
	}
	if data, err := raid.ReadArray(m.SysRoot, Data.md); err == nil && !keep && !growing && retry && len(spares(data)) > 0 {
		m.mu.Lock()
		m.growTried = m.Now()
		m.mu.Unlock()
		_ = m.grow(ctx, false) // a refusal or a failure is said once (setGrowWait) and tried again later
	}
	if growing {
		m.finishGrow(ctx)
	}
}

// finishGrow gives the room a finished reshape added to the data volume and the filesystem on /data:
// the physical volume takes the whole array, the data volume all the group's free space but the tenth
// kept for snapshots and growing the documents, and ext4 the whole volume, online. Each step changes
// nothing when it is already done, so a power cut anywhere in it is mended by the next pass.
func (m *Manager) finishGrow(ctx context.Context) {
	data, err := raid.ReadArray(m.SysRoot, Data.md)
	if err != nil || data.SyncAction != "idle" || data.Reshaping || data.Degraded > 0 {
		return // md is not done yet (or the array needs a disk first)
	}
	fsDev := m.dev(Data.md) // err is nil here
	if m.groupedNow() {
		fsDev, err = lvm.Path(VolumeGroup, DataVolume), m.growVolume(ctx)
	}
	if err == nil {
		err = fs.Grow(ctx, fsDev)
	}
	m.mu.Lock()
	said := m.growStuck
	m.growStuck = err != nil
	if err == nil {
		m.cfg.Growing = false
	}
	m.mu.Unlock()
	if err != nil { // tried again every pass, said once; the tools' words stay in the log
		m.Log.Error("give the grown array's room to /data", "err", err)
		if !said {
			m.event("critical", "the data array grew, but /data could not take the room yet (the unit's log says why); it keeps trying")
		}
		return
	}
	m.saveConfig()
	m.event("info", "the data array has grown: RAID 5 of %d disks, %s", data.RaidDisks, human(data.SizeBytes))
}

// growVolume makes the physical volume as large as the array and gives the data volume the group's free
// space beyond a tenth of the group.
func (m *Manager) growVolume(ctx context.Context) error {
	if key := m.cryptKey(); key != nil {
		if err := m.Crypt.Resize(ctx, CryptName, key); err != nil {
			return err
		}
	}
	if err := m.LVM.ResizePhysical(ctx, m.pv()); err != nil {
		return err
	}
	groups, err := m.LVM.Groups(ctx)
	if err != nil {
		return err
	}
	for _, g := range groups {
		if g.Name != VolumeGroup {
			continue
		}
		if more := volumeGrowth(g.Size, g.Free); more > 0 {
			return m.LVM.Extend(ctx, VolumeGroup, DataVolume, more)
		}
	}
	return nil
}

// volumeGrowth is how much the data volume takes of a group of size bytes with free bytes unallocated:
// all but a tenth of the group, in whole extents.
func volumeGrowth(size, free int64) int64 {
	keep := size * (100 - dataShare - documentsShare) / 100
	return max(0, (free-keep)/extent*extent)
}
