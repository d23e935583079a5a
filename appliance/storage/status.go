package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/hw/disk"
	"github.com/lawbox/appliance/hw/raid"
)

// refresh rebuilds the status the API reports and records state changes as events.
func (m *Manager) refresh(sdisks []appliance.StorageDisk) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastDisks = slices.Clone(sdisks)
	st := appliance.StorageStatus{Disks: sdisks, Persisted: m.persisted, LastScrub: m.cfg.LastScrub}
	st.NextScrub = NextScrub(m.cfg.LastScrub, m.Now())
	st.StoragePolicy = appliance.StoragePolicy{AutoAdd: m.cfg.AutoAdd, ProactiveReplace: !m.cfg.NoProactive, KeepSpare: m.cfg.KeepSpare}
	st.GrowWaits = m.growWait
	roles := map[string]string{} // disk name -> role from the arrays
	states := map[string]string{}
	for _, a := range arrays {
		ra, err := raid.ReadArray(m.SysRoot, a.md)
		if err != nil {
			continue
		}
		out := appliance.Array{Name: a.name, Level: ra.Level, State: ArrayState(ra), SizeBytes: ra.SizeBytes, MismatchSectors: ra.MismatchCnt}
		if ra.Level == "raid5" {
			out.Consistency = ra.Consistency
		}
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
				if m.replacing[serial] {
					m.logEventLocked("warning", "failing disk %s has been copied onto the spare and taken out of the %s array; pull it out", serial, a.name)
				} else {
					m.logEventLocked("critical", "disk %s FAILED in the %s array; the array runs without it: replace the disk", serial, a.name)
				}
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
			sd.BootPartition = m.dev(disk.PartitionName(sd.Device, partBoot))
			switch r {
			case appliance.MemberSpare:
				sd.Role = "spare"
			case appliance.MemberFaulty, appliance.MemberRebuilding:
				sd.State = r
			}
		}
		if l, err := disk.FindLocator(m.SysRoot, sd.Device); err == nil {
			sd.Locate = "off"
			if on, _ := l.On(); on {
				sd.Locate = "on"
			}
		}
		if note := sd.State + sd.Reason; m.diskNote[sd.Serial] != note {
			m.diskNote[sd.Serial] = note
			if sd.State == "refused" || sd.State == "needs_adopt" {
				m.logEventLocked("warning", "disk %s (%s) is not used: %s", sd.Serial, sd.Device, sd.Reason)
			}
		}
		if sd.State == "refused" || sd.State == "needs_adopt" {
			st.Alerts = append(st.Alerts, appliance.NewAlert("warning", "disk %s is not used: %s", sd.Serial, sd.Reason))
		}
	}
	st.Encryption = m.crypt.status()
	st.Alerts = append(st.Alerts, encryptionAlerts(st.Encryption)...)
	st.Space = m.spaceStatus()
	for _, sp := range st.Space {
		st.Alerts = append(st.Alerts, spaceAlerts(sp)...)
	}
	if len(st.Arrays) == 0 {
		st.Alerts = append(st.Alerts, appliance.NewAlert("critical", "no storage is set up: settings are kept in memory only until disks are set up"))
	}
	m.status = emptyNotNull(st)
}

// emptyNotNull gives the status empty lists where it has none: the API shows [] rather than null.
func emptyNotNull(st appliance.StorageStatus) appliance.StorageStatus {
	if st.Alerts == nil {
		st.Alerts = []appliance.Alert{}
	}
	if st.Arrays == nil {
		st.Arrays = []appliance.Array{}
	}
	if st.Disks == nil {
		st.Disks = []appliance.StorageDisk{}
	}
	return st
}

func alertsFor(a appliance.Array, ra raid.Array, readOnly string) []appliance.Alert {
	var out []appliance.Alert
	switch a.State {
	case appliance.ArrayFailed:
		out = append(out, appliance.NewAlert("critical", "the %s array has FAILED: too many disks are missing", a.Name))
	case appliance.ArrayDegraded:
		if ra.RaidDisks-ra.Degraded == 1 {
			out = append(out, appliance.NewAlert("critical", "the %s array is degraded and has NO REDUNDANCY: a single disk holds it; add or replace a disk", a.Name))
			break
		}
		out = append(out, appliance.NewAlert("critical", "the %s array is degraded (%d disk missing): replace the disk", a.Name, ra.Degraded))
	case appliance.ArrayRebuilding:
		out = append(out, appliance.NewAlert("warning", "the %s array is rebuilding", a.Name))
	}
	if a.MismatchSectors > 0 && ra.SyncAction == "idle" {
		out = append(out, appliance.NewAlert("warning", "the last scrub of the %s array found %d mismatched sectors", a.Name, a.MismatchSectors))
	}
	if readOnly != "" {
		out = append(out, appliance.NewAlert("critical", "the %s filesystem %s", a.Name, readOnly))
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

// Locate turns the light that shows where disk serial sits on or off.
func (m *Manager) Locate(_ context.Context, serial string, on bool) error {
	m.mu.Lock()
	dev := ""
	for _, d := range m.status.Disks {
		if d.Serial == serial {
			dev = d.Device
		}
	}
	m.mu.Unlock()
	if dev == "" {
		return fmt.Errorf("locate disk %s: %w", serial, appliance.ErrNotFound)
	}
	l, err := disk.FindLocator(m.SysRoot, dev)
	if errors.Is(err, disk.ErrNoLocator) {
		return fmt.Errorf("locate disk %s: the box has no light for its slot: %w", serial, appliance.ErrConflict)
	}
	if err == nil {
		err = l.Set(on)
	}
	if err != nil {
		return fmt.Errorf("locate disk %s: %w", serial, err)
	}
	m.Log.Info("locate light", "disk", serial, "on", on, "light", l.File)
	return nil // the status reads the light back from sysfs (Storage refreshes it)
}
