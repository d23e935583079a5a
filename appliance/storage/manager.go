// Package storage is the RAID policy: which disks become members, when arrays are created, assembled,
// rebuilt and checked, and what the office is told. The mechanism is in hw/raid (mdadm, md sysfs),
// hw/gpt and hw/disk; this package decides.
//
// Every member disk gets the same GPT (Layout): a boot partition reserved for firmware, a system partition
// (md0, RAID 1 across all disks: the state database lives there) and a data partition (md1, RAID 1 for one
// or two disks, RAID 5 from three; ext4 on /data). A disk that holds anything is never written until an
// admin adopts it.
package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
	"github.com/lawbox/appliance/hw/disk"
	"github.com/lawbox/appliance/hw/gpt"
	"github.com/lawbox/appliance/hw/raid"
)

// array is one of the two arrays the appliance keeps.
type array struct {
	name  string // "system" or "data"
	md    string // "md0"
	part  int    // partition number on every member
	mount string // mount point
}

// Where the arrays live. Tests of the policy do not need them; the daemon uses the defaults.
var (
	System = array{"system", "md0", partSystem, "/var/lib/appliance"}
	Data   = array{"data", "md1", partData, "/data"}
	arrays = []array{System, Data}
)

const configKey = "storage"

// config is what the storage keeps in the state store.
type config struct {
	AutoAdd     bool             `json:"auto_add"`
	LastScrub   time.Time        `json:"last_scrub"`
	ScrubResume map[string]int64 `json:"scrub_resume,omitempty"` // array -> sector to resume from
}

// Manager runs the storage. Prepare it before the state store opens (the store lives on the system
// array), then Attach the store and Run it.
type Manager struct {
	Log          *slog.Logger
	MD           *raid.MDADM
	SysRoot      string                 // "/sys"
	DevRoot      string                 // "/dev"
	OnPersistent func(dir string) error // called when the system array is mounted after Prepare
	Now          func() time.Time
	Interval     time.Duration // resync period; uevents trigger a pass at once

	work sync.Mutex // one reconcile (or admin action) at a time

	mu           sync.Mutex
	store        *state.Store
	cfg          config
	pending      []state.Event // before the store is attached
	uuids        map[string]string
	adopt        map[string]bool            // serials an admin confirmed
	failed       map[string]bool            // serials md failed: never taken back automatically
	members      map[string]map[string]bool // array -> serials that were members this boot
	devSerial    map[string]string          // kernel disk name -> serial, as last seen
	memberSerial map[string]string          // member device ("vdb3") -> serial of its disk, as last seen
	readOnly     map[string]string          // array -> why it is mounted read-only
	status       appliance.StorageStatus
	lastDisks    []appliance.StorageDisk // the last pass's classification, before roles from the arrays
	lastState    map[string]string
	diskNote     map[string]string // serial -> last state+reason, to record changes once
	persisted    bool
}

func (m *Manager) init() {
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.Interval == 0 {
		m.Interval = 5 * time.Second
	}
	if m.uuids == nil {
		m.uuids, m.adopt, m.failed = map[string]string{}, map[string]bool{}, map[string]bool{}
		m.members, m.devSerial, m.readOnly = map[string]map[string]bool{}, map[string]string{}, map[string]string{}
		m.lastState, m.diskNote, m.memberSerial = map[string]string{}, map[string]string{}, map[string]string{}
		m.cfg.AutoAdd = true
	}
}

// Prepare assembles the arrays found on the disks (degraded if need be), or creates them on blank disks
// at first boot, and mounts them. It reports whether the system array is mounted, i.e. whether the state
// store can live on it.
func (m *Manager) Prepare(ctx context.Context) (bool, error) {
	m.init()
	m.work.Lock()
	defer m.work.Unlock()
	// A degraded array is the riskiest time: rebuild as fast as the disks go when idle, and keep at least
	// 50 MB/s under client I/O (md's default floor, 1 MB/s, would stretch a rebuild over weeks).
	if err := raid.SetSpeedLimits("/proc", 50_000, 4_000_000); err != nil {
		m.Log.Warn("md speed limits", "err", err)
	}
	if err := m.assemble(ctx); err != nil {
		m.event("critical", "assembling the arrays failed: %v", err)
	}
	m.reconcile(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.persisted, nil
}

// Attach gives the manager the state store: its settings and where events go.
func (m *Manager) Attach(st *state.Store) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.store = st
	var c config
	err := st.GetJSON(state.BucketConfig, configKey, &c)
	switch {
	case err == nil:
		m.cfg = c
	case errors.Is(err, state.ErrNotFound): // first boot: keep what Prepare set (the creation counts as a scrub)
		if err := st.PutJSON(state.BucketConfig, configKey, m.cfg); err != nil {
			m.Log.Error("save storage settings", "err", err)
		}
	default:
		m.Log.Error("storage settings unreadable; using defaults", "err", err)
	}
	for _, e := range m.pending {
		if err := st.AddEvent(e); err != nil {
			m.Log.Error("record event", "err", err)
		}
	}
	m.pending = nil
}

