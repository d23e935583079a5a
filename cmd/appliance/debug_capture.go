//go:build lawboxtest

package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lawbox/appliance/hw/disk"
	"github.com/lawbox/appliance/hw/raid"
)

// captureStorage writes, as a base64 tar.gz between "debug: capture" and "debug: end", what the storage
// planner reads on this unit (appliance/storage's observe), so that its unit tests run on real inputs
// (appliance/storage/testdata):
//
//	sys/block/NAME              the symlink into sys/devices, as sysfs has it
//	sys/devices/.../NAME/       size, serial, device/{serial,model,vpd_pg80}, queue/logical_block_size,
//	                            each partition's directory (partition, size), md/ of an array (its
//	                            attributes and each member's dev-*/{state,slot})
//	sys/class/block/PART        the partitions' symlinks
//	dev/DISK                    the disk's first and last MiB (what disk.Probe reads), 2 MiB
//	examine/PART, detail/MD     mdadm --examine --export and --detail --export
func captureStorage(out io.Writer, run raid.Runner) error {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	c := capture{tw: tw, run: run}
	ents, err := os.ReadDir("/sys/block")
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "dm-") || strings.HasPrefix(name, "drbd") {
			continue
		}
		if err := c.block(name); err != nil {
			return fmt.Errorf("capture %s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	fmt.Fprintf(out, "debug: capture\n%s\ndebug: end\n", base64.StdEncoding.EncodeToString(buf.Bytes()))
	return nil
}

type capture struct {
	tw  *tar.Writer
	run raid.Runner // commands run under PID 1's reaper
}

func (c capture) file(name string, b []byte) error {
	if err := c.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	_, err := c.tw.Write(b)
	return err
}

func (c capture) link(name, target string) error {
	return c.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: time.Unix(0, 0)})
}

// attrs copies the named sysfs attributes of dir that exist (into the same path under sys/).
func (c capture) attrs(dir string, names ...string) error {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		if err := c.file(strings.TrimPrefix(filepath.Join(dir, n), "/"), b); err != nil {
			return err
		}
	}
	return nil
}

// block captures one entry of /sys/block: a disk (with its partitions and its ends) or an md array.
func (c capture) block(name string) error {
	link := "/sys/block/" + name
	target, err := os.Readlink(link)
	if err != nil {
		return err
	}
	if err := c.link(strings.TrimPrefix(link, "/"), target); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(link)
	if err != nil {
		return err
	}
	if err := c.attrs(real, "size", "serial", "device/serial", "device/model", "device/vpd_pg80", "queue/logical_block_size"); err != nil {
		return err
	}
	if strings.HasPrefix(name, "md") {
		return c.array(name, real)
	}
	ents, _ := os.ReadDir(real)
	for _, e := range ents {
		part := filepath.Join(real, e.Name())
		if _, err := os.Stat(filepath.Join(part, "partition")); err != nil {
			continue
		}
		if err := c.attrs(part, "partition", "size"); err != nil {
			return err
		}
		classLink := "/sys/class/block/" + e.Name()
		t, err := os.Readlink(classLink)
		if err != nil {
			return err
		}
		if err := c.link(strings.TrimPrefix(classLink, "/"), t); err != nil {
			return err
		}
		if err := c.mdadm("examine/"+e.Name(), "--examine", "--export", "/dev/"+e.Name()); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(real, "device")); err == nil {
		// disk.List knows a disk by its device directory; an empty one stands for it when the disk's had
		// no attribute read above.
		if err := c.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(real, "/") + "/device/", Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
	}
	// What disk.Probe reads, as a file Probe reads the same from: its first and last MiB side by side, or
	// the whole disk when it is smaller than a MiB.
	head, tail, err := disk.Ends("/dev/" + name)
	if err != nil {
		return fmt.Errorf("capture %s: %w", name, err)
	}
	if len(head) == 1<<20 {
		head = append(head, tail...)
	}
	return c.file("dev/"+name, head)
}

// array captures an md array's md/ directory and mdadm's --detail.
func (c capture) array(name, real string) error {
	md := filepath.Join(real, "md")
	if err := c.attrs(md, "level", "array_state", "sync_action", "consistency_policy", "raid_disks", "degraded",
		"reshape_position", "mismatch_cnt", "sync_completed", "sync_speed"); err != nil {
		return err
	}
	ents, _ := os.ReadDir(md)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "dev-") {
			if err := c.attrs(filepath.Join(md, e.Name()), "state", "slot"); err != nil {
				return err
			}
		}
	}
	return c.mdadm("detail/"+name, "--detail", "--export", "/dev/"+name)
}

// mdadm captures mdadm's answer (its output whatever its exit: "no superblock" is an answer too).
func (c capture) mdadm(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := c.run(ctx, append([]string{"/sbin/mdadm"}, args...)...)
	return c.file(name, out)
}
