package disk

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoLocator means the hardware has no light to show where a disk sits (no enclosure, no hot-plug slot
// with an attention indicator).
var ErrNoLocator = errors.New("no locate light for this disk")

// Locator is the light that shows where a disk sits in the box, as ledctl drives it: the slot's locate
// light of a SES enclosure (the kernel's ses driver), or the attention indicator of the PCIe hot-plug slot
// the disk's controller is in (pciehp; NVMe drive bays are such slots).
type Locator struct {
	Kind string // "enclosure" or "pcie-slot"
	File string // the sysfs file that drives it
}

// FindLocator finds the locate light of disk name (kernel name) under sysRoot (normally "/sys").
func FindLocator(sysRoot, name string) (Locator, error) {
	dev := filepath.Join(sysRoot, "block", filepath.Base(name), "device")
	// The ses driver links the disk's SCSI device to its enclosure slot: enclosure_device:<slot>.
	if links, _ := filepath.Glob(filepath.Join(dev, "enclosure_device:*")); len(links) > 0 {
		f := filepath.Join(links[0], "locate")
		if _, err := os.Stat(f); err == nil {
			return Locator{Kind: "enclosure", File: f}, nil
		}
	}
	real, err := filepath.EvalSymlinks(filepath.Join(sysRoot, "block", filepath.Base(name)))
	if err != nil {
		return Locator{}, fmt.Errorf("locate %s: %w", name, err)
	}
	// A hot-plug slot's address is the domain:bus:device of what sits in it; the disk's PCI functions, from
	// the nearest to it up.
	slots := map[string]string{}
	dirs, _ := filepath.Glob(filepath.Join(sysRoot, "bus", "pci", "slots", "*"))
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "attention")); err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d, "address")); err == nil {
			slots[strings.TrimSpace(string(b))] = filepath.Join(d, "attention")
		}
	}
	parts := strings.Split(real, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if !pciAddr.MatchString(parts[i]) {
			continue
		}
		if f, ok := slots[parts[i][:len(parts[i])-2]]; ok { // "0000:01:00.0" is in slot "0000:01:00"
			return Locator{Kind: "pcie-slot", File: f}, nil
		}
	}
	return Locator{}, fmt.Errorf("locate %s: %w", name, ErrNoLocator)
}

// Values written to a PCIe slot's attention file with an attention indicator (the kernel's pciehp):
// 0 off, 1 on, 2 blinking; reading it answers the same. A locating light blinks.
const (
	slotOff   = "0"
	slotBlink = "2"
)

// Set turns the light on (blinking where it can) or off.
func (l Locator) Set(on bool) error {
	v := map[bool]string{true: "1", false: "0"}[on]
	if l.Kind == "pcie-slot" {
		v = map[bool]string{true: slotBlink, false: slotOff}[on]
	}
	if err := os.WriteFile(l.File, []byte(v), 0); err != nil {
		return fmt.Errorf("set locate light %s: %w", l.File, err)
	}
	return nil
}

// On says whether the light is on.
func (l Locator) On() (bool, error) {
	b, err := os.ReadFile(l.File)
	if err != nil {
		return false, fmt.Errorf("read locate light %s: %w", l.File, err)
	}
	v := strings.TrimSpace(string(b))
	return v == "1" || v == slotBlink, nil // pciehp answers 255 for a reserved value
}
