package storage

import (
	"fmt"
	"testing"

	"github.com/lawbox/appliance/hw/disk"
	"github.com/lawbox/appliance/hw/raid"
)

// Disks as hw/disk lists them in the QEMU lab (virtio, 4 GiB), and arrays as hw/raid reads them.
func vdisk(name string) disk.Disk {
	return disk.Disk{Name: name, Serial: "S-" + name, Model: "QEMU HARDDISK", SizeBytes: 4 << 30, Transport: "virtio", Path: "pci-" + name}
}

func running(members map[string][]string) map[string]raid.Array {
	out := map[string]raid.Array{}
	for _, a := range arrays {
		devs, ok := members[a.name]
		if !ok {
			continue
		}
		ra := raid.Array{Name: a.md, Level: "raid1", ArrayState: "clean", RaidDisks: 2}
		for i, d := range devs {
			ra.Members = append(ra.Members, raid.Member{Dev: d, State: []string{"in_sync"}, Slot: i})
		}
		ra.Degraded = max(0, 2-len(devs))
		out[a.name] = ra
	}
	return out
}

// members says which disk each member partition is on, "" for the disks named gone.
func members(r map[string]raid.Array, gone ...string) map[string]string {
	out := map[string]string{}
	for _, ra := range r {
		for _, mb := range ra.Members {
			dn := mb.Dev[:len(mb.Dev)-1]
			for _, g := range gone {
				if dn == g {
					dn = ""
				}
			}
			out[mb.Dev] = dn
		}
	}
	return out
}

const (
	systemUUID = "11111111:22222222:33333333:44444444"
	dataUUID   = "55555555:66666666:77777777:88888888"
)

func TestPlan(t *testing.T) {
	ours := known{UUIDs: map[string]string{"system": systemUUID, "data": dataUUID}, AutoAdd: true,
		MemberSerial: map[string]string{"vdb2": "S-vdb", "vdb3": "S-vdb"}}
	blankFirstBoot := known{}
	both := running(map[string][]string{"system": {"vda2", "vdb2"}, "data": {"vda3", "vdb3"}})
	degraded := running(map[string][]string{"system": {"vda2"}, "data": {"vda3"}})
	small := vdisk("vdc")
	small.SizeBytes = 3 << 30
	usb := vdisk("sda")
	usb.Transport = "usb"
	for _, c := range []struct {
		name   string
		o      observed
		k      known
		steps  []string
		states map[string]string // disk -> state
	}{
		{name: "first boot on two blank disks makes the arrays",
			o: observed{Disks: []disk.Disk{vdisk("vda"), vdisk("vdb")}}, k: blankFirstBoot,
			steps: []string{"create on vda vdb"}, states: map[string]string{"vda": "blank", "vdb": "blank"}},
		{name: "first boot with a disk holding data waits for the admin, and makes nothing",
			o: observed{Disks: []disk.Disk{vdisk("vda"), vdisk("vdb")}, Content: map[string]string{"vdb": "an ext4 filesystem"}}, k: blankFirstBoot,
			states: map[string]string{"vda": "blank", "vdb": "needs_adopt"}},
		{name: "first boot once the admin adopted the disk holding data",
			o:     observed{Disks: []disk.Disk{vdisk("vda"), vdisk("vdb")}, Content: map[string]string{"vdb": "an ext4 filesystem"}},
			k:     known{Adopted: map[string]bool{"S-vdb": true}},
			steps: []string{"create on vda vdb"}, states: map[string]string{"vdb": "blank"}},
		{name: "first boot with a USB stick and a disk that cannot be read: neither is used",
			o: observed{Disks: []disk.Disk{vdisk("vda"), usb, vdisk("vdb")}, Unreadable: map[string]bool{"vdb": true}}, k: blankFirstBoot,
			steps: []string{"create on vda"}, states: map[string]string{"sda": "refused", "vdb": "refused"}},
		{name: "a member pulled: its partitions leave both arrays",
			o: observed{Disks: []disk.Disk{vdisk("vda")}, Running: both, MemberDisk: members(both, "vdb")}, k: ours,
			steps: []string{"fail-remove vdb2 from system", "fail-remove vdb3 from data"}, states: map[string]string{"vda": "ok"}},
		{name: "a member returning: taken back into both arrays, not added as new",
			o: observed{Disks: []disk.Disk{vdisk("vda"), vdisk("vdb")}, Running: degraded, MemberDisk: members(degraded),
				Superblocks: map[string]raid.Superblock{"vdb2": {UUID: systemUUID}, "vdb3": {UUID: dataUUID}}, Content: map[string]string{"vdb": "a RAID member"}},
			k: ours, steps: []string{"re-add vdb2 to system", "re-add vdb3 to data"}, states: map[string]string{"vdb": "returning"}},
		{name: "a replacement for the missing disk rebuilds",
			o: observed{Disks: []disk.Disk{vdisk("vda"), vdisk("vdc")}, Running: degraded, MemberDisk: members(degraded)}, k: ours,
			steps: []string{"add vdc"}, states: map[string]string{"vda": "ok", "vdc": "blank"}},
		{name: "a third disk beside a whole pair becomes a spare",
			o: observed{Disks: []disk.Disk{vdisk("vda"), vdisk("vdb"), vdisk("vdc")}, Running: both, MemberDisk: members(both)}, k: ours,
			steps: []string{"add vdc"}, states: map[string]string{"vdc": "blank"}},
		{name: "a new disk waits when automatic use is off",
			o: observed{Disks: []disk.Disk{vdisk("vda"), vdisk("vdc")}, Running: degraded, MemberDisk: members(degraded)},
			k: known{UUIDs: ours.UUIDs}, states: map[string]string{"vdc": "needs_adopt"}},
		{name: "a disk of another unit's arrays is not taken back: it holds data",
			o: observed{Disks: []disk.Disk{vdisk("vda"), vdisk("vdb")}, Running: degraded, MemberDisk: members(degraded),
				Superblocks: map[string]raid.Superblock{"vdb3": {UUID: "99999999:99999999:99999999:99999999"}}, Content: map[string]string{"vdb": "a RAID member"}},
			k: ours, states: map[string]string{"vdb": "needs_adopt"}},
		{name: "a disk smaller than the members, and one that failed, are not used",
			o:      observed{Disks: []disk.Disk{vdisk("vda"), small, vdisk("vdd")}, Running: degraded, MemberDisk: members(degraded)},
			k:      known{UUIDs: ours.UUIDs, AutoAdd: true, Failed: map[string]bool{"S-vdd": true}},
			states: map[string]string{"vdc": "refused", "vdd": "faulty"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			steps, sdisks := plan(c.o, c.k)
			var got []string
			for _, s := range steps {
				got = append(got, s.String())
			}
			if fmt.Sprint(got) != fmt.Sprint(c.steps) {
				t.Errorf("steps %q, want %q", got, c.steps)
			}
			if len(sdisks) != len(c.o.Disks) {
				t.Errorf("%d disks listed, %d seen", len(sdisks), len(c.o.Disks))
			}
			for _, sd := range sdisks {
				if want, ok := c.states[sd.Device]; ok && sd.State != want {
					t.Errorf("%s: %s (%s), want %s", sd.Device, sd.State, sd.Reason, want)
				}
			}
		})
	}
}

