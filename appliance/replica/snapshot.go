package replica

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lawbox/appliance/hw/fs"
)

// Root is the folder the shares' folders are in.
func (r *Replica) Root() string { return r.Dir }

// copyDir is where a documents backup reads a snapshot of this unit's copy.
const copyDir = "/run/documents-copy"

// Open answers where a reader (a documents backup) finds the documents now, and what to call when it is
// done. Where this unit serves the shares it is the folder they are served from. On a pair's standby it
// is a snapshot of this unit's replicated copy, mounted read-only: the files as the active unit had
// written them at one instant (each write acknowledged to a client is in it), read without pausing the
// replication; refused while this unit's copy is incomplete (being synchronised) or does not follow the
// active unit's (disconnected: it may be behind).
func (r *Replica) Open(ctx context.Context) (string, func(), error) {
	if r.Device() == "" || fs.MountedAt(r.Dir) == r.DRBD.Device() {
		return r.Dir, func() {}, nil
	}
	r.mu.Lock()
	st := r.status
	r.mu.Unlock()
	if st.Disk != "UpToDate" {
		return "", nil, fmt.Errorf("documents: this unit's copy is not complete (%s): the backup waits until it is", strings.ToLower(st.Disk))
	}
	if st.Paired && st.Connection != "Connected" {
		return "", nil, fmt.Errorf("documents: this unit's copy does not follow the active unit's now (%s): the backup waits until it does", strings.ToLower(st.Connection))
	}
	dev, drop, err := r.Snapshot(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("documents: %w", err)
	}
	release := func() {
		if err := fs.Unmount(copyDir); err != nil && fs.MountedAt(copyDir) != "" {
			r.Log.Error("unmount the documents snapshot", "err", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := drop(ctx); err != nil {
			r.Log.Error("drop the documents snapshot", "err", err)
		}
	}
	if err := os.MkdirAll(copyDir, 0o700); err != nil {
		release()
		return "", nil, fmt.Errorf("documents: %w", err)
	}
	// Read-only for its readers; the kernel still replays the journal into the snapshot (the copy as a
	// power cut would have left it), which writes only to the snapshot's own room.
	if err := fs.Mount(dev, copyDir, true); err != nil {
		release()
		return "", nil, fmt.Errorf("documents: mount the snapshot of this unit's copy: %w", err)
	}
	return copyDir, release, nil
}
