package storage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lawbox/appliance/hw/raid"
)

// unpackCapture unpacks a capture of the QEMU suite (testdata/NAME.tar.gz: sysfs' block tree with its
// symlinks, the disks' ends, mdadm's answers; cmd/appliance's captureStorage) into a directory.
func unpackCapture(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name+".tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return root
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.Clean("/"+h.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		default:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, b, 0o644)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// capturedManager reads a capture as the unit read its own machine: sysfs and /dev under root, mdadm
// answering what it answered there.
func capturedManager(root string) *Manager {
	mdadm := func(_ context.Context, argv ...string) ([]byte, error) {
		if len(argv) != 4 || argv[1] != "--examine" {
			return nil, errors.New("the capture holds mdadm --examine --export DEV only")
		}
		out, err := os.ReadFile(filepath.Join(root, "examine", filepath.Base(argv[3])))
		if err == nil && bytes.Contains(out, []byte("No md superblock")) {
			err = errors.New("exit status 1")
		}
		return out, err
	}
	return &Manager{Log: slog.New(slog.DiscardHandler), SysRoot: filepath.Join(root, "sys"), DevRoot: filepath.Join(root, "dev"),
		MD: &raid.MDADM{Path: "mdadm", Run: mdadm}}
}

// capturedUUIDs is what the unit remembers of its arrays: the running ones' UUIDs as mdadm --detail said.
func capturedUUIDs(t *testing.T, root string) map[string]string {
	out := map[string]string{}
	for _, a := range arrays {
		b, err := os.ReadFile(filepath.Join(root, "detail", a.md))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "MD_UUID="); ok {
				out[a.name] = v
			}
		}
	}
	return out
}

// pull takes a disk out of a captured tree as the kernel does when it is pulled: gone from sysfs' block
// and class trees and from /dev, while md still lists its members.
func pull(t *testing.T, root, name string) {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(root, "sys", "class", "block", name+"*"))
	for _, p := range append(matches, filepath.Join(root, "sys", "block", name), filepath.Join(root, "dev", name)) {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
}

// leave takes a disk's members out of the captured arrays, as md does with a member that failed or was
// pulled, while the disk (back in its slot) keeps its superblocks.
func leave(t *testing.T, root, name string) {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(root, "sys", "devices", "virtual", "block", "md*", "md", "dev-"+name+"*"))
	if len(matches) == 0 {
		t.Fatalf("no member of %s in the capture", name)
	}
	for _, p := range matches {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
}

// The planner on what real units read (captured by the QEMU suite: LAWBOX_CAPTURE=DIR make qemu-test):
// observe reads each capture as the unit read its machine, plan decides, and the decisions are those the
// unit took there; variations change one thing of a captured state (an admin's adoption, a pulled disk).
func TestPlanCaptured(t *testing.T) {
	raid5 := []string{"R5-A pci-0000:01:00.0 member ok: ", "R5-B pci-0000:02:00.0 member ok: ", "R5-C pci-0000:03:00.0 member ok: ",
		"SMALL pci-0000:04:00.0 unused refused: too small: 512 MiB, at least 1.0 GiB is needed",
		"OLD-FS pci-0000:05:00.0 unused needs_adopt: holds an ext2/3/4 filesystem; adopt it to erase it and use it"}
	for _, tc := range []struct {
		name, capture string
		change        func(t *testing.T, root string, k *known)
		disks         []string // serial slot role state: reason
		steps         []string
	}{
		{name: "first boot: a blank disk and an NVMe disk holding a filesystem", capture: "first-boot-foreign",
			disks: []string{"OLD-B pci-0000:02:00.0 unused needs_adopt: holds an ext2/3/4 filesystem; adopt it to erase it and use it",
				"NEW-A pci-0000:01:00.0 unused blank: "}},
		{name: "first boot: the filesystem's disk adopted", capture: "first-boot-foreign",
			change: func(_ *testing.T, _ string, k *known) { k.Adopted = map[string]bool{"OLD-B": true} },
			disks:  []string{"OLD-B pci-0000:02:00.0 unused blank: ", "NEW-A pci-0000:01:00.0 unused blank: "}, steps: []string{"create on nvme0n1 vda"}},
		{name: "RAID 5 running, a disk too small and one holding a filesystem", capture: "raid5-odd-disks", disks: raid5},
		{name: "RAID 5 running, a member pulled", capture: "raid5-odd-disks", change: func(t *testing.T, root string, _ *known) { pull(t, root, "vdb") },
			disks: slices.Delete(slices.Clone(raid5), 1, 2), steps: []string{"fail-remove vdb2 from system", "fail-remove vdb3 from data"}},
		{name: "RAID 5 running, a member back in its slot", capture: "raid5-odd-disks", change: func(t *testing.T, root string, _ *known) { leave(t, root, "vdb") },
			disks: slices.Replace(slices.Clone(raid5), 1, 2, "R5-B pci-0000:02:00.0 unused returning: taken back into the arrays"),
			steps: []string{"re-add vdb2 to system", "re-add vdb3 to data"}},
		{name: "RAID 5 running, the filesystem's disk adopted: a spare", capture: "raid5-odd-disks",
			change: func(_ *testing.T, _ string, k *known) { k.Adopted = map[string]bool{"OLD-FS": true} },
			disks:  slices.Replace(slices.Clone(raid5), 4, 5, "OLD-FS pci-0000:05:00.0 unused blank: "), steps: []string{"add vde"}},
		{name: "RAID 1 running degraded, the pulled member removed", capture: "raid1-pulled", disks: []string{"R1-A pci-0000:01:00.0 member ok: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := unpackCapture(t, tc.capture)
			m := capturedManager(root)
			k := known{UUIDs: capturedUUIDs(t, root), AutoAdd: true}
			if tc.change != nil {
				tc.change(t, root, &k)
			}
			o, err := m.observe(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			steps, sdisks := plan(o, k)
			var gotSteps, gotDisks []string
			for _, s := range steps {
				gotSteps = append(gotSteps, s.String())
			}
			for _, d := range sdisks {
				gotDisks = append(gotDisks, d.Serial+" "+d.Slot+" "+d.Role+" "+d.State+": "+d.Reason)
			}
			if !slices.Equal(gotSteps, tc.steps) || !slices.Equal(gotDisks, tc.disks) {
				t.Errorf("steps %q\nwant  %q\ndisks %q\nwant  %q", gotSteps, tc.steps, gotDisks, tc.disks)
			}
		})
	}
}
