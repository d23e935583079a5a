package qemutests

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A box with blank disks boots its install disk under UEFI (OVMF, systemd-boot, the unified kernel image);
// once the arrays exist the firmware is on both members' boot partitions. Powered off, the install disk
// taken out, the unit boots from its own disks, with its settings; and from the second disk alone.
func TestInstallAndBootFromDisks(t *testing.T) {
	t.Parallel()
	im := image(t)
	members := keep(t, Disk{ID: "a", Kind: Virtio, Serial: "FW-A", SizeMiB: 1024}, Disk{ID: "b", Kind: Virtio, Serial: "FW-B", SizeMiB: 1024})
	inst := filepath.Join(t.TempDir(), "installer.img")
	if err := copyFile(filepath.Join(im.root, im.Installer), inst); err != nil {
		t.Fatal(err)
	}
	u := boot(t, Config{UEFI: true, Disks: append(members, Disk{ID: "inst", Kind: Virtio, Serial: "INSTALL", Path: inst})})
	if !strings.Contains(u.Console(), "EFI stub: Loaded initrd") {
		t.Errorf("not booted by UEFI from the unified kernel image:\n%s", tail(u.Console()))
	}
	tok := u.setupAndLogin()
	u.waitStates(tok, "system=clean data=clean", 3*time.Minute)
	installed := regexp.MustCompile(`firmware installed: the unit boots from this disk.* partition=(\S+)`)
	var parts []string
	for range members {
		m, err := u.Expect(installed, 3*time.Minute)
		if err != nil {
			t.Fatalf("%v\n%s", err, tail(u.Console()))
		}
		parts = append(parts, m[1])
	}
	t.Logf("firmware installed on %v", parts)
	u.shutdown(tok, "poweroff")

	u = boot(t, Config{UEFI: true, Disks: members})
	if u.code != "" {
		t.Fatal("booted from its disks, the unit asks for setup again")
	}
	if c := u.Console(); !strings.Contains(c, "EFI stub: Loaded initrd") || !strings.Contains(c, "booting") {
		t.Errorf("not booted from its disks by UEFI:\n%s", tail(c))
	}
	tok = u.login()
	u.waitStates(tok, "system=clean data=clean", 3*time.Minute)
	u.shutdown(tok, "poweroff")

	// The first disk pulled: the second alone boots the unit (degraded), from its own boot partition.
	u = boot(t, Config{UEFI: true, Disks: members[1:]})
	if u.code != "" || !strings.Contains(u.Console(), "EFI stub: Loaded initrd") {
		t.Fatalf("booted from %s alone: setup code %q\n%s", members[1].Serial, u.code, tail(u.Console()))
	}
	u.login()
}
