// Package firmware puts the running firmware on the unit's own disks, so that UEFI boots it from any of
// them: every member disk's boot partition is made an EFI system partition holding systemd-boot and the
// firmware's unified kernel image, copied from where the unit booted (the install disk, or a member that
// has it). A disk added or replaced later gets the same. Updates (update.go) add a slot beside the running
// one, signed bundles only, and keep it only when the unit becomes healthy on it (slots.go).
package firmware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// FAT is what the installer does on a FAT partition (hw/fat with mtools).
type FAT interface {
	List(ctx context.Context, dev, dir string) ([]string, error)
	Format(ctx context.Context, dev, label string) error
	Get(ctx context.Context, dev, name, local string) error
	Put(ctx context.Context, dev, local, name string) error
	Rename(ctx context.Context, dev, from, to string) error
	Delete(ctx context.Context, dev, name string) error
	Size(ctx context.Context, dev string) (int64, error)
}

// Storage is where the member disks and their boot partitions are listed.
type Storage interface {
	Storage(ctx context.Context) (appliance.StorageStatus, error)
}

// Installer keeps the firmware on every member disk's boot partition. Long-running: Run(ctx).
type Installer struct {
	Log        *slog.Logger
	Storage    Storage
	FAT        FAT
	Version    string          // the running firmware's version: its image is lawbox-VERSION.efi
	Partitions func() []string // every partition of every disk ("/dev/vdc1"): where the unit may have booted from
	Loader     string          // systemd-boot in the running image ("/lib/lawbox/systemd-bootx64.efi")
	TmpDir     string          // where the image is staged while it is copied
	Every      time.Duration   // between rounds; 0: 30 s

	mu       sync.Mutex // one writer of the boot partitions at a time: this, or an update
	noSource bool       // said once: the firmware was not booted from a disk
}

// loaderConf boots the newest firmware at once; nobody edits the kernel command line at the console.
const loaderConf = "timeout 0\neditor no\n"

// Label is the FAT label of a boot partition the installer made.
const Label = "LAWBOX"

// Run installs in rounds until ctx ends.
func (i *Installer) Run(ctx context.Context) error {
	every := i.Every
	if every == 0 {
		every = 30 * time.Second
	}
	for {
		if err := i.Round(ctx); err != nil {
			i.Log.Error("firmware install", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// Round puts the running firmware on every member's boot partition that lacks it.
func (i *Installer) Round(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	st, err := i.Storage.Storage(ctx)
	if err != nil {
		return err
	}
	var missing []string
	for _, d := range st.Disks {
		if d.Role != "member" || d.BootPartition == "" {
			continue
		}
		names, err := i.FAT.List(ctx, d.BootPartition, "/EFI/Linux")
		if _, ok := find(names, i.Version); err != nil || !ok {
			missing = append(missing, d.BootPartition)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	src, slot := i.source(ctx, missing)
	if src == "" {
		if !i.noSource {
			i.Log.Warn("the running firmware was not booted from a disk (no partition holds " + Slot(i.Version) + "): nothing to put on the disks")
			i.noSource = true
		}
		return nil
	}
	i.noSource = false
	staged := filepath.Join(i.TmpDir, slot)
	if err := i.FAT.Get(ctx, src, "/EFI/Linux/"+slot, staged); err != nil {
		return fmt.Errorf("read the firmware from %s: %w", src, err)
	}
	defer os.Remove(staged)
	conf := filepath.Join(i.TmpDir, "loader.conf")
	if err := os.WriteFile(conf, []byte(loaderConf), 0o644); err != nil {
		return err
	}
	defer os.Remove(conf)
	var errs []error
	for _, dev := range missing {
		if err := i.install(ctx, dev, staged, conf, slot); err != nil {
			errs = append(errs, fmt.Errorf("install the firmware on %s: %w", dev, err))
			continue
		}
		i.Log.Info("firmware installed: the unit boots from this disk", "partition", dev, "version", i.Version, "from", src)
	}
	return errors.Join(errs...)
}

// source is a partition outside missing that holds the running firmware (the install disk, or a member
// that has it), and the name of its slot there (on trial or blessed: a copy keeps its state).
func (i *Installer) source(ctx context.Context, missing []string) (string, string) {
	for _, p := range i.Partitions() {
		if slices.Contains(missing, p) {
			continue
		}
		names, err := i.FAT.List(ctx, p, "/EFI/Linux")
		if e, ok := find(names, i.Version); err == nil && ok {
			return p, e.Name
		}
		i.Log.Debug("no firmware here", "partition", p, "names", names, "err", err)
	}
	return "", ""
}

// install makes dev an EFI system partition (formatting it when it holds no FAT filesystem: a member's boot
// partition holds nothing else) with the boot loader, its settings and the firmware image, the image last.
func (i *Installer) install(ctx context.Context, dev, image, conf, slot string) error {
	if _, err := i.FAT.List(ctx, dev, "/"); err != nil {
		if err := i.FAT.Format(ctx, dev, Label); err != nil {
			return err
		}
	}
	for _, f := range []struct{ local, name string }{
		{i.Loader, "/EFI/BOOT/BOOTX64.EFI"}, // the removable-media path: found without a boot entry
		{i.Loader, "/EFI/systemd/systemd-bootx64.efi"},
		{conf, "/loader/loader.conf"},
		{image, "/EFI/Linux/" + slot},
	} {
		if err := i.FAT.Put(ctx, dev, f.local, f.name); err != nil {
			return err
		}
	}
	return nil
}
