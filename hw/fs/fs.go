// Package fs makes, checks and mounts the appliance's ext4 filesystems (moved from appliance/storage).
package fs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// ext4, not XFS: e2fsck has a preen mode (-p) that fixes only what is safe and stops on anything else,
// which is the filesystem-check policy below; ext4 can also shrink, and mke2fs/e2fsck are small.
const fsType = "ext4"

// Mkfs makes an ext4 filesystem labelled label on dev.
func Mkfs(ctx context.Context, dev, label string) error {
	out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", label, "-m", "1", dev).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %w: %s", dev, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Grow makes the ext4 filesystem on dev as large as dev, mounted (the kernel grows it online): after
// the volume or the array under it grew. Run again with nothing to do, it changes nothing.
func Grow(ctx context.Context, dev string) error {
	out, err := exec.CommandContext(ctx, "resize2fs", dev).CombinedOutput()
	if err != nil {
		return fmt.Errorf("resize2fs %s: %w: %s", dev, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// CheckResult is what the boot-time check allows.
type CheckResult int

const (
	CheckOK       CheckResult = iota // clean, or only safe fixes were made
	CheckReadOnly                    // errors preen mode would not fix: mount read-only, tell the admin
)

// Check runs e2fsck in preen mode: it repairs only what needs no decision and exits with 4 on anything else.
// It never answers yes to a question that could throw data away; that is left to a person.
func Check(ctx context.Context, dev string) (CheckResult, string, error) {
	out, err := exec.CommandContext(ctx, "e2fsck", "-p", dev).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return CheckOK, "", nil
	case errors.As(err, &ee) && ee.ExitCode() < 4: // 1: errors corrected, 2: corrected, reboot advised
		return CheckOK, strings.TrimSpace(string(out)), nil
	case errors.As(err, &ee) && ee.ExitCode()&4 != 0:
		return CheckReadOnly, strings.TrimSpace(string(out)), nil
	}
	return CheckReadOnly, "", fmt.Errorf("e2fsck %s: %w: %s", dev, err, strings.TrimSpace(string(out)))
}

// Mount mounts dev at dir; errors=remount-ro makes the kernel stop writing on the first metadata error.
func Mount(dev, dir string, readOnly bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mount %s: %w", dir, err)
	}
	var flags uintptr = unix.MS_NOATIME | unix.MS_NODEV | unix.MS_NOSUID
	if readOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(dev, dir, fsType, flags, "errors=remount-ro"); err != nil {
		return fmt.Errorf("mount %s on %s: %w", dev, dir, err)
	}
	return nil
}

// MountedAt reports the device mounted at dir ("" if none), from /proc/self/mounts.
func MountedAt(dir string) string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	dev := ""
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 2 && fs[1] == dir {
			dev = fs[0]
		}
	}
	return dev
}

func Unmount(dir string) error {
	if err := unix.Unmount(dir, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}
