package qemutests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkRAID5Consistency measures, in one VM, what each consistency policy of a RAID 5 costs: md's
// write-intent bitmap (a resync of what was being written after a power cut; a member that comes back
// gets only what changed) beside its partial parity log (PPL: the stripes being written are made
// consistent again at the next start, degraded too, which closes the write hole; no bitmap). Write MB/s:
// a scratch RAID 5 of three disks made with each policy in turn (O_DIRECT, the same bytes). Then the unit's
// own data array, which keeps the bitmap while complete and the log while degraded: the time from "web UI
// ready" to a clean array after a power cut while writing (complete: the bitmap's resync), the same while
// degraded (the log's recovery: no resync), and a member that was out for one boot taken back (no bitmap
// while degraded: a full rebuild). docs/storage.md, "The RAID 5 write hole", decides with these figures.
func BenchmarkRAID5Consistency(b *testing.B) {
	disks := keep(b,
		Disk{ID: "c0", Kind: Virtio, Serial: "WH-A", SizeMiB: 1024},
		Disk{ID: "c1", Kind: Virtio, Serial: "WH-B", SizeMiB: 1024},
		Disk{ID: "c2", Kind: Virtio, Serial: "WH-C", SizeMiB: 1024})
	// Scratch disks hold a byte at their start: the unit leaves them alone (they wait for an adopt). They
	// are plugged in after the first boot, where disks holding data would hold up the arrays' creation.
	var scratch []Disk
	for i := range 3 {
		d := Disk{ID: fmt.Sprintf("s%d", i), Kind: Virtio, Serial: fmt.Sprintf("WH-S%d", i), SizeMiB: 1024,
			Path: filepath.Join(b.TempDir(), fmt.Sprintf("s%d.img", i))}
		if err := os.WriteFile(d.Path, []byte{1}, 0o600); err != nil {
			b.Fatal(err)
		}
		if err := os.Truncate(d.Path, 1<<30); err != nil {
			b.Fatal(err)
		}
		scratch = append(scratch, d)
	}
	u := boot(b, Config{Disks: disks})
	tok := u.setupAndLogin()
	u.waitStates(tok, "system=clean data=clean", 4*time.Minute)
	for _, d := range scratch {
		if err := u.InsertDisk(d); err != nil {
			b.Fatal(err)
		}
	}
	var names string
	eventually(b, time.Minute, "the scratch disks seen", func() error {
		names = ""
		for _, d := range u.status(tok).Disks {
			if len(d.Serial) == 5 && d.Serial[:4] == "WH-S" {
				names += " " + d.Name
			}
		}
		if len(names) < 3*4 {
			return fmt.Errorf("scratch disks:%s", names)
		}
		return nil
	})
	write := map[string]float64{}
	for range 2 * b.N {
		for _, p := range []string{"bitmap", "ppl"} {
			m := u.debug(fmt.Sprintf("mdwrite %s 256%s", p, names), `debug: mdwrite `+p+`: ([0-9.]+) MB/s <nil>`, 5*time.Minute)
			mbs, _ := strconv.ParseFloat(m[1], 64)
			write[p] += mbs / float64(2*b.N)
		}
	}
	// clean waits for the arrays in want and says how long it took from the web UI's start.
	clean := func(what, want string) time.Duration {
		start := time.Now()
		u.waitStates(tok, want, 10*time.Minute)
		took := time.Since(start)
		b.Logf("%s: %s %v after the web UI's start", what, want, took.Round(100*time.Millisecond))
		return took
	}
	cut := func(cfg Config) {
		if err := u.Send("fill /data/cut 128 3"); err != nil {
			b.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		if err := u.Kill9(); err != nil {
			b.Fatal(err)
		}
		u = boot(b, cfg)
		tok = u.login()
	}
	cut(Config{Disks: disks})
	resyncBitmap := clean("complete, bitmap: after a power cut while writing", "system=clean data=clean")
	u.shutdown(tok, "poweroff")
	u = boot(b, Config{Disks: disks[:2]})
	tok = u.login()
	u.waitStates(tok, "system=degraded data=degraded", time.Minute)
	eventually(b, time.Minute, "the degraded array on its log", func() error {
		if a := u.storage(tok).Arrays[1]; a.Consistency != "ppl" {
			return fmt.Errorf("data %s", a.Consistency)
		}
		return nil
	})
	cut(Config{Disks: disks[:2]})
	startPPL := clean("degraded, PPL: after a power cut while writing", "system=degraded data=degraded")
	u.shutdown(tok, "poweroff")
	u = boot(b, Config{Disks: disks})
	tok = u.login()
	readd := clean("a member back after a boot without it (PPL meanwhile: a full rebuild)", "system=clean data=clean")
	b.ReportMetric(write["bitmap"], "MB/s-write-bitmap")
	b.ReportMetric(write["ppl"], "MB/s-write-ppl")
	b.ReportMetric(write["ppl"]/write["bitmap"], "ratio-write")
	b.ReportMetric(resyncBitmap.Seconds(), "s-clean-after-cut-bitmap")
	b.ReportMetric(startPPL.Seconds(), "s-ready-after-cut-degraded-ppl")
	b.ReportMetric(readd.Seconds(), "s-member-back-full-rebuild")
}

// A RAID 5 that loses power while degraded and writing: the write hole. The data array runs on two of its
// three disks, a database load and a file being written, when the power goes. It starts again (md's
// partial parity log made the stripes being written consistent again) and says so in plain words; every
// acknowledged commit is there and every table reads back with its page checksums; the files written
// before read back intact; a new disk rebuilds it and a scrub finds no mismatch.
func TestRAID5PowerCutWhileDegraded(t *testing.T) {
	parallel(t)
	disks := keep(t,
		Disk{ID: "h0", Kind: Virtio, Serial: "HOLE-A", SizeMiB: 1024},
		Disk{ID: "h1", Kind: Virtio, Serial: "HOLE-B", SizeMiB: 1024},
		Disk{ID: "h2", Kind: Virtio, Serial: "HOLE-C", SizeMiB: 1024},
		Disk{ID: "h3", Kind: Virtio, Serial: "HOLE-NEW", SizeMiB: 1024})
	u := boot(t, Config{Disks: disks[:3]})
	tok := u.setupAndLogin()
	u.waitStates(tok, "system=clean data=clean", 4*time.Minute)
	// Made with the log (room for it), the array is on its bitmap once synced.
	var st storageStatus
	eventually(t, time.Minute, "the data array a RAID 5 on its bitmap", func() error {
		st = u.storage(tok)
		if a := st.Arrays[1]; a.Level != "raid5" || a.Consistency != "bitmap" {
			return fmt.Errorf("data array on three disks: %s, %s", a.Level, a.Consistency)
		}
		return nil
	})
	sets := map[string]string{"before": u.fill("before", 48, 21)}
	nd := u.loadedDatabase(tok)
	load := startLoad(u, nd.URL)

	if err := u.PullDisk("h2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the data array degraded, on its partial parity log", func() error {
		st = u.storage(tok)
		if a := st.Arrays[1]; st.arrayStates() != "system=degraded data=degraded" || a.Consistency != "ppl" {
			return fmt.Errorf("arrays %s, data %s", st.arrayStates(), a.Consistency)
		}
		return nil
	})
	if err := u.Send("fill /data/during 128 22"); err != nil { // being written when the power goes
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	if err := u.Kill9(); err != nil {
		t.Fatal(err)
	}

	u = boot(t, Config{Disks: disks[:2]})
	tok = u.login()
	u.waitStates(tok, "system=degraded data=degraded", 2*time.Minute)
	if !strings.Contains(u.Console(), "the data array lost power while it ran without one of its disks. Its partial parity log made the stripes") {
		t.Errorf("the unit did not say it started the array dirty and degraded, and what made it safe:\n%s", tail(u.Console()))
	}
	u.waitDatabase(tok)
	acked, lost := load.check(t, u, nd.URL)
	t.Logf("power cut while degraded: %d commits acknowledged, %d lost; what the client met: %v", acked, lost, load.errors)
	if lost != 0 || acked == 0 {
		t.Errorf("%d of %d acknowledged commits lost", lost, acked)
	}
	// Every page of the table read from the disks (the cache is new since the restart), each checked
	// against its checksum by PostgreSQL, and the index walked.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := u.connect(ctx, nd.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var rows, indexed int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM load").Scan(&rows); err != nil {
		t.Fatalf("full read of the table: %v", err)
	}
	if err := c.QueryRow(ctx, "SELECT count(*) FROM (SELECT id FROM load ORDER BY id) s").Scan(&indexed); err != nil || indexed != rows {
		t.Fatalf("read through the index: %d rows (%v), the table has %d", indexed, err, rows)
	}
	u.checkData(sets)

	if err := u.InsertDisk(disks[3]); err != nil {
		t.Fatal(err)
	}
	u.waitRebuild(tok, 6*time.Minute)
	eventually(t, time.Minute, "the data array back on its bitmap", func() error {
		if a := u.storage(tok).Arrays[1]; a.Consistency != "bitmap" {
			return fmt.Errorf("data %s", a.Consistency)
		}
		return nil
	})
	u.scrubClean(tok)
	u.checkData(sets)
}
