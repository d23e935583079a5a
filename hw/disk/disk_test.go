package disk

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// fakeSysfs builds a tree shaped like the one the appliance sees under QEMU q35 (captured from a guest):
// /sys/block/X is a symlink into /sys/devices/..., attributes are files.
func fakeSysfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dev := func(name, devPath string, files map[string]string) {
		full := filepath.Join(root, "devices", devPath, "block", name)
		for f, v := range files {
			p := filepath.Join(full, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Join(root, "block"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(full, filepath.Join(root, "block", name)); err != nil {
			t.Fatal(err)
		}
	}
	vpd := append([]byte{0x00, 0x80, 0x00, 0x0c}, []byte("QM00001     ")...)
	dev("vda", "pci0000:00/0000:00:02.0/0000:01:00.0/virtio1", map[string]string{
		"size": "524288\n", "serial": "SN-A\n", "device/vendor": "0x1af4\n"})
	dev("nvme0n1", "pci0000:00/0000:00:02.1/0000:02:00.0/nvme/nvme0", map[string]string{
		"size": "1048576\n", "device/serial": "NVME-1  \n", "device/model": "QEMU NVMe Ctrl\n"})
	dev("sda", "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0", map[string]string{
		"size": "262144\n", "device/model": "QEMU HARDDISK   \n", "device/vpd_pg80": string(vpd)})
	// A partition-less md array and a loop device have no "device" link: not disks.
	if err := os.MkdirAll(filepath.Join(root, "block", "md0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "block", "md0", "size"), []byte("100\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestList(t *testing.T) {
	root := fakeSysfs(t)
	got, err := List(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []Disk{
		{Name: "nvme0n1", Serial: "NVME-1", Model: "QEMU NVMe Ctrl", SizeBytes: 1048576 * 512, Transport: "nvme", Path: "pci-0000:02:00.0"},
		{Name: "sda", Serial: "QM00001", Model: "QEMU HARDDISK", SizeBytes: 262144 * 512, Transport: "sata", Path: "pci-0000:00:1f.2-ata1"},
		{Name: "vda", Serial: "SN-A", SizeBytes: 524288 * 512, Transport: "virtio", Path: "pci-0000:01:00.0"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List() =\n%+v\nwant\n%+v", got, want)
	}
}

func TestListNoSysfs(t *testing.T) {
	_, err := List(t.TempDir())
	if !errors.Is(err, ErrNoSysfs) {
		t.Errorf("List(empty) error = %v, want ErrNoSysfs", err)
	}
}

func TestParseVPD80(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{append([]byte{0, 0x80, 0, 4}, "AB12"...), "AB12"},
		{append([]byte{0, 0x80, 0, 9}, "AB12"...), "AB12"}, // length past the end: clipped
		{[]byte{0, 0x83, 0, 0}, ""},                        // wrong page
		{nil, ""},
	} {
		if got := ParseVPD80(tc.in); got != tc.want {
			t.Errorf("ParseVPD80(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
