// Package fat reads and writes FAT filesystems on block devices (or image files) with mtools, without
// mounting them: the EFI system partitions that hold the boot loader and the firmware. Argv only; mtools's
// messages are kept in the errors for the log.
package fat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
)

// ErrNoFilesystem means the device holds no FAT filesystem (or the directory asked for is missing).
var ErrNoFilesystem = errors.New("no FAT filesystem or no such directory")

// Tools runs mtools (its multi-call binary, "mtools -c COMMAND").
type Tools struct {
	Mtools string // "/bin/mtools"
}

// ExecError is a failed mtools command; Output is its messages.
type ExecError struct {
	Args   []string
	Err    error
	Output string
}

func (e *ExecError) Error() string {
	return fmt.Sprintf("mtools %s: %v: %s", strings.Join(e.Args, " "), e.Err, strings.TrimSpace(e.Output))
}

func (e *ExecError) Unwrap() error { return e.Err }

func (t Tools) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, t.Mtools, append([]string{"-c"}, args...)...)
	cmd.Env = []string{"MTOOLS_SKIP_CHECK=1", "PATH=/bin:/usr/bin"} // partitions have no floppy geometry
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), &ExecError{Args: args, Err: err, Output: errb.String()}
	}
	return out.String(), nil
}

// List returns the names in directory dir ("/EFI/Linux") of the filesystem on dev, or ErrNoFilesystem.
func (t Tools) List(ctx context.Context, dev, dir string) ([]string, error) {
	out, err := t.run(ctx, "mdir", "-b", "-i", dev, "::"+dir)
	if err != nil {
		return nil, fmt.Errorf("list %s on %s: %w (%w)", dir, dev, ErrNoFilesystem, err)
	}
	return ParseList(out), nil
}

// ParseList reads the names out of "mdir -b" output ("::/EFI/Linux/lawbox-1.efi" a line).
func ParseList(out string) []string {
	var names []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "::") {
			names = append(names, path.Base(strings.TrimPrefix(l, "::")))
		}
	}
	return names
}

// Format makes a new FAT32 filesystem labelled label on dev: whatever it held is gone. A partition has no
// geometry for mtools to ask the kernel: its size is given in sectors (whole MiB), with a nominal geometry.
func (t Tools) Format(ctx context.Context, dev, label string) error {
	size, err := t.Size(ctx, dev)
	if err != nil {
		return fmt.Errorf("format %s: %w", dev, err)
	}
	sectors := size / 512 / 2048 * 2048
	_, err = t.run(ctx, "mformat", "-i", dev, "-F", "-v", label, "-T", strconv.FormatInt(sectors, 10), "-h", "64", "-s", "32", "-H", "0", "::")
	return err
}

// Size is the size of dev (a partition or an image file) in bytes.
func (Tools) Size(_ context.Context, dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dev, err)
	}
	return size, nil
}

// Rename renames file from to to (a path in the same directory) on dev: one directory entry rewritten.
func (t Tools) Rename(ctx context.Context, dev, from, to string) error {
	_, err := t.run(ctx, "mren", "-i", dev, "::"+from, "::"+to)
	return err
}

// Delete removes file name from dev.
func (t Tools) Delete(ctx context.Context, dev, name string) error {
	_, err := t.run(ctx, "mdel", "-i", dev, "::"+name)
	return err
}

// Get copies file name from dev to the local file local.
func (t Tools) Get(ctx context.Context, dev, name, local string) error {
	_, err := t.run(ctx, "mcopy", "-o", "-i", dev, "::"+name, local)
	return err
}

// Put copies the local file local to name on dev, creating its directories. It writes name.part and
// renames it: a copy cut short by a power cut never stands under name.
func (t Tools) Put(ctx context.Context, dev, local, name string) error {
	var dirs []string
	for d := path.Dir(name); d != "/" && d != "."; d = path.Dir(d) {
		dirs = append([]string{"::" + d}, dirs...)
	}
	for _, d := range dirs {
		_, _ = t.run(ctx, "mmd", "-D", "s", "-i", dev, d) // exists already: the copy below says if it is missing
	}
	if _, err := t.run(ctx, "mcopy", "-o", "-i", dev, local, "::"+name+".part"); err != nil {
		return err
	}
	_, _ = t.run(ctx, "mdel", "-i", dev, "::"+name) // the old one, if any
	_, err := t.run(ctx, "mren", "-i", dev, "::"+name+".part", "::"+name)
	return err
}