// Run watches the disks (kernel uevents plus a periodic pass) and the arrays until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	m.init()
	kick := make(chan struct{}, 1)
	if ue, err := disk.ListenUevents(); err != nil {
		m.Log.Error("no kernel disk events; polling only", "err", err)
	} else {
		defer ue.Close()
		go func() {
			for {
				e, err := ue.Read()
				if err != nil {
					return
				}
				if e.Subsystem == "block" && e.DevType == "disk" && (e.Action == "add" || e.Action == "remove" || e.Action == "change") {
					m.Log.Info("disk event", "action", e.Action, "disk", e.DevName)
					select {
					case kick <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	m.resumeScrub()
	t := time.NewTicker(m.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.pauseScrub()
			return nil
		case <-t.C:
		case <-kick:
		}
		m.work.Lock()
		m.reconcile(ctx)
		m.scheduledScrub()
		m.work.Unlock()
	}
}

// Shutdown unmounts the arrays and stops them; call it after the state store is closed.
func (m *Manager) Shutdown(ctx context.Context) {
	m.work.Lock()
	defer m.work.Unlock()
	for i := len(arrays) - 1; i >= 0; i-- {
		a := arrays[i]
		if mountedAt(a.mount) != "" {
			if err := unmount(a.mount); err != nil {
				m.Log.Error("unmount", "array", a.name, "err", err)
				continue
			}
		}
		if _, err := raid.ReadArray(m.SysRoot, a.md); err == nil {
			if err := m.MD.Stop(ctx, m.dev(a.md)); err != nil {
				m.Log.Error("stop array", "array", a.name, "err", err)
			}
		}
	}
}

func (m *Manager) dev(name string) string { return filepath.Join(m.DevRoot, name) }

// event records something that happened, in the log and in the state store's history.
func (m *Manager) event(level, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	switch level {
	case "critical":
		m.Log.Error(msg)
	case "warning":
		m.Log.Warn(msg)
	default:
		m.Log.Info(msg)
	}
	e := state.Event{Time: m.Now(), Source: "storage", Level: level, Message: msg}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.store == nil {
		m.pending = append(m.pending, e)
		return
	}
	if err := m.store.AddEvent(e); err != nil {
		m.Log.Error("record event", "err", err)
	}
}

func (m *Manager) saveConfig() {
	m.mu.Lock()
	st, c := m.store, m.cfg
	m.mu.Unlock()
	if st == nil {
		return
	}
	if err := st.PutJSON(state.BucketConfig, configKey, c); err != nil {
		m.Log.Error("save storage settings", "err", err)
	}
}

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
			c.parts = append(c.parts, m.dev(p))
			c.events = max(c.events, sb.Events)
		}
		best := ""
		for u, c := range cands {
			if b := cands[best]; best == "" || len(c.parts) > len(b.parts) || (len(c.parts) == len(b.parts) && c.events > b.events) {
				best = u
			}
		}
		if best == "" {
			continue
		}
		m.mu.Lock()
		m.uuids[a.name] = best
		m.mu.Unlock()
		if _, err := raid.ReadArray(m.SysRoot, a.md); err == nil {
			continue // already running (the daemon restarted)
		}
		sort.Strings(cands[best].parts)
		if err := m.MD.Assemble(ctx, m.dev(a.md), best, cands[best].parts); err != nil {
			errs = append(errs, err)
			continue
		}
		ra, _ := raid.ReadArray(m.SysRoot, a.md)
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

// mountArray checks and mounts an array's filesystem unless it is mounted already.
func (m *Manager) mountArray(ctx context.Context, a array) error {
	if _, err := raid.ReadArray(m.SysRoot, a.md); err != nil {
		return nil
	}
	if mountedAt(a.mount) == "" {
		res, out, err := fsck(ctx, m.dev(a.md))
		if err != nil {
			return err
		}
		ro := res == checkReadOnly
		if ro {
			m.mu.Lock()
			m.readOnly[a.name] = "the filesystem check found errors it may not repair on its own"
			m.mu.Unlock()
			m.event("critical", "the %s filesystem has errors the automatic check did not repair; it is mounted READ-ONLY until a technician checks it: %s", a.name, out)
		}
		if err := mount(m.dev(a.md), a.mount, ro); err != nil {
			return err
		}
	}
	if a.name == System.name {
		m.mu.Lock()
		m.persisted = true
		m.mu.Unlock()
	}
	return nil
}

// reconcile looks at every disk and array and acts: removes pulled members, takes back returning ones,
// uses blank disks, refuses what does not fit, creates the arrays at first boot. Then it refreshes the
// status.
func (m *Manager) reconcile(ctx context.Context) {
	disks, err := disk.List(m.SysRoot)
	if err != nil {
		m.Log.Error("list disks", "err", err)
		return
	}
	byName := map[string]disk.Disk{}
	for _, d := range disks {
		byName[d.Name] = d
	}
	running := map[string]raid.Array{}
	for _, a := range arrays {
		if ra, err := raid.ReadArray(m.SysRoot, a.md); err == nil {
			running[a.name] = ra
		}
	}

	// Pulled disks: md does not notice until its next I/O, so fail and remove their members now.
	inUse := map[string]bool{}
	for _, a := range arrays {
		ra, ok := running[a.name]
		if !ok {
			continue
		}
		detached := false
		for _, mb := range ra.Members {
			dn := disk.DiskOf(m.SysRoot, mb.Dev)
			if dn != "" {
				inUse[dn] = true
				continue
			}
			detached = true
			m.mu.Lock()
			serial := m.memberSerial[mb.Dev]
			m.mu.Unlock()
			if err := raid.FailRemove(m.SysRoot, a.md, mb.Dev); err != nil {
				m.event("critical", "could not remove pulled disk %s (%s) from the %s array: %v", serial, mb.Dev, a.name, err)
			} else {
				m.event("warning", "disk %s (%s) was pulled; removed it from the %s array", serial, mb.Dev, a.name)
			}
		}
		if detached {
			running[a.name], _ = raid.ReadArray(m.SysRoot, a.md)
		}
	}

	m.mu.Lock()
	for n, d := range byName {
		m.devSerial[n] = d.Serial
	}
	m.mu.Unlock()

	var unused []disk.Disk
	for _, d := range disks {
		if !inUse[d.Name] {
			unused = append(unused, d)
		}
	}
	sbs := m.superblocks(ctx, unused)
	var sdisks []appliance.StorageDisk
	var blanks []disk.Disk
	undecided := 0
	minMember := int64(0)
	for dn := range inUse {
		if d, ok := byName[dn]; ok && (minMember == 0 || d.SizeBytes < minMember) {
			minMember = d.SizeBytes
		}
	}
	for _, d := range disks {
		sd := appliance.StorageDisk{Serial: d.Serial, Model: d.Model, SizeBytes: d.SizeBytes, Slot: d.Path, Device: d.Name, Role: "unused"}
		if inUse[d.Name] {
			sd.Role, sd.State = "member", "ok"
			sdisks = append(sdisks, sd)
			continue
		}
		sd.State, sd.Reason = m.classify(ctx, d, sbs, len(running) > 0, minMember)
		switch sd.State {
		case "blank":
			blanks = append(blanks, d)
		case "needs_adopt":
			undecided++
		}
		sdisks = append(sdisks, sd)
	}

	if len(running) == 0 && len(blanks) > 0 && undecided == 0 {
		m.create(ctx, blanks)
	} else if len(running) > 0 {
		for _, d := range blanks {
			m.addDisk(ctx, d, running)
		}
	}
	m.refresh(sdisks)
}

// classify says what to do with a disk that is in no running array: "blank" (use it), "needs_adopt",
// "refused", "returning" (taken back), "faulty"; and why.
func (m *Manager) classify(ctx context.Context, d disk.Disk, sbs map[string]raid.Superblock, setUp bool, minMember int64) (string, string) {
	m.mu.Lock()
	adopted, failed, autoAdd := m.adopt[d.Serial], m.failed[d.Serial], m.cfg.AutoAdd
	uuids := maps.Clone(m.uuids)
	m.mu.Unlock()
	if d.Transport == "usb" {
		return "refused", "USB disks are never used for storage"
	}
	if failed {
		return "faulty", "this disk failed in the array; replace it"
	}
	if d.SizeBytes < MinDiskBytes {
		return "refused", fmt.Sprintf("too small: %s, at least %s is needed", human(d.SizeBytes), human(MinDiskBytes))
	}
	if setUp && minMember > 0 && d.SizeBytes < minMember {
		return "refused", fmt.Sprintf("too small: %s, the smallest member disk is %s", human(d.SizeBytes), human(minMember))
	}
	// A member of our arrays that came back (re-inserted, or left out at assembly): take it back.
	returning := false
	for _, a := range arrays {
		p := disk.PartitionName(d.Name, a.part)
		if sb, ok := sbs[p]; ok && sb.UUID == uuids[a.name] && setUp {
			returning = true
			if err := m.readd(ctx, a, p); err != nil {
				m.event("warning", "could not take back disk %s into the %s array: %v", d.Serial, a.name, err)
			}
		}
	}
	if returning {
		return "returning", "taken back into the arrays"
	}
	if !adopted {
		content, err := disk.Probe(m.dev(d.Name))
		if err != nil {
			return "refused", fmt.Sprintf("cannot be read: %v", err)
		}
		if content != "" {
			return "needs_adopt", fmt.Sprintf("holds %s; adopt it to erase it and use it", content)
		}
		if setUp && !autoAdd {
			return "needs_adopt", "blank; automatic use of new disks is off: adopt it to use it"
		}
	}
	return "blank", ""
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
		if err := disk.Wipe(p); err != nil {
			return err
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
			m.event("critical", "preparing disk %s failed: %v", d.Serial, err)
			return
		}
		if err := m.partition(d); err != nil {
			m.event("critical", "partitioning disk %s failed: %v", d.Serial, err)
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
		if err := m.MD.Create(ctx, md, raid.CreateOptions{Level: level, Name: a.name, Homehost: Homehost, Devices: devs}); err != nil {
			m.event("critical", "creating the %s array failed: %v", a.name, err)
			return
		}
		if sb, err := m.MD.Examine(ctx, devs[0]); err == nil {
			m.mu.Lock()
			m.uuids[a.name] = sb.UUID
			m.mu.Unlock()
		}
		if err := mkfs(ctx, md, a.name); err != nil {
			m.event("critical", "making the %s filesystem failed: %v", a.name, err)
			return
		}
		if err := m.mountArray(ctx, a); err != nil {
			m.event("critical", "mounting the %s array failed: %v", a.name, err)
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
			m.event("critical", "moving the settings to the system array failed: %v", err)
		}
	}
}

// addDisk partitions a blank disk and adds it to every array: it replaces a missing member (rebuild) or
// waits as a hot spare.
func (m *Manager) addDisk(ctx context.Context, d disk.Disk, running map[string]raid.Array) {
	if err := disk.Wipe(m.dev(d.Name)); err != nil {
		m.event("critical", "preparing new disk %s failed: %v", d.Serial, err)
		return
	}
	if err := m.partition(d); err != nil {
		m.event("critical", "partitioning new disk %s failed: %v", d.Serial, err)
		return
	}
	for _, a := range arrays {
		if _, ok := running[a.name]; !ok {
			continue
		}
		if err := m.MD.Add(ctx, m.dev(a.md), m.dev(disk.PartitionName(d.Name, a.part))); err != nil {
			m.event("critical", "adding disk %s to the %s array failed: %v", d.Serial, a.name, err)
			return
		}
	}
	m.mu.Lock()
	delete(m.adopt, d.Serial)
	m.mu.Unlock()
	m.event("info", "disk %s (%s) added to the arrays", d.Serial, human(d.SizeBytes))
}

// refresh rebuilds the status the API reports and records state changes as events.
func (m *Manager) refresh(sdisks []appliance.StorageDisk) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastDisks = slices.Clone(sdisks)
	st := appliance.StorageStatus{Disks: sdisks, AutoAdd: m.cfg.AutoAdd, Persisted: m.persisted, LastScrub: m.cfg.LastScrub}
	st.NextScrub = NextScrub(m.cfg.LastScrub, m.Now())
	roles := map[string]string{} // disk name -> role from the arrays
	states := map[string]string{}
	for _, a := range arrays {
		ra, err := raid.ReadArray(m.SysRoot, a.md)
		if err != nil {
			continue
		}
		out := appliance.Array{Name: a.name, Level: ra.Level, State: ArrayState(ra), SizeBytes: ra.SizeBytes, MismatchSectors: ra.MismatchCnt}
		out.RebuildProgress, out.ETASeconds = Progress(ra)
		if m.members[a.name] == nil {
			m.members[a.name] = map[string]bool{}
		}
		present := map[string]bool{}
		for _, mb := range ra.Members {
			dn := disk.DiskOf(m.SysRoot, mb.Dev)
			serial := m.devSerial[dn]
			ms := MemberState(mb)
			if ms == appliance.MemberFaulty && serial != "" && !m.failed[serial] {
				m.failed[serial] = true
				m.logEventLocked("critical", "disk %s FAILED in the %s array; the array runs without it: replace the disk", serial, a.name)
			}
			if serial != "" {
				m.memberSerial[mb.Dev] = serial
			} else {
				serial = m.memberSerial[mb.Dev]
			}
			out.Members = append(out.Members, appliance.Member{Serial: serial, Device: mb.Dev, State: ms})
			present[serial] = true
			m.members[a.name][serial] = true
			if roles[dn] == "" || ms != appliance.MemberInSync {
				roles[dn], states[dn] = ms, ms
			}
		}
		for serial := range m.members[a.name] {
			if !present[serial] {
				out.Members = append(out.Members, appliance.Member{Serial: serial, State: appliance.MemberRemoved})
			}
		}
		sort.Slice(out.Members, func(i, j int) bool { return out.Members[i].Serial < out.Members[j].Serial })
		if prev := m.lastState[a.name]; prev != out.State {
			m.transition(a.name, prev, out.State, ra)
			m.lastState[a.name] = out.State
		}
		st.Arrays = append(st.Arrays, out)
		st.Alerts = append(st.Alerts, alertsFor(out, ra, m.readOnly[a.name])...)
	}
	for i := range st.Disks {
		sd := &st.Disks[i]
		if r, ok := roles[sd.Device]; ok {
			sd.Role, sd.State, sd.Reason = "member", "ok", ""
			switch r {
			case appliance.MemberSpare:
				sd.Role = "spare"
			case appliance.MemberFaulty, appliance.MemberRebuilding:
				sd.State = r
			}
		}
		if note := sd.State + sd.Reason; m.diskNote[sd.Serial] != note {
			m.diskNote[sd.Serial] = note
			if sd.State == "refused" || sd.State == "needs_adopt" {
				m.logEventLocked("warning", "disk %s (%s) is not used: %s", sd.Serial, sd.Device, sd.Reason)
			}
		}
		if sd.State == "refused" || sd.State == "needs_adopt" {
			st.Alerts = append(st.Alerts, appliance.Alert{Level: "warning", Message: fmt.Sprintf("disk %s is not used: %s", sd.Serial, sd.Reason)})
		}
	}
	if len(st.Arrays) == 0 {
		st.Alerts = append(st.Alerts, appliance.Alert{Level: "critical", Message: "no storage is set up: settings are kept in memory only until disks are set up"})
	}
	if st.Alerts == nil {
		st.Alerts = []appliance.Alert{}
	}
	if st.Arrays == nil {
		st.Arrays = []appliance.Array{}
	}
	if st.Disks == nil {
		st.Disks = []appliance.StorageDisk{}
	}
	m.status = st
}

func alertsFor(a appliance.Array, ra raid.Array, readOnly string) []appliance.Alert {
	var out []appliance.Alert
	switch a.State {
	case appliance.ArrayFailed:
		out = append(out, appliance.Alert{Level: "critical", Message: fmt.Sprintf("the %s array has FAILED: too many disks are missing", a.Name)})
	case appliance.ArrayDegraded:
		if ra.RaidDisks-ra.Degraded == 1 {
			out = append(out, appliance.Alert{Level: "critical", Message: fmt.Sprintf("the %s array is degraded and has NO REDUNDANCY: a single disk holds it; add or replace a disk", a.Name)})
			break
		}
		out = append(out, appliance.Alert{Level: "critical", Message: fmt.Sprintf("the %s array is degraded (%d disk missing): replace the disk", a.Name, ra.Degraded)})
	case appliance.ArrayRebuilding:
		out = append(out, appliance.Alert{Level: "warning", Message: fmt.Sprintf("the %s array is rebuilding", a.Name)})
	}
	if a.MismatchSectors > 0 && ra.SyncAction == "idle" {
		out = append(out, appliance.Alert{Level: "warning", Message: fmt.Sprintf("the last scrub of the %s array found %d mismatched sectors", a.Name, a.MismatchSectors)})
	}
	if readOnly != "" {
		out = append(out, appliance.Alert{Level: "critical", Message: fmt.Sprintf("the %s filesystem is read-only: %s", a.Name, readOnly)})
	}
	return out
}

// transition records an array's state change. m.mu is held.
func (m *Manager) transition(name, from, to string, ra raid.Array) {
	switch {
	case from == "":
		m.Log.Info("array state", "array", name, "state", to)
	case from == appliance.ArrayChecking && to == appliance.ArrayClean:
		lvl := "info"
		if ra.MismatchCnt > 0 {
			lvl = "warning"
		}
		m.logEventLocked(lvl, "scrub of the %s array finished: %d mismatched sectors", name, ra.MismatchCnt)
	case to == appliance.ArrayClean:
		m.logEventLocked("info", "the %s array is clean again (was %s)", name, from)
	case to == appliance.ArrayDegraded || to == appliance.ArrayFailed:
		m.logEventLocked("critical", "the %s array is %s (was %s)", name, strings.ToUpper(to), from)
	default:
		m.logEventLocked("info", "the %s array is %s (was %s)", name, to, from)
	}
}

// logEventLocked is event with m.mu held.
func (m *Manager) logEventLocked(level, format string, args ...any) {
	m.mu.Unlock()
	defer m.mu.Lock()
	m.event(level, format, args...)
}

// Storage returns the status: the arrays as md reports them now, the disks as the last pass classified
// them (at most Interval ago, or since the last disk event).
func (m *Manager) Storage(context.Context) (appliance.StorageStatus, error) {
	m.mu.Lock()
	disks := slices.Clone(m.lastDisks)
	m.mu.Unlock()
	m.refresh(disks)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status, nil
}

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
	m.event("info", "scrub started on %s", strings.Join(started, " and "))
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
		resume[a.name] = ra.SyncDone
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

// Adopt confirms that a disk holding data (or a blank disk while automatic use is off) may be erased and
// used.
func (m *Manager) Adopt(ctx context.Context, serial string) error {
	m.mu.Lock()
	found := false
	for _, d := range m.status.Disks {
		if d.Serial == serial {
			found = true
			if d.Role != "unused" || (d.State != "needs_adopt" && d.State != "blank") {
				m.mu.Unlock()
				return fmt.Errorf("adopt disk %s: it is %s (%s): %w", serial, d.Role, d.State, appliance.ErrConflict)
			}
		}
	}
	if !found {
		m.mu.Unlock()
		return fmt.Errorf("adopt disk %s: %w", serial, appliance.ErrNotFound)
	}
	m.adopt[serial] = true
	m.mu.Unlock()
	m.event("warning", "disk %s adopted by an admin: its old content will be erased", serial)
	m.work.Lock()
	defer m.work.Unlock()
	m.reconcile(ctx)
	return nil
}

// SetAutoAdd switches automatic use of new blank disks.
func (m *Manager) SetAutoAdd(ctx context.Context, on bool) error {
	m.mu.Lock()
	m.cfg.AutoAdd = on
	m.status.AutoAdd = on
	m.mu.Unlock()
	m.saveConfig()
	m.event("info", "automatic use of new blank disks: %v", on)
	return nil
}

func human(b int64) string {
	switch {
	case b >= 1<<40:
		return fmt.Sprintf("%.1f TiB", float64(b)/(1<<40))
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%d MiB", b>>20)
}

// Mount is where the array's filesystem is mounted.
func (a array) Mount() string { return a.mount }
