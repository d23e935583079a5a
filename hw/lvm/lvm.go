// Package lvm drives LVM2's `lvm` tool: physical volumes, volume groups and logical volumes on a device
// the caller names. Like hw/raid it runs argv only and decides nothing; appliance/storage decides.
//
// The firmware has no udev: every command runs with a configuration that makes libdevmapper create the
// /dev nodes itself, scans only the devices the caller allows (never the md members below them) and keeps
// no cache or devices file.
package lvm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/lawbox/appliance/hw/raid"
)

// LVM runs lvm.
type LVM struct {
	Path    string      // "lvm" when empty
	Run     raid.Runner // raid.Exec when nil
	Devices []string    // the only devices LVM may read (e.g. "/dev/md1"); required
}

// config is passed with every command: no udev, only the allowed devices, no metadata archive on the
// root filesystem (it lives in RAM).
func (l *LVM) config() string {
	var accept []string
	for _, d := range l.Devices {
		accept = append(accept, strconv.Quote("a|^"+d+"$|"))
	}
	return "devices { filter=[" + strings.Join(append(accept, `"r|.*|"`), ",") + "] obtain_device_list_from_udev=0 use_devicesfile=0 } " +
		"activation { udev_sync=0 udev_rules=0 verify_udev_operations=1 monitoring=0 } " +
		"backup { backup=0 archive=0 } global { use_lvmpolld=0 }"
}

func (l *LVM) run(ctx context.Context, cmd string, args ...string) ([]byte, error) {
	path, run := l.Path, l.Run
	if path == "" {
		path = "lvm"
	}
	if run == nil {
		run = execStdout
	}
	if len(l.Devices) == 0 {
		return nil, fmt.Errorf("lvm %s: no devices allowed", cmd)
	}
	return run(ctx, append([]string{path, cmd, "--config", l.config()}, args...)...)
}

