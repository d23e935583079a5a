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
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
	"github.com/lawbox/appliance/hw/disk"
	"github.com/lawbox/appliance/hw/fs"
	"github.com/lawbox/appliance/hw/luks"
	"github.com/lawbox/appliance/hw/lvm"
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
	AutoAdd     bool              `json:"auto_add"`
	NoProactive bool              `json:"no_proactive_replace"` // do not copy a failing disk onto a spare
	LastScrub   time.Time         `json:"last_scrub"`
	ScrubResume map[string]int64  `json:"scrub_resume,omitempty"` // array -> sector to resume from
	Bays        map[string]string `json:"bays,omitempty"`         // slot -> the name an admin gave its bay
	KeepSpare   bool              `json:"keep_spare,omitempty"`   // new disks wait as spares: the arrays do not grow onto them
	Growing     bool              `json:"growing,omitempty"`      // the data array is growing: its volume and filesystem follow
}

// Manager runs the storage. Prepare it before the state store opens (the store lives on the system
// array), then Attach the store and Run it.
type Manager struct {
	Log          *slog.Logger
	MD           *raid.MDADM
	LVM          *lvm.LVM               // the volumes on the data array; nil: a new data array holds its filesystem directly
	Crypt        *luks.Cryptsetup       // the data array's encryption; nil: a new data array is not encrypted
	TPM          Sealer                 // the box's TPM, which keeps the unit key (nil: none)
	SysRoot      string                 // "/sys"
	DevRoot      string                 // "/dev"
	OnPersistent func(dir string) error // called when the system array is mounted after Prepare
	Now          func() time.Time
	Interval     time.Duration       // resync period; uevents trigger a pass at once
	Volumes      map[string][]Volume // by array: the volumes whose use the status shows

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
	readOnly     map[string]string          // array -> why its filesystem is not writable ("is read-only: ...")
	replacing    map[string]bool            // serials being copied onto a spare before they fail
	health       func(serial string) string // a disk's SMART health ("ok", "watch", "replace", "failed")
	lastBackup   func(context.Context) time.Time
	growWait     string    // why the data array did not grow onto its spare
	growTried    time.Time // when the pass last tried
	noPPL        bool      // the data array has no room for a partial parity log (keepConsistent)
	noBitmap     bool      // its bitmap could not be put back (said once)
	growStuck    bool      // finishGrow failed (said once)
	status       appliance.StorageStatus
	lastDisks    []appliance.StorageDisk // the last pass's classification, before roles from the arrays
	lastState    map[string]string
	diskNote     map[string]string // serial -> last state+reason, to record changes once
	persisted    bool
	grouped      bool // the data array holds the volume group (not a filesystem directly)
	crypt        cryptState
	holders      func() []appliance.KeyHolder // who keeps secrets for this unit's disks (SetHolders)
	space        spaceState
	unsealed     bool // the state store has its sealed buckets' key (unsealState)
	sealFailed   bool // it could not be given (said once)
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
		m.replacing = map[string]bool{}
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
		m.stepFailed(err, "The arrays could not all be started: the unit serves what it could start; check the disks on the storage page.")
	}
	m.reconcile(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.persisted, nil
}

// Attach gives the manager the state store: its settings, where events go, and (once the data array is
// mounted) its sealed buckets' key.
func (m *Manager) Attach(st *state.Store) {
	m.attach(st)
	m.unsealState()
}

