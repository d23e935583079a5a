package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/lawbox/appliance/hw/disk"
	"github.com/lawbox/appliance/hw/fs"
	"github.com/lawbox/appliance/hw/gpt"
	"github.com/lawbox/appliance/hw/lvm"
	"github.com/lawbox/appliance/hw/raid"
)

// superblocks examines every partition of every disk: partition name -> superblock.
func (m *Manager) superblocks(ctx context.Context, disks []disk.Disk) map[string]raid.Superblock {
	out := map[string]raid.Superblock{}
	for _, d := range disks {
		for _, p := range disk.Partitions(m.SysRoot, d.Name) {
			sb, err := m.MD.Examine(ctx, m.dev(p))
			if err == nil && strings.HasPrefix(sb.Name, Homehost+":") {
				out[p] = sb
			}
		}
	}
	return out
}

// assemble starts the arrays that are on the disks but not running. When disks carry more than one
// array of a name (disks moved from another unit), the one with the most members present wins, then the
// most recent; the others are left untouched.
func (m *Manager) assemble(ctx context.Context) error {
	disks, err := disk.List(m.SysRoot)
	if err != nil {
		return err
	}
	sbs := m.superblocks(ctx, disks)
	var errs []error
	for _, a := range arrays {
		best, parts := chooseAssembly(sbs, a)
		if best == "" {
			continue
		}
		m.mu.Lock()
		m.uuids[a.name] = best
		m.mu.Unlock()
		if _, err := raid.ReadArray(m.SysRoot, a.md); err == nil {
			continue // already running (the daemon restarted)
		}
		for i, p := range parts {
			parts[i] = m.dev(p)
		}
		if err := m.assembleArray(ctx, a, best, parts); err != nil {
			errs = append(errs, err)
			continue
		}
		ra, _ := raid.ReadArray(m.SysRoot, a.md)
		if ra.Consistency == raid.PPL && dirtyDegradedWithPPL(a.md) {
			m.event("warning", "the %s array lost power while it ran without one of its disks. Its partial parity log made the stripes "+
				"being written at that moment consistent again before it started, so nothing in it was left wrong; writes that were not "+
				"acknowledged may be missing, as after any power cut. Its filesystem is checked before it is mounted, and the database "+
				"replays its log and checks every page it reads against its checksum. Replace the missing disk.", a.name)
		}
		if ra.Reshaping {
			m.event("warning", "the %s array was growing when the unit stopped: md goes on from where it was", a.name)
		}
		if ra.Degraded > 0 {
			m.event("critical", "the %s array started DEGRADED: %d of %d disks missing; replace the missing disk", a.name, ra.Degraded, ra.RaidDisks)
		} else {
			m.event("info", "the %s array started with all %d disks", a.name, ra.RaidDisks)
		}
	}
	for _, a := range arrays {
		if err := m.mountArray(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// chooseAssembly picks which of the arrays named a on the disks (superblocks by partition) to start: when
// disks carry more than one (disks moved from another unit), the one with the most members present, then
// the most recent (events). It answers its UUID and its partitions, sorted; "" when there is none.
func chooseAssembly(sbs map[string]raid.Superblock, a array) (string, []string) {
	type cand struct {
		parts  []string
		events uint64
	}
	cands := map[string]*cand{}
	for p, sb := range sbs {
		if sb.Name != Homehost+":"+a.name {
			continue
		}
		c := cands[sb.UUID]
		if c == nil {
			c = &cand{}
			cands[sb.UUID] = c
		}
		c.parts = append(c.parts, p)
		c.events = max(c.events, sb.Events)
	}
	best := ""
	for u, c := range cands {
		if b := cands[best]; best == "" || len(c.parts) > len(b.parts) || (len(c.parts) == len(b.parts) && (c.events > b.events || c.events == b.events && u < best)) {
			best = u
		}
	}
	if best == "" {
		return "", nil
	}
	sort.Strings(cands[best].parts)
	return best, cands[best].parts
}

// mountArray checks and mounts an array's filesystem unless it is mounted already.
func (m *Manager) mountArray(ctx context.Context, a array) error {
	if _, err := raid.ReadArray(m.SysRoot, a.md); err != nil {
		return nil
	}
	if fs.MountedAt(a.mount) == "" {
		dev, err := m.filesystemDevice(ctx, a)
		if errors.Is(err, ErrLocked) {
			if why := m.lockedReason(); why != notKnownYet {
				m.saidLocked(why)
			}
			return nil
		}
		if err != nil {
			m.fsProblem(a, fmt.Sprintf("could not be opened (%v): nothing was changed on it; a technician must check it", err))
			m.event("critical", "the %s volumes could not be opened (%v); nothing was changed on them", a.name, err)
			return err
		}
		res, out, err := fs.Check(ctx, dev)
		if err != nil {
			return err
		}
		ro := res == fs.CheckReadOnly
		if ro {
			m.fsProblem(a, "is read-only: the filesystem check found errors it may not repair on its own")
			m.event("critical", "the %s filesystem has errors the automatic check did not repair; it is mounted READ-ONLY until a technician checks it: %s", a.name, out)
		}
		if err := fs.Mount(dev, a.mount, ro); err != nil {
			// The kernel refused it (ext4 checks its metadata checksums as it mounts): try read-only, so
			// the files can at least be copied off; change nothing either way.
			if ro || fs.Mount(dev, a.mount, true) != nil {
				m.fsProblem(a, fmt.Sprintf("could not be mounted (%v): nothing was changed on it; a technician must check it", err))
				m.event("critical", "the %s filesystem could not be mounted (%v); nothing was changed on it", a.name, err)
				return err
			}
			m.fsProblem(a, fmt.Sprintf("is read-only: it could not be mounted for writing (%v)", err))
			m.event("critical", "the %s filesystem could not be mounted for writing (%v); it is mounted READ-ONLY until a technician checks it", a.name, err)
		}
	}
	if a.name == System.name {
		m.mu.Lock()
		m.persisted = true
		m.mu.Unlock()
	}
	return nil
}

// readd puts a returning member back: --re-add copies only what the bitmap says changed; when md refuses
// (too old), the partition is wiped and added for a full rebuild.
func (m *Manager) readd(ctx context.Context, a array, part string) error {
	md := m.dev(a.md)
	if err := m.MD.ReAdd(ctx, md, m.dev(part)); err == nil {
		m.event("info", "disk partition %s re-added to the %s array; only changed blocks are copied", part, a.name)
		return nil
	}
	if err := disk.Wipe(m.dev(part)); err != nil {
		return err
	}
	if err := m.MD.Add(ctx, md, m.dev(part)); err != nil {
		return err
	}
	m.event("info", "disk partition %s added back to the %s array; full rebuild", part, a.name)
	return nil
}

// partition gives a disk the member layout and clears old signatures inside the new partitions.
func (m *Manager) partition(d disk.Disk) error {
	if err := m.writeTable(d); err != nil {
		return fmt.Errorf("partition %s: %w", d.Name, err)
	}
	for n := partBoot; n <= partData; n++ {
		p := m.dev(disk.PartitionName(d.Name, n))
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := os.Stat(p); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("partition %s: %s did not appear", d.Name, p)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Just after the kernel re-read the table a new partition can be busy for a moment (seen under load:
		// EBUSY on the exclusive open): wait for it rather than leave a half-prepared disk for an admin.
		for {
			err := disk.Wipe(p)
			if err == nil {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// writeTable writes the GPT through an exclusive open (it fails on a disk in use) and has the kernel
// read it back.
func (m *Manager) writeTable(d disk.Disk) error {
	f, err := os.OpenFile(m.dev(d.Name), os.O_RDWR|os.O_EXCL, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := gpt.Write(f, d.SizeBytes, Layout(d.SizeBytes, disk.SectorSize(m.SysRoot, d.Name))); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return disk.RereadPartitions(f)
}

// create sets up both arrays on blank disks at first boot.
func (m *Manager) create(ctx context.Context, disks []disk.Disk) {
	var serials []string
	m.mu.Lock()
	for _, d := range disks {
		m.adopt[d.Serial] = true // they were blank: if this fails half-way, the next pass may try again
	}
	m.mu.Unlock()
	for _, d := range disks {
		if err := disk.Wipe(m.dev(d.Name)); err != nil {
			m.stepFailed(err, "Disk %s could not be prepared for the new arrays.", d.Serial)
			return
		}
		if err := m.partition(d); err != nil {
			m.stepFailed(err, "Disk %s could not be partitioned for the new arrays.", d.Serial)
			return
		}
		serials = append(serials, d.Serial)
	}
	for _, a := range arrays {
		level := 1
		if a.name == Data.name {
			level = DataLevel(len(disks))
		}
		var devs []string
		for _, d := range disks {
			devs = append(devs, m.dev(disk.PartitionName(d.Name, a.part)))
		}
		if len(devs) == 1 {
			devs = append(devs, raid.Missing)
		}
		md := m.dev(a.md)
		opt := raid.CreateOptions{Level: level, Name: a.name, Homehost: Homehost, Devices: devs}
		if a.name == Data.name {
			opt.DataOffset = dataOffset
		}
		if level == 5 { // made with the log, so its metadata keeps room for it: keepConsistent moves it to the bitmap
			opt.Consistency = raid.PPL
		}
		if err := m.MD.Create(ctx, md, opt); err != nil {
			m.stepFailed(err, "The %s array could not be created.", a.name)
			return
		}
		if sb, err := m.MD.Examine(ctx, devs[0]); err == nil {
			m.mu.Lock()
			m.uuids[a.name] = sb.UUID
			m.mu.Unlock()
		}
		fsDev := md
		if a.name == Data.name && m.Crypt != nil {
			if err := m.encrypt(ctx, md); err != nil {
				m.stepFailed(err, "The %s array could not be encrypted.", a.name)
				return
			}
		}
		if a.name == Data.name && m.LVM != nil {
			if err := m.makeVolumes(ctx, m.pv()); err != nil {
				m.stepFailed(err, "The volumes on the %s array could not be made.", a.name)
				return
			}
			fsDev = lvm.Path(VolumeGroup, DataVolume)
		}
		if err := fs.Mkfs(ctx, fsDev, a.name); err != nil {
			m.stepFailed(err, "The %s array's filesystem could not be made.", a.name)
			return
		}
		if err := m.mountArray(ctx, a); err != nil {
			m.stepFailed(err, "The %s array could not be mounted.", a.name)
			return
		}
		m.event("info", "created the %s array: RAID %d on %d disks (%s)", a.name, level, len(disks), strings.Join(serials, ", "))
	}
	m.mu.Lock()
	for _, d := range disks {
		delete(m.adopt, d.Serial)
	}
	m.cfg.LastScrub = m.Now() // a new array has just been synced in full
	m.mu.Unlock()
	m.saveConfig()
	if len(disks) == 1 {
		m.event("warning", "only one disk: the arrays have NO REDUNDANCY until a second disk is added")
	}
	if m.OnPersistent != nil {
		if err := m.OnPersistent(System.mount); err != nil {
			m.stepFailed(err, "The settings could not be moved onto the system array: they stay in memory until the next restart.")
		}
	}
}

// addDisk partitions a blank disk and adds it to every array: it replaces a missing member (rebuild) or
// waits as a hot spare.
func (m *Manager) addDisk(ctx context.Context, d disk.Disk, running map[string]raid.Array) {
	if err := disk.Wipe(m.dev(d.Name)); err != nil {
		m.stepFailed(err, "New disk %s could not be prepared; the unit tries again at its next check.", d.Serial)
		return
	}
	if err := m.partition(d); err != nil {
		m.stepFailed(err, "New disk %s could not be partitioned; the unit tries again at its next check.", d.Serial)
		return
	}
	for _, a := range arrays {
		if _, ok := running[a.name]; !ok {
			continue
		}
		if err := m.MD.Add(ctx, m.dev(a.md), m.dev(disk.PartitionName(d.Name, a.part))); err != nil {
			m.stepFailed(err, "Disk %s could not be added to the %s array; the unit tries again at its next check.", d.Serial, a.name)
			return
		}
	}
	m.mu.Lock()
	delete(m.adopt, d.Serial)
	m.mu.Unlock()
	m.event("info", "disk %s (%s) added to the arrays", d.Serial, human(d.SizeBytes))
}

// assembleArray starts one array. A RAID 5 that lost power while degraded (or rebuilding) is "dirty
// degraded": stripes being written at that moment may have parity that no longer matches, and md refuses to
// start it. Leaving the office without its data is worse than that risk, so the array is started anyway
// (md's start_dirty_degraded, for this one assembly; never --force, which would also take stale members)
// and the admin is told plainly.
func (m *Manager) assembleArray(ctx context.Context, a array, uuid string, parts []string) error {
	err := m.MD.Assemble(ctx, m.dev(a.md), uuid, parts)
	if !errors.Is(err, raid.ErrNotClean) {
		return err
	}
	_ = m.MD.Stop(ctx, m.dev(a.md)) // the refused array stays half-assembled (inactive)
	if err := raid.SetStartDirtyDegraded(m.SysRoot, true); err != nil {
		return err
	}
	defer raid.SetStartDirtyDegraded(m.SysRoot, false)
	if err := m.MD.Assemble(ctx, m.dev(a.md), uuid, parts); err != nil {
		return err
	}
	m.event("critical", "the %s array lost power while it was degraded or rebuilding; it was started anyway so the office can work. "+
		"Files being written at that moment may be damaged: check the most recent work, and restore from backup if anything looks wrong", a.name)
	return nil
}

// fsProblem records why an array's filesystem is not writable, for the alerts and DataReady.
func (m *Manager) fsProblem(a array, what string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.readOnly[a.name] = what
}