// Assembly at boot: the unit's own arrays, degraded too; when the disks carry two arrays of a name (disks
// moved from another unit), the one with the most members present wins, then the most recent; another
// firmware's arrays are not started.
func TestChooseAssembly(t *testing.T) {
	sb := func(name, uuid string, events uint64) raid.Superblock {
		return raid.Superblock{Name: Homehost + ":" + name, UUID: uuid, Events: events}
	}
	for _, c := range []struct {
		name      string
		sbs       map[string]raid.Superblock
		wantUUID  string
		wantParts []string
	}{
		{"whole", map[string]raid.Superblock{"vda3": sb("data", dataUUID, 9), "vdb3": sb("data", dataUUID, 9), "vda2": sb("system", systemUUID, 4)},
			dataUUID, []string{"vda3", "vdb3"}},
		{"degraded: one member left", map[string]raid.Superblock{"vdb3": sb("data", dataUUID, 12)}, dataUUID, []string{"vdb3"}},
		{"a stale member beside the array is part of it (md keeps the newer by events)",
			map[string]raid.Superblock{"vda3": sb("data", dataUUID, 12), "vdb3": sb("data", dataUUID, 7)}, dataUUID, []string{"vda3", "vdb3"}},
		{"another unit's disk: the array with more members present wins",
			map[string]raid.Superblock{"vda3": sb("data", dataUUID, 5), "vdb3": sb("data", dataUUID, 5), "vdc3": sb("data", "other", 900)},
			dataUUID, []string{"vda3", "vdb3"}},
		{"as many members: the more recent wins",
			map[string]raid.Superblock{"vda3": sb("data", dataUUID, 5), "vdc3": sb("data", "other", 900)}, "other", []string{"vdc3"}},
		{"another firmware's array is left alone",
			map[string]raid.Superblock{"vda3": {Name: "nas:data", UUID: "x", Events: 3}}, "", nil},
	} {
		uuid, parts := chooseAssembly(c.sbs, Data)
		if uuid != c.wantUUID || fmt.Sprint(parts) != fmt.Sprint(c.wantParts) {
			t.Errorf("%s: %q %v, want %q %v", c.name, uuid, parts, c.wantUUID, c.wantParts)
		}
	}
}
