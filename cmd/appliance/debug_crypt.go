//go:build lawboxtest

package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lawbox/appliance/hw/luks"
	"golang.org/x/sys/unix"
)

// cryptDebug runs the test agent's encryption and filesystem commands (debugConsole lists them with the
// others):
//
//	text FILE WORD COUNT   write WORD COUNT times, one a line, and fsync (a known plaintext)
//	corruptroot DEV DIR    freeze the ext4 filesystem on DEV mounted at DIR (its journal written out, no
//	                       more writes), then zero its root directory's inode on DEV (a fault e2fsck's
//	                       preen mode refuses to repair on its own); the test cuts the power next
//	cryptwrite MIB DISK    make a scratch LUKS2 device on DISK (whole, scratch) as the data array's,
//	                       write MIB MiB through it with O_DIRECT, print the MB/s, close it
func cryptDebug(f []string, out io.Writer) bool {
	switch {
	case f[0] == "text" && len(f) == 4:
		n, _ := strconv.Atoi(f[3])
		err := writeText(f[1], strings.Repeat(f[2]+"\n", n))
		fmt.Fprintf(out, "debug: text %s: %v\n", f[1], err)
	case f[0] == "cryptwrite" && len(f) == 3:
		mib, _ := strconv.Atoi(f[1])
		mbs, err := cryptWrite("/dev/"+filepath.Base(f[2]), mib)
		fmt.Fprintf(out, "debug: cryptwrite: %.1f MB/s %v\n", mbs, err)
	case f[0] == "corruptroot" && len(f) == 3:
		err := freeze(f[2])
		if err == nil {
			err = corruptRoot(f[1])
		}
		fmt.Fprintf(out, "debug: corruptroot %s: %v\n", f[1], err)
	default:
		return false
	}
	return true
}

// freeze freezes the filesystem mounted at dir: everything written out, its journal empty, and no more
// writes until the power goes.
func freeze(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	const fifreeze = 0xc0045877 // _IOWR('X', 119, int), linux/fs.h
	return unix.IoctlSetInt(fd, fifreeze, 0)
}

// corruptRoot zeroes inode 2 (the root directory) of the ext4 filesystem on dev, writing its block with
// O_DIRECT so it is on the disk before the test cuts the power.
func corruptRoot(dev string) error {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE) // aligned
	if err != nil {
		return err
	}
	defer unix.Munmap(buf)
	block := func(off int64) error { // the 4 KiB block at off into buf
		_, err := unix.Pread(fd, buf, off)
		return err
	}
	le := func(b []byte) uint64 {
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		return v
	}
	if err := block(0); err != nil {
		return err
	}
	sb := buf[1024:2048]
	if le(sb[56:58]) != 0xef53 {
		return fmt.Errorf("%s: no ext4 superblock", dev)
	}
	bs := int64(1024) << le(sb[24:28])
	if bs != 4096 {
		return fmt.Errorf("%s: blocks of %d bytes", dev, bs)
	}
	inodeSize := int64(le(sb[88:90]))
	wide := le(sb[0xfe:0x100])&0x80 != 0 // 64-bit: descriptors hold the high half too
	if err := block(bs); err != nil {    // the group descriptors
		return err
	}
	table := int64(le(buf[8:12]))
	if wide {
		table |= int64(le(buf[0x28:0x2c])) << 32
	}
	at := table*bs + inodeSize // inode 2, the second of group 0's table
	if err := block(at / 4096 * 4096); err != nil {
		return err
	}
	clear(buf[at%4096 : at%4096+inodeSize])
	_, err = unix.Pwrite(fd, buf, at/4096*4096)
	return err
}

func writeText(name, s string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cryptWrite writes mib MiB through a scratch LUKS2 device made on dev the way the data array's is.
func cryptWrite(dev string, mib int) (float64, error) {
	ctx := context.Background()
	c := &luks.Cryptsetup{Path: "/sbin/cryptsetup"}
	key := make([]byte, 32)
	rand.Read(key)
	if err := c.Format(ctx, dev, 0, key); err != nil {
		return 0, err
	}
	if err := c.Open(ctx, dev, "scratch-crypt", key); err != nil {
		return 0, err
	}
	mbs, err := rawWrite("/dev/mapper/scratch-crypt", mib, 0)
	if cerr := c.Close(ctx, "scratch-crypt"); err == nil {
		err = cerr
	}
	return mbs, err
}
