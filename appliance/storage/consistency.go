package storage

import (
	"context"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/hw/raid"
)

// The RAID 5 write hole (docs/storage.md). A RAID 5 that loses power while writing has stripes whose
// parity may not match their data. With every member present md rewrites that parity from the data (the
// bitmap says where), and nothing is wrong; with a member missing, the missing member's blocks of those
// stripes are computed from that parity, and come back wrong, silently. md's partial parity log (PPL)
// closes it: it logs enough before each write to make the stripe consistent again at the next start,
// degraded too. It excludes the write-intent bitmap, which makes the resync after a power cut and the
// return of a member short. So the data array keeps the bitmap while it has every member and the log
// while one is missing, which is when the hole can bite.

// dataOffset is where the data starts on each member of the data array: room for the partial parity log
// (1 MiB) and for moving the data when the array grows, whatever the disks' size (mdadm's own choice
// leaves small members none).
const dataOffset = "8M"

// consistencyFor is the policy a RAID 5 should have: the log while degraded, else the bitmap.
func consistencyFor(a raid.Array) string {
	if a.Degraded > 0 {
		return raid.PPL
	}
	return raid.Bitmap
}

// keepConsistent moves the data array to the policy its members call for, when md is idle (neither can
// be switched during a sync action).
func (m *Manager) keepConsistent(ctx context.Context) {
	a, err := raid.ReadArray(m.SysRoot, Data.md)
	if err != nil || a.Level != "raid5" || a.Reshaping || a.SyncAction != "idle" || ArrayState(a) == appliance.ArrayFailed {
		return
	}
	want := consistencyFor(a)
	if a.Consistency == want {
		return
	}
	m.mu.Lock()
	stuck := m.noPPL
	m.mu.Unlock()
	if want == raid.PPL && stuck {
		return
	}
	if err := m.MD.SetConsistency(ctx, m.dev(Data.md), a.Consistency, want); err != nil {
		m.Log.Error("consistency policy", "want", want, "err", err) // md's words stay in the log
		// Said once a boot: an array made before the log, on small disks, has no room for it.
		if want == raid.PPL {
			m.mu.Lock()
			m.noPPL = true
			m.mu.Unlock()
			m.event("critical", "the data array runs without one of its disks and could not turn on its partial parity log "+
				"(its metadata has no room for it): until the disk is replaced, a power cut while it writes could leave wrong data in it. Replace the disk soon")
			return
		}
		m.mu.Lock()
		again := m.noBitmap
		m.noBitmap = true
		m.mu.Unlock()
		if !again { // said once a boot; tried again every pass
			m.event("critical", "the data array could not get its write-intent bitmap back (the unit's log says why): a power cut will be followed by a full resync")
		}
		return
	}
	m.mu.Lock()
	m.noBitmap = false
	m.mu.Unlock()
	if want == raid.PPL {
		m.event("info", "the data array runs without one of its disks: it now logs each write's parity first (PPL), so a power cut cannot leave wrong data in it; the write-intent bitmap comes back once it is complete again")
	} else {
		m.event("info", "the data array is complete: back to its write-intent bitmap (PPL off)")
	}
}

// dirtyDegradedWithPPL reports whether md said it started array md dirty and degraded with the log
// (which then made the stripes being written consistent again).
func dirtyDegradedWithPPL(md string) bool {
	said, _ := raid.KernelSaid("/dev/kmsg", "md/raid:"+md+": starting dirty degraded array with PPL")
	return said
}
