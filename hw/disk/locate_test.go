package disk

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// sysTree makes the sysfs files of a unit with an NVMe disk in a hot-plug slot that has an attention
// indicator, a virtio disk in a slot without one, and a SAS disk in a SES enclosure.
func sysTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	file := func(p, v string) {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	nvme := "devices/pci0000:00/0000:00:02.0/0000:01:00.0/nvme/nvme0/nvme0n1"
	link("../devices/pci0000:00/0000:00:02.0/0000:01:00.0/nvme/nvme0/nvme0n1", "sys/block/nvme0n1")
	file("sys/"+nvme+"/size", "4194304\n")
	link("../../nvme0", "sys/"+nvme+"/device")
	file("sys/bus/pci/slots/2/address", "0000:01:00\n")
	file("sys/bus/pci/slots/2/attention", "0\n")

	vd := "devices/pci0000:00/0000:00:03.0/0000:02:00.0/virtio3/block/vda"
	file("sys/"+vd+"/size", "4194304\n")
	link("../devices/pci0000:00/0000:00:03.0/0000:02:00.0/virtio3/block/vda", "sys/block/vda")
	link("../../../virtio3", "sys/"+vd+"/device")
	file("sys/bus/pci/slots/3/address", "0000:02:00\n") // no attention indicator

	sd := "devices/pci0000:00/0000:00:04.0/host0/port-0:0/end_device-0:0/target0:0:0/0:0:0:0/block/sda"
	file("sys/"+sd+"/size", "4194304\n")
	link("../devices/pci0000:00/0000:00:04.0/host0/port-0:0/end_device-0:0/target0:0:0/0:0:0:0/block/sda", "sys/block/sda")
	link("../../../0:0:0:0", "sys/"+sd+"/device")
	file("sys/class/enclosure/0:0:1:0/Slot 01/locate", "0\n")
	link(filepath.Join(root, "sys/class/enclosure/0:0:1:0/Slot 01"), "sys/devices/pci0000:00/0000:00:04.0/host0/port-0:0/end_device-0:0/target0:0:0/0:0:0:0/enclosure_device:Slot 01")
	return filepath.Join(root, "sys")
}

// The light of a disk is found where the hardware has one: the enclosure's slot, or the hot-plug slot the
// NVMe disk sits in; turned on, the slot's indicator blinks (2) and the enclosure's locate is 1; a disk in a
// slot without an indicator has none.
func TestFindLocator(t *testing.T) {
	sys := sysTree(t)
	for _, tc := range []struct {
		disk, kind, file, on string
	}{
		{"nvme0n1", "pcie-slot", "bus/pci/slots/2/attention", "2"},
		{"sda", "enclosure", "class/enclosure/0:0:1:0/Slot 01/locate", "1"},
	} {
		l, err := FindLocator(sys, tc.disk)
		if err != nil {
			t.Fatalf("%s: %v", tc.disk, err)
		}
		want, _ := filepath.EvalSymlinks(filepath.Join(sys, tc.file))
		got, _ := filepath.EvalSymlinks(l.File)
		if l.Kind != tc.kind || got != want {
			t.Errorf("%s: %+v, want %s at %s", tc.disk, l, tc.kind, want)
		}
		if on, err := l.On(); err != nil || on {
			t.Errorf("%s at first: on %v %v", tc.disk, on, err)
		}
		if err := l.Set(true); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(want); string(b) != tc.on {
			t.Errorf("%s turned on: the file says %q, want %q", tc.disk, b, tc.on)
		}
		if on, err := l.On(); err != nil || !on {
			t.Errorf("%s turned on: on %v %v", tc.disk, on, err)
		}
		if err := l.Set(false); err != nil {
			t.Fatal(err)
		}
		if on, _ := l.On(); on {
			t.Errorf("%s turned off: still on", tc.disk)
		}
	}
	if _, err := FindLocator(sys, "vda"); !errors.Is(err, ErrNoLocator) {
		t.Errorf("a disk in a slot without an indicator: %v", err)
	}
	if _, err := FindLocator(sys, "vdz"); err == nil || errors.Is(err, ErrNoLocator) {
		t.Errorf("a disk that is not there: %v", err)
	}
}
