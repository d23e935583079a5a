// Package durable writes files so that a power cut leaves the old content or the new, never a torn file:
// a temporary file beside the target, fsync, rename, fsync of the directory.
package durable

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Partial is the suffix of a file being written; listings skip it.
const Partial = ".partial"

// WriteFile replaces path with what r holds, mode 0600. chown, if not nil, is applied to the new file
// before it takes the name.
func WriteFile(path string, r io.Reader, chown func(*os.File) error) error {
	tmp := path + Partial
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = io.Copy(f, r)
	if err == nil && chown != nil {
		err = chown(f)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir makes a directory's entries (a rename, a new file) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
