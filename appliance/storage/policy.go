package storage

import (
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/hw/gpt"
	"github.com/lawbox/appliance/hw/raid"
)

// The layout every member disk gets. Sizes are fixed, so a replacement disk gets the same system
// partition as the others; the data partition takes the rest of the disk.
const (
	mib            = 1 << 20
	BootBytes      = 256 * mib // two firmware slots (A/B) and a quarter of one: a slot may take 2/5 of it
	SystemBytes    = 256 * mib // bbolt state, configuration, logs
	MinDiskBytes   = 1 << 30   // below this a disk is refused
	Homehost       = "lawbox"  // stored in our superblocks' names: "lawbox:system", "lawbox:data"
	partBoot       = 1
	partSystem     = 2
	partData       = 3
	alignBytes     = mib
	partNamePrefix = "lawbox-"
)

// Layout returns the GPT for a member disk of size bytes.
func Layout(size int64, sectorSize int) gpt.Table {
	s := func(b int64) uint64 { return uint64(b / int64(sectorSize)) }
	_, lastUsable := gpt.Geometry(size, sectorSize)
	bootFirst := s(alignBytes)
	sysFirst := bootFirst + s(BootBytes)
	dataFirst := sysFirst + s(SystemBytes)
	return gpt.Table{SectorSize: sectorSize, Partitions: []gpt.Partition{
		{Type: gpt.TypeEFISystem, Name: partNamePrefix + "boot", First: bootFirst, Last: sysFirst - 1},
		{Type: gpt.TypeLinuxRAID, Name: partNamePrefix + "system", First: sysFirst, Last: dataFirst - 1},
		{Type: gpt.TypeLinuxRAID, Name: partNamePrefix + "data", First: dataFirst, Last: lastUsable},
	}}
}

// DataLevel is the data array's RAID level for n disks: a mirror for one or two (one disk leaves the
// mirror's second half missing, so a second disk later completes it), RAID 5 from three.
func DataLevel(n int) int {
	if n >= 3 {
		return 5
	}
	return 1
}

// ArrayState sums up what md's sysfs says about an array.
func ArrayState(a raid.Array) string {
	if a.Level == "" || a.ArrayState == "inactive" || a.ArrayState == "" || a.ArrayState == "broken" {
		return appliance.ArrayFailed
	}
	tolerable := 1 // RAID 5
	if a.Level == "raid1" {
		tolerable = a.RaidDisks - 1
	}
	if a.Degraded > tolerable {
		return appliance.ArrayFailed
	}
	switch a.SyncAction {
	case "recover":
		return appliance.ArrayRebuilding
	case "reshape":
		return appliance.ArrayGrowing
	case "resync":
		return appliance.ArrayResyncing
	case "check", "repair":
		return appliance.ArrayChecking
	}
	if a.Degraded > 0 {
		return appliance.ArrayDegraded
	}
	return appliance.ArrayClean
}

// MemberState is a component's state: a device with a slot that is not in sync is being rebuilt; one
// without a slot is a spare.
func MemberState(m raid.Member) string {
	switch {
	case m.Has("faulty"):
		return appliance.MemberFaulty
	case m.Has("in_sync"):
		return appliance.MemberInSync
	case m.Slot >= 0:
		return appliance.MemberRebuilding
	}
	return appliance.MemberSpare
}

// Progress is how far the running sync action is (0..1) and its remaining time, or nil when idle.
func Progress(a raid.Array) (*float64, *int64) {
	if a.SyncTotal <= 0 || a.SyncAction == "idle" || a.SyncAction == "" {
		return nil, nil
	}
	p := float64(a.SyncDone) / float64(a.SyncTotal)
	if a.SyncSpeedKB <= 0 {
		return &p, nil
	}
	eta := (a.SyncTotal - a.SyncDone) * 512 / (a.SyncSpeedKB * 1024)
	return &p, &eta
}

// FirstSunday is 01:00 on the first Sunday of t's month (Debian's mdcheck runs then).
func FirstSunday(t time.Time) time.Time {
	d := time.Date(t.Year(), t.Month(), 1, 1, 0, 0, 0, t.Location())
	for d.Weekday() != time.Sunday {
		d = d.AddDate(0, 0, 1)
	}
	return d
}

// ScrubDue reports whether the monthly scrub should start at now, given when the last one started.
func ScrubDue(last, now time.Time) bool {
	fs := FirstSunday(now)
	return !now.Before(fs) && last.Before(fs)
}

// NextScrub is when the next monthly scrub is due after last, seen from now.
func NextScrub(last, now time.Time) time.Time {
	if ScrubDue(last, now) {
		return now
	}
	fs := FirstSunday(now)
	if now.Before(fs) {
		return fs
	}
	return FirstSunday(time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, now.Location()))
}
