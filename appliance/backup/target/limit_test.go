package target

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The limiter holds a read of 1 MB at 200 KB/s to 5 seconds (on a fake clock), reads in slices of a tenth
// of a second, and passes every byte.
func TestLimited(t *testing.T) {
	var clock time.Time
	var slept time.Duration
	src := bytes.Repeat([]byte("x"), 1_000_000)
	l := &limited{r: bytes.NewReader(src), rate: 200_000,
		now:   func() time.Time { return clock },
		sleep: func(d time.Duration) { slept += d; clock = clock.Add(d) }}
	buf := make([]byte, 1<<20)
	n, err := l.Read(buf)
	if err != nil || n != 20_000 {
		t.Fatalf("first read: %d %v, want a tenth of a second's worth", n, err)
	}
	rest, err := io.ReadAll(l)
	if err != nil || n+len(rest) != len(src) {
		t.Fatalf("read %d of %d: %v", n+len(rest), len(src), err)
	}
	if slept < 4900*time.Millisecond || slept > 5100*time.Millisecond {
		t.Errorf("slept %v for 1 MB at 200 KB/s, want 5 s", slept)
	}
}

// A limited target stores what it is given, and keeps a resumable upload resumable.
func TestLimitedTarget(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	l := Limited{Target: d, Rate: 100_000_000}
	if err := l.Put(context.Background(), "a/b", bytes.NewReader([]byte("matters")), 7); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(d.Path, "a", "b")); err != nil || string(b) != "matters" {
		t.Errorf("stored %q %v", b, err)
	}
	var r io.Reader = seekLimited{&limited{}, bytes.NewReader(nil)}
	if _, ok := r.(io.Seeker); !ok {
		t.Error("a limited seekable reader cannot seek")
	}
}