func (m *Manager) attach(st *state.Store) {
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
	go m.measureSpace(ctx)
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
		if fs.MountedAt(a.mount) != "" {
			if err := fs.Unmount(a.mount); err != nil {
				m.Log.Error("unmount", "array", a.name, "err", err)
				continue
			}
		}
		if a.name == Data.name && m.groupedNow() {
			if err := m.LVM.Deactivate(ctx, VolumeGroup); err != nil {
				m.Log.Error("deactivate volumes", "err", err)
				continue
			}
		}
		if a.name == Data.name && m.cryptKey() != nil {
			if err := m.Crypt.Close(ctx, CryptName); err != nil {
				m.Log.Error("close the encrypted data array", "err", err)
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
	m.record(level, msg)
}

// record adds msg to the state store's history (kept until the store is attached).
func (m *Manager) record(level, msg string) {
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

// stepFailed records a step that failed: in the history, the sentence (what failed, in words an office can
// act on, and that the log says why); in the log, the tool's own words too.
func (m *Manager) stepFailed(err error, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	m.Log.Error(msg, "err", err)
	m.record("critical", msg+" The unit's log says why.")
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

// reconcile looks at every disk and array and acts: removes pulled members, takes back returning ones,
// uses blank disks, refuses what does not fit, creates the arrays at first boot. Then it refreshes the
// status.
func (m *Manager) reconcile(ctx context.Context) {
	o, err := m.observe(ctx)
	if err != nil {
		m.Log.Error("list disks", "err", err)
		return
	}
	m.mu.Lock()
	for _, d := range o.Disks {
		m.devSerial[d.Name] = d.Serial
	}
	k := known{Adopted: maps.Clone(m.adopt), Failed: maps.Clone(m.failed), AutoAdd: m.cfg.AutoAdd, UUIDs: maps.Clone(m.uuids),
		Bays: maps.Clone(m.cfg.Bays), MemberSerial: maps.Clone(m.memberSerial)}
	m.mu.Unlock()
	steps, sdisks := plan(o, k)

	// Pulled disks first: md does not notice until its next I/O, so their members are failed and removed now.
	running := o.Running
	pulled := false
	for _, s := range steps {
		if s.Kind != stepFailRemove {
			continue
		}
		pulled = true
		if err := raid.FailRemove(m.SysRoot, s.Array.md, s.Dev); err != nil {
			m.stepFailed(err, "Disk %s was pulled but could not be taken out of the %s array; the unit tries again.", s.Serial, s.Array.name)
		} else {
			m.event("warning", "disk %s (%s) was pulled; removed it from the %s array", s.Serial, s.Dev, s.Array.name)
		}
	}
	if pulled {
		running = m.runningArrays()
	}
	m.replaceFailing(running)
	for _, s := range steps {
		switch s.Kind {
		case stepReAdd:
			if err := m.readd(ctx, s.Array, s.Dev); err != nil {
				m.stepFailed(err, "Disk %s came back but could not rejoin the %s array; the unit tries again at its next check.", s.Serial, s.Array.name)
			}
		case stepCreate:
			m.create(ctx, s.Disks)
		case stepAdd:
			m.addDisk(ctx, s.Disks[0], running)
		}
	}
	if len(running) > 0 {
		m.retryUnlock(ctx)
		m.keepHeld(ctx)
		m.growPass(ctx)
		m.keepConsistent(ctx)
	}
	m.unsealState()
	m.refresh(sdisks)
}

// runningArrays reads the state of the arrays that run.
func (m *Manager) runningArrays() map[string]raid.Array {
	running := map[string]raid.Array{}
	for _, a := range arrays {
		if ra, err := raid.ReadArray(m.SysRoot, a.md); err == nil {
			running[a.name] = ra
		}
	}
	return running
}

// observe reads what plan decides on: the disks, the running arrays and their members' disks, and, on
// the disks in no running array, this firmware's superblocks and what else they hold.
func (m *Manager) observe(ctx context.Context) (observed, error) {
	disks, err := disk.List(m.SysRoot)
	if err != nil {
		return observed{}, err
	}
	o := observed{Disks: disks, Running: m.runningArrays(), MemberDisk: map[string]string{}, Content: map[string]string{}, Unreadable: map[string]bool{}}
	inUse := map[string]bool{}
	for _, ra := range o.Running {
		for _, mb := range ra.Members {
			dn := disk.DiskOf(m.SysRoot, mb.Dev)
			o.MemberDisk[mb.Dev] = dn
			inUse[dn] = true
		}
	}
	var unused []disk.Disk
	for _, d := range disks {
		if inUse[d.Name] {
			continue
		}
		unused = append(unused, d)
		content, err := disk.Probe(m.dev(d.Name))
		if err != nil {
			m.Log.Warn("probe disk", "disk", d.Serial, "err", err)
			o.Unreadable[d.Name] = true
		}
		o.Content[d.Name] = content
	}
	o.Superblocks = m.superblocks(ctx, unused)
	return o, nil
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

// SetPolicy changes what happens to new blank disks and to disks SMART says are failing.
func (m *Manager) SetPolicy(ctx context.Context, p appliance.StoragePolicyChange) error {
	for slot, name := range p.Bays {
		if err := appliance.CheckBay(name); err != nil {
			return err
		}
		if slot == "" {
			return fmt.Errorf("a bay name without its slot: %w", appliance.ErrBadInput)
		}
	}
	m.mu.Lock()
	for slot, name := range p.Bays {
		if m.cfg.Bays == nil {
			m.cfg.Bays = map[string]string{}
		}
		if name = strings.TrimSpace(name); name == "" {
			delete(m.cfg.Bays, slot)
		} else {
			m.cfg.Bays[slot] = name
		}
		for i, d := range m.status.Disks {
			if d.Slot == slot {
				m.status.Disks[i].Bay = m.cfg.Bays[slot]
			}
		}
	}
	if p.AutoAdd != nil {
		m.cfg.AutoAdd = *p.AutoAdd
		m.status.AutoAdd = *p.AutoAdd
	}
	if p.ProactiveReplace != nil {
		m.cfg.NoProactive = !*p.ProactiveReplace
		m.status.ProactiveReplace = *p.ProactiveReplace
	}
	if p.KeepSpare != nil {
		m.cfg.KeepSpare = *p.KeepSpare
		m.status.KeepSpare = *p.KeepSpare
	}
	pol := m.status.StoragePolicy
	m.mu.Unlock()
	m.saveConfig()
	m.event("info", "storage policy: use new blank disks automatically %v, copy failing disks onto a spare %v, keep new disks as spares %v",
		pol.AutoAdd, pol.ProactiveReplace, pol.KeepSpare)
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

// replaceFailing starts a proactive replacement (md's want_replacement, as mdadm --replace) of an in-sync
// member whose disk SMART says to replace, when the array is otherwise idle and has a spare: the data is
// copied off the failing disk while it still reads, instead of rebuilt after it dies.
func (m *Manager) replaceFailing(running map[string]raid.Array) {
	m.mu.Lock()
	off, health := m.cfg.NoProactive, m.health
	m.mu.Unlock()
	if off || health == nil {
		return
	}
	for _, a := range arrays {
		ra, ok := running[a.name]
		if !ok || ra.SyncAction != "idle" || ra.Degraded > 0 {
			continue
		}
		spare := ""
		for _, mb := range ra.Members {
			if MemberState(mb) == appliance.MemberSpare {
				spare = mb.Dev
			}
		}
		if spare == "" {
			continue
		}
		for _, mb := range ra.Members {
			serial := m.serialOf(mb.Dev)
			if h := health(serial); MemberState(mb) != appliance.MemberInSync || mb.Has("want_replacement") || (h != "replace" && h != "failed") {
				continue
			}
			if err := raid.SetMemberState(m.SysRoot, a.md, mb.Dev, "want_replacement"); err != nil {
				m.stepFailed(err, "Failing disk %s could not start being copied onto the spare; the unit tries again.", serial)
				continue
			}
			m.mu.Lock()
			m.replacing[serial] = true
			m.mu.Unlock()
			m.event("warning", "disk %s is failing (SMART: %s): copying its part of the %s array onto spare disk %s before it fails", serial, health(serial), a.name, m.serialOf(spare))
			break // one replacement per array at a time
		}
	}
}

// serialOf is the serial of the disk a member partition is on.
func (m *Manager) serialOf(dev string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.devSerial[disk.DiskOf(m.SysRoot, dev)]; s != "" {
		return s
	}
	return m.memberSerial[dev]
}

// SetHealth connects the SMART verdicts that drive proactive replacement.
func (m *Manager) SetHealth(f func(serial string) string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.health = f
}

// DataReady reports whether /data is mounted writable on the data array and the settings are persistent:
// what a service that keeps data there waits for.
func (m *Manager) DataReady() bool {
	m.mu.Lock()
	ok := m.persisted && m.readOnly[Data.name] == ""
	m.mu.Unlock()
	return ok && fs.MountedAt(Data.mount) != ""
}
