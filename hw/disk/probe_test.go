package disk

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIdentify(t *testing.T) {
	blank := func() ([]byte, []byte) { return make([]byte, probeSpan), make([]byte, probeSpan) }
	cases := []struct {
		name string
		set  func(h, t []byte)
		want string
	}{
		{"blank", func(h, t []byte) {}, ""},
		{"gpt", func(h, t []byte) { copy(h[512:], "EFI PART") }, "a GPT partition table"},
		{"md 1.2", func(h, t []byte) { copy(h[4096:], "\xfc\x4e\x2b\xa9") }, "an md RAID member (metadata 1.x)"},
		{"md 1.0", func(h, t []byte) { copy(t[len(t)-8192:], "\xfc\x4e\x2b\xa9") }, "an md RAID member (metadata 1.0 or 0.90)"},
		{"ext4", func(h, t []byte) { copy(h[1080:], "\x53\xef") }, "an ext2/3/4 filesystem"},
		{"xfs", func(h, t []byte) { copy(h, "XFSB") }, "an XFS filesystem"},
		{"mbr", func(h, t []byte) { copy(h[510:], "\x55\xaa") }, "an MBR partition table or boot sector"},
		{"one byte at the end", func(h, t []byte) { t[len(t)-1] = 1 }, "unrecognised data"},
		{"one byte in the middle of the head", func(h, t []byte) { h[700000] = 0xff }, "unrecognised data"},
	}
	for _, c := range cases {
		h, tl := blank()
		c.set(h, tl)
		if got := Identify(h, tl); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestProbeAndWipeFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(p, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := Probe(p); err != nil || got != "" {
		t.Fatalf("blank file: %q %v", got, err)
	}
	f, _ := os.OpenFile(p, os.O_WRONLY, 0)
	f.WriteAt([]byte("\x53\xef"), 1080)
	f.WriteAt([]byte("x"), 2<<20) // the middle is not looked at, and not wiped
	f.Close()
	if got, _ := Probe(p); got != "an ext2/3/4 filesystem" {
		t.Fatalf("ext4: %q", got)
	}
	if err := Wipe(p); err != nil {
		t.Fatal(err)
	}
	if got, _ := Probe(p); got != "" {
		t.Fatalf("after wipe: %q", got)
	}
	b, _ := os.ReadFile(p)
	if b[2<<20] != 'x' {
		t.Error("wipe touched the middle")
	}
	if _, err := Probe(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "probe") {
		t.Errorf("missing device: %v", err)
	}
}

func TestPartitionName(t *testing.T) {
	for in, want := range map[string]string{"vda": "vda3", "sdb": "sdb3", "nvme0n1": "nvme0n1p3", "mmcblk0": "mmcblk0p3"} {
		if got := PartitionName(in, 3); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

func TestParseUevent(t *testing.T) {
	msg := "remove@/devices/pci0000:00/0000:00:02.1/0000:02:00.0/virtio3/block/vdb\x00ACTION=remove\x00" +
		"DEVPATH=/devices/pci0000:00/0000:00:02.1/0000:02:00.0/virtio3/block/vdb\x00SUBSYSTEM=block\x00" +
		"MAJOR=254\x00MINOR=16\x00DEVNAME=vdb\x00DEVTYPE=disk\x00DISKSEQ=5\x00SEQNUM=1234\x00"
	e, ok := ParseUevent([]byte(msg))
	if !ok || e.Action != "remove" || e.Subsystem != "block" || e.DevName != "vdb" || e.DevType != "disk" ||
		e.Env["SEQNUM"] != "1234" || !strings.HasSuffix(e.DevPath, "/block/vdb") {
		t.Errorf("%+v %v", e, ok)
	}
	if _, ok := ParseUevent([]byte("libudev\x00\xfe\xed")); ok {
		t.Error("udev's binary message accepted")
	}
}
