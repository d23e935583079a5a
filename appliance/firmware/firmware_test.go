package firmware

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path"
	"slices"
	"testing"

	"github.com/lawbox/appliance/appliance"
)

// fakeFAT is partitions as maps of file name -> content; a partition absent from the map holds no FAT.
type fakeFAT struct {
	parts   map[string]map[string]string
	formats []string
}

func (f *fakeFAT) List(_ context.Context, dev, dir string) ([]string, error) {
	p, ok := f.parts[dev]
	if !ok {
		return nil, errors.New("no FAT")
	}
	var out []string
	for name := range p {
		if path.Dir(name) == dir {
			out = append(out, path.Base(name))
		}
	}
	return out, nil
}
func (f *fakeFAT) Format(_ context.Context, dev, _ string) error {
	f.parts[dev] = map[string]string{}
	f.formats = append(f.formats, dev)
	return nil
}
func (f *fakeFAT) Get(_ context.Context, dev, name, local string) error {
	return os.WriteFile(local, []byte(f.parts[dev][name]), 0o600)
}
func (f *fakeFAT) Put(_ context.Context, dev, local, name string) error {
	b, err := os.ReadFile(local)
	if err != nil {
		return err
	}
	if f.parts[dev] == nil {
		return errors.New("no FAT")
	}
	f.parts[dev][name] = string(b)
	return nil
}

func (f *fakeFAT) Rename(_ context.Context, dev, from, to string) error {
	b, ok := f.parts[dev][from]
	if !ok {
		return errors.New("no such file")
	}
	delete(f.parts[dev], from)
	f.parts[dev][to] = b
	return nil
}
func (f *fakeFAT) Delete(_ context.Context, dev, name string) error {
	if _, ok := f.parts[dev][name]; !ok {
		return errors.New("no such file")
	}
	delete(f.parts[dev], name)
	return nil
}
func (f *fakeFAT) Size(context.Context, string) (int64, error) { return 1000, nil }

type fakeStorage struct{ st appliance.StorageStatus }

func (f fakeStorage) Storage(context.Context) (appliance.StorageStatus, error) { return f.st, nil }

// Booted from the install disk: both members' empty boot partitions are formatted and get the loader and
// the image; a member that has it is left alone; a spare and an unused disk are not touched. Booted some
// other way (no partition holds the running image): nothing is written.
func TestInstall(t *testing.T) {
	dir := t.TempDir()
	loader := dir + "/sd-boot.efi"
	os.WriteFile(loader, []byte("systemd-boot"), 0o600)
	disks := []appliance.StorageDisk{
		{Serial: "A", Role: "member", BootPartition: "/dev/vda1"}, {Serial: "B", Role: "member", BootPartition: "/dev/vdb1"},
		{Serial: "C", Role: "spare", BootPartition: "/dev/vdd1"}, {Serial: "D", Role: "unused"},
	}
	fat := &fakeFAT{parts: map[string]map[string]string{
		"/dev/vdc1": {"/EFI/Linux/lawbox-v2.efi": "image v2", "/EFI/BOOT/BOOTX64.EFI": "systemd-boot"}, // the install disk
		"/dev/vdb1": {"/EFI/Linux/lawbox-v1.efi": "image v1"},                                          // an older install
	}}
	in := &Installer{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Storage: fakeStorage{appliance.StorageStatus{Disks: disks}}, FAT: fat,
		Version: "v2", Partitions: func() []string { return []string{"/dev/vda1", "/dev/vdb1", "/dev/vdc1", "/dev/vdd1"} },
		Loader: loader, TmpDir: dir}
	if err := in.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"/dev/vda1", "/dev/vdb1"} {
		p := fat.parts[dev]
		if p["/EFI/Linux/lawbox-v2.efi"] != "image v2" || p["/EFI/BOOT/BOOTX64.EFI"] != "systemd-boot" || p["/loader/loader.conf"] != loaderConf {
			t.Errorf("%s after the install: %v", dev, p)
		}
	}
	if !slices.Equal(fat.formats, []string{"/dev/vda1"}) {
		t.Errorf("formatted %v, want only the empty /dev/vda1", fat.formats)
	}
	if fat.parts["/dev/vdb1"]["/EFI/Linux/lawbox-v1.efi"] != "image v1" {
		t.Error("the older image on /dev/vdb1 was removed")
	}
	if _, ok := fat.parts["/dev/vdd1"]; ok {
		t.Error("the spare's boot partition was written")
	}

	// Another version running, booted by QEMU's -kernel: no source, nothing written.
	fat.formats = nil
	in.Version = "v3"
	if err := in.Round(context.Background()); err != nil || len(fat.formats) != 0 || len(fat.parts["/dev/vda1"]) != 4 {
		t.Errorf("without a source: %v, formatted %v, vda1 %v", err, fat.formats, fat.parts["/dev/vda1"])
	}
}
