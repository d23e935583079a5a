package disk

import (
	"bytes"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Event is one kernel uevent (NETLINK_KOBJECT_UEVENT).
type Event struct {
	Action    string // add, remove, change, bind, unbind, move, online, offline
	DevPath   string // sysfs path below /sys, e.g. /devices/pci0000:00/.../block/vda
	Subsystem string // "block" for disks and partitions
	DevName   string // "vda", "vda1", "md0"
	DevType   string // "disk" or "partition" for block devices
	Env       map[string]string
}

// Uevents is a socket that receives the kernel's uevents.
type Uevents struct{ fd int }

// ListenUevents opens the socket. It needs root (CAP_NET_ADMIN is not needed to listen to group 1).
func ListenUevents() (*Uevents, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("uevent socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind uevent socket: %w", err)
	}
	return &Uevents{fd: fd}, nil
}

// Read blocks until the next event. After Close it returns an error.
func (u *Uevents) Read() (Event, error) {
	buf := make([]byte, 16<<10)
	for {
		n, _, err := unix.Recvfrom(u.fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return Event{}, fmt.Errorf("read uevent: %w", err)
		}
		if e, ok := ParseUevent(buf[:n]); ok {
			return e, nil
		}
	}
}

// Close closes the socket; a blocked Read returns.
func (u *Uevents) Close() error {
	_ = unix.Shutdown(u.fd, unix.SHUT_RDWR)
	return unix.Close(u.fd)
}

// ParseUevent parses a kernel uevent message: "ACTION@DEVPATH\0KEY=VALUE\0...". Messages from udev
// (they start with "libudev") are not kernel events and are refused.
func ParseUevent(b []byte) (Event, bool) {
	fields := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
	if len(fields) < 2 || !bytes.Contains(fields[0], []byte("@")) {
		return Event{}, false
	}
	e := Event{Env: map[string]string{}}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(string(f), "=")
		if ok {
			e.Env[k] = v
		}
	}
	e.Action, e.DevPath = e.Env["ACTION"], e.Env["DEVPATH"]
	e.Subsystem, e.DevName, e.DevType = e.Env["SUBSYSTEM"], e.Env["DEVNAME"], e.Env["DEVTYPE"]
	if e.Action == "" {
		a, p, _ := strings.Cut(string(fields[0]), "@")
		e.Action, e.DevPath = a, p
	}
	return e, true
}
