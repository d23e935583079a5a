// Package sysinit does the few things PID 1 must do to the kernel before anything else runs: mount the
// pseudo filesystems, read the kernel command line, name the host, and halt or reboot the machine.
// It does not load modules (see hw/kmod) or start services (see appliance/supervise).
package sysinit

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount is one filesystem PID 1 mounts at boot.
type Mount struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
	Mode                   os.FileMode
}

// BaseMounts are the pseudo filesystems every later part of the appliance expects, in mount order.
var BaseMounts = []Mount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o555},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o555},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755", 0o755},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666", 0o755},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", 0o1777},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755", 0o755},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", 0o1777},
}

// MountAll mounts ms under root in order. A target that is already mounted is left alone.
func MountAll(root string, ms []Mount) error {
	var errs []error
	for _, m := range ms {
		target := root + m.Target
		if err := os.MkdirAll(target, m.Mode); err != nil {
			errs = append(errs, fmt.Errorf("mkdir %s: %w", target, err))
			continue
		}
		if err := unix.Mount(m.Source, target, m.FSType, m.Flags, m.Data); err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.FSType, target, err))
		}
	}
	return errors.Join(errs...)
}

// ParseCmdline splits a kernel command line into key/value pairs. A bare word maps to "".
// Quoted values ("a b") keep their spaces.
func ParseCmdline(s string) map[string]string {
	out := map[string]string{}
	var fields []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case (r == ' ' || r == '\n' || r == '\t') && !quoted:
			if cur.Len() > 0 {
				fields = append(fields, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		fields = append(fields, cur.String())
	}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		out[k] = v
	}
	return out
}

// ReadCmdline reads and parses the running kernel's command line from procRoot (normally "/proc").
func ReadCmdline(procRoot string) (map[string]string, error) {
	b, err := os.ReadFile(procRoot + "/cmdline")
	if err != nil {
		return nil, fmt.Errorf("read kernel command line: %w", err)
	}
	return ParseCmdline(string(b)), nil
}

// SetHostname sets the kernel's host name.
func SetHostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("set hostname %q: %w", name, err)
	}
	return nil
}

// Action is what happens to the machine when the appliance stops.
type Action int

// The ways the machine can stop.
const (
	PowerOff Action = iota
	Reboot
)

func (a Action) String() string {
	if a == Reboot {
		return "reboot"
	}
	return "power off"
}

// Halt flushes the filesystems and powers the machine off or reboots it. It returns only on failure.
// Callers stop their services and unmount persistent filesystems first.
func Halt(a Action) error {
	unix.Sync()
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if a == Reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	if err := unix.Reboot(cmd); err != nil {
		return fmt.Errorf("%s: %w", a, err)
	}
	return nil
}
