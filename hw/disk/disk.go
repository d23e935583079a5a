// Package disk lists the machine's block disks from sysfs: name, serial, model, size, transport and the
// hardware path they hang from. It reads only; it does not partition or watch disks.
package disk

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Disk is one whole block device backed by hardware (not a partition, md array, loop or RAM disk).
type Disk struct {
	Name      string `json:"name"`   // kernel name, e.g. "vda", "nvme0n1", "sda"
	Serial    string `json:"serial"` // serial as the device reports it; "" if it reports none
	Model     string `json:"model"`  // model string; "" if the device reports none
	SizeBytes int64  `json:"size_bytes"`
	Transport string `json:"transport"` // "virtio", "nvme", "sata", "usb", "scsi"
	Path      string `json:"path"`      // hardware path, e.g. "pci-0000:01:00.0"; stable across boots
}

// ErrNoSysfs means the sysfs root has no block directory (sysfs not mounted, or a wrong root).
var ErrNoSysfs = errors.New("no block devices directory in sysfs")

var skipPrefixes = []string{"loop", "ram", "zram", "md", "dm-", "sr", "nbd", "fd"}

// List returns the disks under sysRoot (normally "/sys"), sorted by name. A disk that vanishes while it is
// read is left out, not an error.
func List(sysRoot string) ([]Disk, error) {
	blockDir := filepath.Join(sysRoot, "block")
	entries, err := os.ReadDir(blockDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("list disks in %s: %w", blockDir, ErrNoSysfs)
		}
		return nil, fmt.Errorf("list disks in %s: %w", blockDir, err)
	}
	var out []Disk
	for _, e := range entries {
		name := e.Name()
		if skip(name) {
			continue
		}
		d, ok := read(blockDir, name)
		if ok {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func skip(name string) bool {
	for _, p := range skipPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func read(blockDir, name string) (Disk, bool) {
	dir := filepath.Join(blockDir, name)
	if _, err := os.Stat(filepath.Join(dir, "device")); err != nil {
		return Disk{}, false // virtual device, or gone
	}
	sectors, err := strconv.ParseInt(attr(dir, "size"), 10, 64)
	if err != nil {
		return Disk{}, false
	}
	real, _ := filepath.EvalSymlinks(dir)
	d := Disk{Name: name, SizeBytes: sectors * 512, Path: hwPath(real)}
	switch {
	case strings.HasPrefix(name, "vd"):
		d.Transport = "virtio"
		d.Serial = attr(dir, "serial")
	case strings.HasPrefix(name, "nvme"):
		d.Transport = "nvme"
		d.Serial = attr(dir, "device/serial")
		d.Model = attr(dir, "device/model")
	default:
		d.Transport = "scsi"
		if strings.Contains(real, "/ata") {
			d.Transport = "sata"
		} else if strings.Contains(real, "/usb") {
			d.Transport = "usb"
		}
		d.Model = attr(dir, "device/model")
		if b, err := os.ReadFile(filepath.Join(dir, "device/vpd_pg80")); err == nil {
			d.Serial = ParseVPD80(b)
		}
	}
	return d, true
}

func attr(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ParseVPD80 returns the unit serial number from a SCSI VPD page 0x80 (as sysfs' vpd_pg80 holds it).
func ParseVPD80(b []byte) string {
	if len(b) < 4 || b[1] != 0x80 {
		return ""
	}
	n := int(b[2])<<8 | int(b[3])
	if 4+n > len(b) {
		n = len(b) - 4
	}
	return strings.TrimSpace(strings.TrimRight(string(b[4:4+n]), "\x00"))
}

var pciAddr = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)
var ataPort = regexp.MustCompile(`^ata[0-9]+$`)

// hwPath turns a resolved sysfs device path into a udev-like by-path name: the last PCI function the disk
// hangs from, plus the ATA port for SATA disks.
func hwPath(real string) string {
	var pci, ata string
	for _, c := range strings.Split(real, "/") {
		switch {
		case pciAddr.MatchString(c):
			pci = c
		case ataPort.MatchString(c):
			ata = c
		}
	}
	if pci == "" {
		return ""
	}
	p := "pci-" + pci
	if ata != "" {
		p += "-" + ata
	}
	return p
}
