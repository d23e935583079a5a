package qemutests

import (
	"encoding/json"
	"fmt"
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