// execStdout runs lvm and answers its standard output only (the reports are JSON there; warnings go to
// standard error, such as the one about descriptors the caller left open, which the environment turns
// off); standard error is in the error.
func execStdout(ctx context.Context, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "LVM_SUPPRESS_FD_WARNINGS=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// CreateGroup makes dev a physical volume and the volume group vg on it.
func (l *LVM) CreateGroup(ctx context.Context, vg, dev string) error {
	if _, err := l.run(ctx, "pvcreate", "--yes", dev); err != nil {
		return fmt.Errorf("pvcreate %s: %w", dev, err)
	}
	if _, err := l.run(ctx, "vgcreate", "--yes", vg, dev); err != nil {
		return fmt.Errorf("vgcreate %s on %s: %w", vg, dev, err)
	}
	return nil
}

// CreateVolume makes the logical volume vg/name of size bytes (rounded up to the group's extent), active,
// with its first blocks zeroed (no stale signature under the new volume).
func (l *LVM) CreateVolume(ctx context.Context, vg, name string, size int64) error {
	if _, err := l.run(ctx, "lvcreate", "--yes", "--zero", "y", "--wipesignatures", "y", "--name", name,
		"--size", strconv.FormatInt(size, 10)+"b", vg); err != nil {
		return fmt.Errorf("lvcreate %s/%s: %w", vg, name, err)
	}
	return nil
}

// Snapshot makes name, a copy-on-write snapshot of vg/origin as it is now, with size bytes (rounded up to
// the group's extent) for the blocks the origin changes while the snapshot lives: once they are used up
// the snapshot becomes unreadable, never the origin.
func (l *LVM) Snapshot(ctx context.Context, vg, origin, name string, size int64) error {
	if _, err := l.run(ctx, "lvcreate", "--yes", "--snapshot", "--name", name, "--size", strconv.FormatInt(size, 10)+"b", vg+"/"+origin); err != nil {
		return fmt.Errorf("snapshot %s/%s: %w", vg, origin, err)
	}
	return nil
}

// Remove deletes the volume vg/name (closed), such as a snapshot whose reader is done.
func (l *LVM) Remove(ctx context.Context, vg, name string) error {
	if _, err := l.run(ctx, "lvremove", "--yes", vg+"/"+name); err != nil {
		return fmt.Errorf("lvremove %s/%s: %w", vg, name, err)
	}
	return nil
}

// ResizePhysical makes the physical volume on dev as large as dev now is (after the array under it grew).
func (l *LVM) ResizePhysical(ctx context.Context, dev string) error {
	if _, err := l.run(ctx, "pvresize", dev); err != nil {
		return fmt.Errorf("pvresize %s: %w", dev, err)
	}
	return nil
}

// Extend gives the volume vg/name more bytes (rounded up to the group's extent) from the group's free space.
func (l *LVM) Extend(ctx context.Context, vg, name string, more int64) error {
	if _, err := l.run(ctx, "lvextend", "--size", "+"+strconv.FormatInt(more, 10)+"b", vg+"/"+name); err != nil {
		return fmt.Errorf("lvextend %s/%s: %w", vg, name, err)
	}
	return nil
}

// Activate makes every volume of vg available under /dev/vg/.
func (l *LVM) Activate(ctx context.Context, vg string) error {
	if _, err := l.run(ctx, "vgchange", "--activate", "y", vg); err != nil {
		return fmt.Errorf("activate %s: %w", vg, err)
	}
	return nil
}

// Deactivate removes vg's volumes from /dev (they must be closed): before the array below stops.
func (l *LVM) Deactivate(ctx context.Context, vg string) error {
	if _, err := l.run(ctx, "vgchange", "--activate", "n", vg); err != nil {
		return fmt.Errorf("deactivate %s: %w", vg, err)
	}
	return nil
}

// Group is a volume group as lvm reports it.
type Group struct {
	Name    string
	Size    int64 // bytes
	Free    int64 // bytes not given to a volume
	Volumes []Volume
}

// Volume is a logical volume.
type Volume struct {
	Name   string
	Size   int64
	Active bool
}

// Groups reports the volume groups on the allowed devices and their volumes.
func (l *LVM) Groups(ctx context.Context) ([]Group, error) {
	vgOut, err := l.run(ctx, "vgs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "vg_name,vg_size,vg_free")
	if err != nil {
		return nil, fmt.Errorf("vgs: %w", err)
	}
	lvOut, err := l.run(ctx, "lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "vg_name,lv_name,lv_size,lv_active")
	if err != nil {
		return nil, fmt.Errorf("lvs: %w", err)
	}
	return parseReports(vgOut, lvOut)
}

// parseReports reads `vgs` and `lvs` JSON reports (--units b --nosuffix).
func parseReports(vgOut, lvOut []byte) ([]Group, error) {
	var vgr struct {
		Report []struct {
			VG []struct {
				Name string `json:"vg_name"`
				Size string `json:"vg_size"`
				Free string `json:"vg_free"`
			} `json:"vg"`
		} `json:"report"`
	}
	var lvr struct {
		Report []struct {
			LV []struct {
				VG     string `json:"vg_name"`
				Name   string `json:"lv_name"`
				Size   string `json:"lv_size"`
				Active string `json:"lv_active"`
			} `json:"lv"`
		} `json:"report"`
	}
	if err := json.Unmarshal(vgOut, &vgr); err != nil {
		return nil, fmt.Errorf("read vgs report: %w", err)
	}
	if err := json.Unmarshal(lvOut, &lvr); err != nil {
		return nil, fmt.Errorf("read lvs report: %w", err)
	}
	var out []Group
	for _, r := range vgr.Report {
		for _, v := range r.VG {
			size, err1 := strconv.ParseInt(v.Size, 10, 64)
			free, err2 := strconv.ParseInt(v.Free, 10, 64)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("read vgs report: group %s: size %q free %q", v.Name, v.Size, v.Free)
			}
			out = append(out, Group{Name: v.Name, Size: size, Free: free})
		}
	}
	for _, r := range lvr.Report {
		for _, v := range r.LV {
			size, err := strconv.ParseInt(v.Size, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("read lvs report: volume %s/%s: size %q", v.VG, v.Name, v.Size)
			}
			for i := range out {
				if out[i].Name == v.VG {
					out[i].Volumes = append(out[i].Volumes, Volume{Name: v.Name, Size: size, Active: v.Active == "active"})
				}
			}
		}
	}
	return out, nil
}

// Path is the device of volume name in group vg.
func Path(vg, name string) string { return "/dev/" + vg + "/" + name }

// Labelled reports whether dev carries an LVM physical volume label (in one of its first four sectors).
func Labelled(dev string) (bool, error) {
	f, err := os.Open(dev)
	if err != nil {
		return false, fmt.Errorf("read label of %s: %w", dev, err)
	}
	defer f.Close()
	b := make([]byte, 4*512)
	if _, err := io.ReadFull(f, b); err != nil {
		return false, fmt.Errorf("read label of %s: %w", dev, err)
	}
	return hasLabel(b), nil
}

func hasLabel(b []byte) bool {
	for off := 0; off+8 <= len(b) && off < 4*512; off += 512 {
		if string(b[off:off+8]) == "LABELONE" {
			return true
		}
	}
	return false
}
