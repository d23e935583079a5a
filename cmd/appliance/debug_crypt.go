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
)

// cryptDebug runs the test agent's encryption commands (debugConsole lists them with the others):
//
//	text FILE WORD COUNT   write WORD COUNT times, one a line, and fsync (a known plaintext)
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
	default:
		return false
	}
	return true
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
