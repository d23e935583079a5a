package qemutests

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// PullDisk removes a disk as a person pulling it from its bay would (PCIe hot unplug; PCIe disks only).
func (vm *VM) PullDisk(id string) error {
	if _, err := vm.QMP.Execute("device_del", map[string]any{"id": id}); err != nil {
		return fmt.Errorf("pull disk %s: %w", id, err)
	}
	return nil
}

// InsertDisk hot-plugs a new virtio or NVMe disk into the next free PCIe root port.
func (vm *VM) InsertDisk(d Disk) error {
	if d.Kind == AHCI {
		return fmt.Errorf("insert disk %s: AHCI ports here are not hot-pluggable", d.ID)
	}
	if vm.freePort >= rootPorts {
		return fmt.Errorf("insert disk %s: no free root port", d.ID)
	}
	if err := vm.createDisk(&d); err != nil {
		return err
	}
	if _, err := vm.QMP.Execute("blockdev-add", blockdev(d)); err != nil {
		return fmt.Errorf("insert disk %s: %w", d.ID, err)
	}
	driver := "virtio-blk-pci"
	if d.Kind == NVMe {
		driver = "nvme"
	}
	args := map[string]any{"driver": driver, "drive": d.ID, "id": d.ID, "serial": d.Serial, "bus": fmt.Sprintf("rp%d", vm.freePort)}
	if d.Faulty && driver == "virtio-blk-pci" {
		args["write-zeroes"] = false // as diskArgs: only InjectIOError moves blkdebug
	}
	if _, err := vm.QMP.Execute("device_add", args); err != nil {
		return fmt.Errorf("insert disk %s: %w", d.ID, err)
	}
	vm.freePort++
	return nil
}

// InjectIOError makes every later read, write and flush of a Faulty virtio disk fail with EIO. The trigger
// is a 4 KiB write of zeros at 1 MiB, inside the appliance's (unused) boot partition.
func (vm *VM) InjectIOError(id string) error {
	cmd := fmt.Sprintf("qemu-io -d /machine/peripheral/%s/virtio-backend \"write -z 1M 4k\"", id)
	out, err := vm.QMP.Execute("human-monitor-command", map[string]any{"command-line": cmd})
	if err != nil {
		return fmt.Errorf("inject I/O error on %s: %w", id, err)
	}
	var s string
	_ = json.Unmarshal(out, &s)
	if s != "" && !strings.Contains(s, "wrote") {
		return fmt.Errorf("inject I/O error on %s: qemu-io said %q", id, s)
	}
	return nil
}

// SetLink connects (up) or disconnects a NIC by its device id ("mgmt", "lan").
func (vm *VM) SetLink(id string, up bool) error {
	if _, err := vm.QMP.Execute("set_link", map[string]any{"name": id, "up": up}); err != nil {
		return fmt.Errorf("set link %s up=%v: %w", id, up, err)
	}
	return nil
}

// SetNVMeCriticalWarning sets the critical-warning bits an NVMe disk reports in its SMART log.
func (vm *VM) SetNVMeCriticalWarning(id string, bits uint8) error {
	if _, err := vm.QMP.Execute("qom-set", map[string]any{"path": "/machine/peripheral/" + id, "property": "smart_critical_warning", "value": bits}); err != nil {
		return fmt.Errorf("set SMART critical warning on %s: %w", id, err)
	}
	return nil
}

// NVMeCriticalWarning reads the bits back from QEMU.
func (vm *VM) NVMeCriticalWarning(id string) (uint8, error) {
	out, err := vm.QMP.Execute("qom-get", map[string]any{"path": "/machine/peripheral/" + id, "property": "smart_critical_warning"})
	if err != nil {
		return 0, fmt.Errorf("get SMART critical warning of %s: %w", id, err)
	}
	var v uint8
	if err := json.Unmarshal(out, &v); err != nil {
		return 0, fmt.Errorf("decode critical warning %s: %w", out, err)
	}
	return v, nil
}

// SlotAttention reads, from QEMU's side, the attention indicator of the PCIe slot (root port) disk id sits
// in: "on", "blink", "off" or "reserved", the Attention Indicator Control bits of the port's Slot Control
// register, read from the PCI Express configuration space (ECAM) as the guest's writes left it.
func (vm *VM) SlotAttention(id string) (string, error) {
	hmp := func(cmd string) (string, error) {
		out, err := vm.QMP.Execute("human-monitor-command", map[string]any{"command-line": cmd})
		var s string
		if err == nil {
			err = json.Unmarshal(out, &s)
		}
		return s, err
	}
	var bus string
	out, err := vm.QMP.Execute("qom-get", map[string]any{"path": "/machine/peripheral/" + id, "property": "parent_bus"})
	if err == nil {
		err = json.Unmarshal(out, &bus)
	}
	if err != nil {
		return "", fmt.Errorf("slot of disk %s: %w", id, err)
	}
	port := filepath.Base(filepath.Dir(bus)) // "/machine/peripheral/rp1/rp1.0"
	pci, err := hmp("info pci")
	if err != nil {
		return "", fmt.Errorf("slot of disk %s: info pci: %w", id, err)
	}
	var b, d, f uint64 = 0, 0, 0
	found := false
	for _, dev := range strings.Split(pci, "  Bus ")[1:] {
		if strings.Contains(dev, fmt.Sprintf("id %q", port)) {
			_, err = fmt.Sscanf(strings.TrimSpace(dev), "%d, device %d, function %d:", &b, &d, &f)
			found = err == nil
		}
	}
	if !found {
		return "", fmt.Errorf("slot of disk %s: root port %q not in info pci (%v)", id, port, err)
	}
	var mcfg uint64
	out, err = vm.QMP.Execute("qom-get", map[string]any{"path": "/machine/q35", "property": "MCFG"})
	if err == nil {
		err = json.Unmarshal(out, &mcfg)
	}
	if err != nil {
		return "", fmt.Errorf("the PCI Express configuration space's base: %w", err)
	}
	read32 := func(off uint64) (uint32, error) {
		s, err := hmp(fmt.Sprintf("xp /1wx %#x", mcfg+b<<20+d<<15+f<<12+off))
		var v uint64
		if err == nil { // "00000000b0008034: 0x00000054"
			v, err = strconv.ParseUint(strings.TrimSpace(s[strings.Index(s, ":")+1:]), 0, 32)
		}
		return uint32(v), err
	}
	next, err := read32(0x34) // the capabilities list
	for ptr := next & 0xfc; err == nil && ptr != 0; ptr = next >> 8 & 0xfc {
		if next, err = read32(uint64(ptr)); err == nil && next&0xff == 0x10 { // PCI Express
			var ctl uint32
			if ctl, err = read32(uint64(ptr) + 0x18); err == nil {
				return [4]string{"reserved", "on", "blink", "off"}[ctl>>6&3], nil
			}
		}
	}
	return "", fmt.Errorf("slot control of %s (disk %s): %v", port, id, err)
}
