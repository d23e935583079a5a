package storage

import (
	"context"
	"fmt"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/hw/luks"
	"github.com/lawbox/appliance/hw/lvm"
)

// The data array holds one LVM volume group (docs/storage.md): the "data" volume with the filesystem on
// /data (database, WAL archive, backups), the "documents" volume under the file shares, and space given
// to neither, which growing one of them takes. A data array made before volumes existed holds its
// filesystem directly and keeps it.
const (
	VolumeGroup     = "lawbox"
	DataVolume      = "data"
	DocumentsVolume = "documents"
	dataShare       = 75 // percent of the group
	documentsShare  = 15
	extent          = 4 * mib // LVM's default extent: sizes are rounded down to it
)

// split is the first sizes of the data and documents volumes in a group of size bytes.
func split(size int64) (data, documents int64) {
	round := func(b int64) int64 { return b / extent * extent }
	return round(size * dataShare / 100), round(size * documentsShare / 100)
}

// makeVolumes puts the volume group on the new data array and its two volumes in it.
func (m *Manager) makeVolumes(ctx context.Context, md string) error {
	if err := m.LVM.CreateGroup(ctx, VolumeGroup, md); err != nil {
		return err
	}
	groups, err := m.LVM.Groups(ctx)
	if err != nil {
		return err
	}
	var size int64
	for _, g := range groups {
		if g.Name == VolumeGroup {
			size = g.Size
		}
	}
	data, docs := split(size)
	if data == 0 || docs == 0 {
		return fmt.Errorf("volume group %s: %d bytes is too small for its volumes", VolumeGroup, size)
	}
	if err := m.LVM.CreateVolume(ctx, VolumeGroup, DataVolume, data); err != nil {
		return err
	}
	if err := m.LVM.CreateVolume(ctx, VolumeGroup, DocumentsVolume, docs); err != nil {
		return err
	}
	m.mu.Lock()
	m.grouped = true
	m.mu.Unlock()
	return nil
}

// filesystemDevice is the device holding array a's filesystem: the data volume when the data array holds
// the volume group (activated here), else the array itself.
func (m *Manager) filesystemDevice(ctx context.Context, a array) (string, error) {
	md := m.dev(a.md)
	if a.name != Data.name || m.LVM == nil {
		return md, nil
	}
	if m.Crypt != nil {
		if enc, err := luks.Is(md); err != nil {
			return "", err
		} else if enc {
			if err := m.unlock(ctx); err != nil {
				return "", err
			}
		}
	}
	if !m.groupedNow() {
		ok, err := lvm.Labelled(m.pv())
		if err != nil {
			return "", err
		}
		if !ok {
			return m.pv(), nil
		}
	}
	if err := m.LVM.Activate(ctx, VolumeGroup); err != nil {
		return "", err
	}
	m.mu.Lock()
	m.grouped = true
	m.mu.Unlock()
	return lvm.Path(VolumeGroup, DataVolume), nil
}

func (m *Manager) groupedNow() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.grouped
}

// DocumentsVolume is the device of the documents volume, "" while there is none (the data array is not
// assembled yet, or it was made before volumes existed).
func (m *Manager) DocumentsDevice() string {
	if !m.groupedNow() {
		return ""
	}
	return lvm.Path(VolumeGroup, DocumentsVolume)
}

// MD is the array's md device name ("md1").
func (a array) MD() string { return a.md }

// documentsCopy is the snapshot of the documents volume that a documents backup reads on a unit that
// does not serve the shares (a pair's standby).
const documentsCopy = "documents-copy"

// DocumentsSnapshot makes a snapshot of the documents volume as it is now and answers its device and
// how to drop it. On a pair's standby the volume is DRBD's lower device, which DRBD goes on writing
// while the snapshot lives: the snapshot is the replicated copy at one instant, as a power cut would have
// left it. Its copy-on-write room is the group's free space, at most a quarter of the documents volume; a
// snapshot left by a power cut is dropped first.
func (m *Manager) DocumentsSnapshot(ctx context.Context) (string, func(context.Context) error, error) {
	if m.DocumentsDevice() == "" {
		return "", nil, fmt.Errorf("snapshot of the documents: there is no documents volume")
	}
	groups, err := m.LVM.Groups(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("snapshot of the documents: %w", err)
	}
	var free, docs int64
	for _, g := range groups {
		if g.Name != VolumeGroup {
			continue
		}
		free = g.Free
		for _, v := range g.Volumes {
			switch v.Name {
			case documentsCopy:
				if err := m.LVM.Remove(ctx, VolumeGroup, documentsCopy); err != nil {
					return "", nil, fmt.Errorf("drop the old snapshot of the documents: %w", err)
				}
				free += v.Size
			case DocumentsVolume:
				docs = v.Size
			}
		}
	}
	if room := min(free, docs/4) / extent * extent; room == 0 {
		return "", nil, fmt.Errorf("snapshot of the documents: no free space left in volume group %s", VolumeGroup)
	} else if err := m.LVM.Snapshot(ctx, VolumeGroup, DocumentsVolume, documentsCopy, room); err != nil {
		return "", nil, err
	}
	drop := func(ctx context.Context) error { return m.LVM.Remove(ctx, VolumeGroup, documentsCopy) }
	return lvm.Path(VolumeGroup, documentsCopy), drop, nil
}

// ExtendDocuments makes the documents volume size bytes (rounded up to LVM's extent) from the group's free
// space, and answers its size; a volume as large already is left as it is. It keeps free room for the
// snapshot a documents backup takes (a quarter of the volume) and refuses beyond that.
func (m *Manager) ExtendDocuments(ctx context.Context, size int64) (int64, error) {
	if m.DocumentsDevice() == "" {
		return 0, fmt.Errorf("%w: there is no documents volume on this unit", appliance.ErrConflict)
	}
	groups, err := m.LVM.Groups(ctx)
	if err != nil {
		return 0, fmt.Errorf("grow the documents volume: %w", err)
	}
	size = (size + extent - 1) / extent * extent
	for _, g := range groups {
		if g.Name != VolumeGroup {
			continue
		}
		for _, v := range g.Volumes {
			if v.Name != DocumentsVolume {
				continue
			}
			if v.Size >= size {
				return v.Size, nil
			}
			if keep := size / 4; g.Free-(size-v.Size) < keep {
				return v.Size, fmt.Errorf("%w: the documents can grow by %s at most (the data array keeps %s free for the documents backup's snapshot); add a disk to grow the array first",
					appliance.ErrConflict, human(max(0, (g.Free-keep)/extent*extent)), human(keep))
			}
			if err := m.LVM.Extend(ctx, VolumeGroup, DocumentsVolume, size-v.Size); err != nil {
				return v.Size, fmt.Errorf("grow the documents volume: %w", err)
			}
			m.event("info", "the documents volume grew from %s to %s", human(v.Size), human(size))
			return size, nil
		}
	}
	return 0, fmt.Errorf("grow the documents volume: no volume %s in the group %s", DocumentsVolume, VolumeGroup)
}
