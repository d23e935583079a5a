package storage

import (
	"fmt"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/hw/disk"
	"github.com/lawbox/appliance/hw/raid"
)

// The storage part's decisions, apart from the tools. What a pass saw (observed) and what the unit knows
// (known) go in; what to do (steps) and how each disk stands (the storage page's list) come out. plan does
// no I/O and is table-tested; reconcile observes, plans and carries the steps out.

// observed is what one pass saw on the unit.
type observed struct {
	Disks   []disk.Disk
	Running map[string]raid.Array // array name -> its state, for the arrays that run
	// MemberDisk is each running member's disk ("" when its disk is gone: pulled, md has not noticed).
	MemberDisk map[string]string
	// Superblocks are this firmware's md superblocks on the partitions of disks in no running array.
	Superblocks map[string]raid.Superblock
	// Content is what each disk in no running array holds ("" blank: no partition table, filesystem or
	// superblock found); Unreadable, the disks that could not be read.
	Content    map[string]string
	Unreadable map[string]bool
}

// known is what the unit remembers.
type known struct {
	Adopted, Failed map[string]bool   // by serial: an admin said this disk may be erased; it failed in an array
	AutoAdd         bool              // blank disks join a set-up unit by themselves
	UUIDs           map[string]string // array name -> this unit's array
	Bays            map[string]string // hardware path -> the bay's name the admin gave
	MemberSerial    map[string]string // member device -> the serial its disk had (a pulled disk is named)
}

type stepKind int

const (
	stepFailRemove stepKind = iota // a member whose disk is gone: fail and remove it
	stepReAdd                      // a member of this unit's array that came back: take it back
	stepCreate                     // first boot: make the arrays on the blank disks
	stepAdd                        // a blank disk joins the running arrays (a rebuild, or a spare)
)

// step is one thing reconcile does.
type step struct {
	Kind   stepKind
	Array  array       // stepFailRemove, stepReAdd
	Dev    string      // stepFailRemove: the member device; stepReAdd: the partition
	Serial string      // the disk's
	Disks  []disk.Disk // stepCreate: the blank disks; stepAdd: the one
}

func (s step) String() string {
	switch s.Kind {
	case stepFailRemove:
		return fmt.Sprintf("fail-remove %s from %s", s.Dev, s.Array.name)
	case stepReAdd:
		return fmt.Sprintf("re-add %s to %s", s.Dev, s.Array.name)
	case stepCreate:
		names := ""
		for _, d := range s.Disks {
			names += " " + d.Name
		}
		return "create on" + names
	}
	return "add " + s.Disks[0].Name
}

// plan decides a pass: members whose disk is gone leave their arrays; every other disk is classified (a
// member, returning, blank, waiting for an admin, refused, faulty); blank disks make the arrays on a unit
// that has none, once no disk is left undecided, or join the running ones.
func plan(o observed, k known) ([]step, []appliance.StorageDisk) {
	var steps []step
	inUse := map[string]bool{}
	for _, a := range arrays {
		ra, ok := o.Running[a.name]
		if !ok {
			continue
		}
		for _, mb := range ra.Members {
			if dn := o.MemberDisk[mb.Dev]; dn != "" {
				inUse[dn] = true
				continue
			}
			steps = append(steps, step{Kind: stepFailRemove, Array: a, Dev: mb.Dev, Serial: k.MemberSerial[mb.Dev]})
		}
	}
	setUp := len(o.Running) > 0
	minMember := int64(0)
	for _, d := range o.Disks {
		if inUse[d.Name] && (minMember == 0 || d.SizeBytes < minMember) {
			minMember = d.SizeBytes
		}
	}
	var sdisks []appliance.StorageDisk
	var blanks []disk.Disk
	undecided := 0
	for _, d := range o.Disks {
		sd := appliance.StorageDisk{Serial: d.Serial, Model: d.Model, SizeBytes: d.SizeBytes, Slot: d.Path, Bay: k.Bays[d.Path], Device: d.Name, Role: "unused"}
		if inUse[d.Name] {
			sd.Role, sd.State = "member", "ok"
			sdisks = append(sdisks, sd)
			continue
		}
		var readds []step
		sd.State, sd.Reason, readds = classify(d, o, k, setUp, minMember)
		steps = append(steps, readds...)
		switch sd.State {
		case "blank":
			blanks = append(blanks, d)
		case "needs_adopt":
			undecided++
		}
		sdisks = append(sdisks, sd)
	}
	switch {
	case !setUp && len(blanks) > 0 && undecided == 0:
		steps = append(steps, step{Kind: stepCreate, Disks: blanks})
	case setUp:
		for _, d := range blanks {
			steps = append(steps, step{Kind: stepAdd, Serial: d.Serial, Disks: []disk.Disk{d}})
		}
	}
	return steps, sdisks
}

// classify says what to do with a disk that is in no running array: "blank" (use it), "needs_adopt",
// "refused", "returning" (taken back: the steps), "faulty"; and why.
func classify(d disk.Disk, o observed, k known, setUp bool, minMember int64) (string, string, []step) {
	if d.Transport == "usb" {
		return "refused", "USB disks are never used for storage", nil
	}
	if k.Failed[d.Serial] {
		return "faulty", "this disk failed in the array; replace it", nil
	}
	if d.SizeBytes < MinDiskBytes {
		return "refused", fmt.Sprintf("too small: %s, at least %s is needed", human(d.SizeBytes), human(MinDiskBytes)), nil
	}
	if setUp && minMember > 0 && d.SizeBytes < minMember {
		return "refused", fmt.Sprintf("too small: %s, the smallest member disk is %s", human(d.SizeBytes), human(minMember)), nil
	}
	// A member of this unit's arrays that came back (re-inserted, or left out at assembly): take it back.
	var readds []step
	for _, a := range arrays {
		p := disk.PartitionName(d.Name, a.part)
		if sb, ok := o.Superblocks[p]; ok && setUp && sb.UUID == k.UUIDs[a.name] {
			readds = append(readds, step{Kind: stepReAdd, Array: a, Dev: p, Serial: d.Serial})
		}
	}
	if len(readds) > 0 {
		return "returning", "taken back into the arrays", readds
	}
	if !k.Adopted[d.Serial] {
		if o.Unreadable[d.Name] {
			return "refused", "cannot be read (the unit's log says why): check its cable or replace it", nil
		}
		if c := o.Content[d.Name]; c != "" {
			return "needs_adopt", fmt.Sprintf("holds %s; adopt it to erase it and use it", c), nil
		}
		if setUp && !k.AutoAdd {
			return "needs_adopt", "blank; automatic use of new disks is off: adopt it to use it", nil
		}
	}
	return "blank", "", nil
}
