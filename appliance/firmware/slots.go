package firmware

import (
	"fmt"
	"regexp"
	"strconv"
)

// A slot is one firmware version's unified kernel image in /EFI/Linux of every member's boot partition.
// Its file name carries its state, as systemd-boot's automatic boot assessment (UAPI.1 Boot Loader
// Specification) reads and writes it:
//
//	lawbox-V.efi       blessed: booted and found healthy (or installed from media)
//	lawbox-V+3.efi     on trial: systemd-boot boots it while tries are left, counting each boot
//	lawbox-V+2-1.efi   ... renamed by systemd-boot at each boot (2 tries left, 1 done)
//	lawbox-V+0-3.efi   failed: out of tries; systemd-boot sorts it last and boots the previous slot
//
// Slots sort by the IMAGE_VERSION of their os-release (the build number): systemd-boot boots the newest
// slot that is not out of tries. The unit keeps two: the running one and the one before it.

// Tries is how many boots a new slot gets to become healthy.
const Tries = 3

// Entry is a slot as its file name says.
type Entry struct {
	Name    string
	Version string
	Left    int // tries left; -1: not counted (blessed)
	Done    int
}

// Blessed is a slot that is not on trial.
func (e Entry) Blessed() bool { return e.Left < 0 }

// Failed is a slot out of tries: systemd-boot does not boot it while another slot can be booted.
func (e Entry) Failed() bool { return e.Left == 0 }

var entryName = regexp.MustCompile(`^lawbox-([A-Za-z0-9._-]+?)(?:\+(\d+)(?:-(\d+))?)?\.efi$`)

// ParseEntry reads a slot's file name; ok is false for any other file.
func ParseEntry(name string) (e Entry, ok bool) {
	m := entryName.FindStringSubmatch(name)
	if m == nil {
		return e, false
	}
	e = Entry{Name: name, Version: m[1], Left: -1}
	if m[2] != "" {
		e.Left, _ = strconv.Atoi(m[2])
		if m[3] != "" {
			e.Done, _ = strconv.Atoi(m[3])
		}
	}
	return e, true
}

// Slot is the file name of a blessed slot.
func Slot(version string) string { return "lawbox-" + version + ".efi" }

// trying is the file name of a new slot with its tries.
func trying(version string) string { return fmt.Sprintf("lawbox-%s+%d.efi", version, Tries) }

// failed is the file name that marks a slot out of tries.
func failed(version string) string { return "lawbox-" + version + "+0.efi" }

// entries are the slots among a directory's names.
func entries(names []string) []Entry {
	var out []Entry
	for _, n := range names {
		if e, ok := ParseEntry(n); ok {
			out = append(out, e)
		}
	}
	return out
}

// find is version's slot among names.
func find(names []string, version string) (Entry, bool) {
	for _, e := range entries(names) {
		if e.Version == version {
			return e, true
		}
	}
	return Entry{}, false
}

// versionName is a version that can stand in a slot's file name (no "+": it starts the tries counter).
var versionName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
