package qemutests

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The storage grows: a mirror of two disks becomes a RAID 5 of three, then of four, each time under a
// database load and with documents on /data. A new disk with no recent backup waits as a spare and says
// why; the admin grows anyway. The power is cut in the middle of the first reshape: md resumes it at the
// next boot, and the data volume and /data take the room once it is done. Every acknowledged commit and
// every file is there at the end; a scrub finds the parity consistent.
func TestStorageGrows(t *testing.T) {
	parallel(t)
	all := keep(t,
		Disk{ID: "g0", Kind: Virtio, Serial: "GROW-A", SizeMiB: 1024},
		Disk{ID: "g1", Kind: Virtio, Serial: "GROW-B", SizeMiB: 1024},
		Disk{ID: "g2", Kind: Virtio, Serial: "GROW-C", SizeMiB: 1024},
		Disk{ID: "g3", Kind: Virtio, Serial: "GROW-D", SizeMiB: 1024})
	u := boot(t, Config{Disks: all[:2]})
	tok := u.setupAndLogin()
	st := u.waitStates(tok, "system=clean data=clean", 3*time.Minute)
	mirror := dataSpace(t, st).SizeBytes
	sets := map[string]string{"before": u.fill("before", 48, 11)}
	nd := u.loadedDatabase(tok)
	load := startLoad(u, nd.URL)

	waitsForABackup(t, u, tok, all[2])
	sets["during"] = u.fill("during", 24, 12)
	var cutAt float64
	eventually(t, 3*time.Minute, "the data array reshaping onto GROW-C", func() error {
		st = u.storage(tok)
		for _, a := range st.Arrays {
			if a.Name == "data" && a.State == "growing" && a.Level == "raid5" && a.RebuildProgress != nil && *a.RebuildProgress > 0.05 {
				cutAt = *a.RebuildProgress
				return nil
			}
		}
		return fmt.Errorf("arrays %s", st.arrayStates())
	})
	if err := u.Kill9(); err != nil { // the power cut
		t.Fatal(err)
	}
	u = boot(t, Config{Disks: all[:3]})
	tok = u.login()
	var seen []string // the data array's states after the restart
	eventually(t, 8*time.Minute, "the reshape resumed and done, /data grown", func() error {
		st = u.storage(tok)
		for _, a := range st.Arrays {
			if s := a.State; a.Name == "data" && (len(seen) == 0 || seen[len(seen)-1] != s) {
				seen = append(seen, s)
			}
		}
		if got := st.arrayStates(); got != "system=clean data=clean" {
			return fmt.Errorf("arrays %q", got)
		}
		if size := dataSpace(t, st).SizeBytes; size < mirror*17/10 {
			return fmt.Errorf("/data %d bytes, was %d on the mirror", size, mirror)
		}
		return nil
	})
	t.Logf("reshape 2 -> 3 cut at %.0f %%; after the restart the data array was %v; /data %d MiB, was %d MiB",
		cutAt*100, seen, dataSpace(t, st).SizeBytes>>20, mirror>>20)
	if !strings.Contains(u.Console(), "the data array was growing when the unit stopped: md goes on from where it was") {
		t.Error("the restart did not say the reshape resumed")
	}
	if st.Arrays[1].Level != "raid5" || st.member("data", "GROW-C") != "in_sync" || st.member("system", "GROW-C") != "in_sync" {
		t.Fatalf("after growing onto GROW-C: %+v", st.Arrays)
	}
	u.waitDatabase(tok)
	if acked, lost := load.check(t, u, nd.URL); lost != 0 || acked == 0 {
		t.Fatalf("power cut mid-reshape: %d of %d acknowledged commits lost", lost, acked)
	} else {
		t.Logf("power cut mid-reshape: %d commits acknowledged, 0 lost; what the client met: %v", acked, load.errors)
	}
	u.checkData(sets)

	// A fourth disk, grown onto at once, the load going on.
	three := dataSpace(t, st).SizeBytes
	first := load
	load = startLoadFrom(u, nd.URL, 1_000_000)
	if err := u.InsertDisk(all[3]); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "GROW-D a spare", func() error {
		if m := u.storage(tok).member("data", "GROW-D"); m != "spare" {
			return fmt.Errorf("GROW-D %q", m)
		}
		return nil
	})
	if code, body := u.call("POST", "/api/v1/storage/grow", tok, `{"without_recent_backup":true}`); code != 202 {
		t.Fatalf("grow onto GROW-D = %d %s", code, body)
	}
	sets["third"] = u.fill("third", 24, 13)
	eventually(t, 8*time.Minute, "RAID 5 of four, /data grown", func() error {
		st = u.storage(tok)
		if got := st.arrayStates(); got != "system=clean data=clean" || st.member("data", "GROW-D") != "in_sync" {
			return fmt.Errorf("arrays %q, GROW-D %s", got, st.member("data", "GROW-D"))
		}
		if size := dataSpace(t, st).SizeBytes; size < three*13/10 {
			return fmt.Errorf("/data %d bytes, was %d on three disks", size, three)
		}
		return nil
	})
	for what, l := range map[string]*dbLoad{"before the power cut": first, "growing onto a fourth disk": load} {
		if acked, lost := l.check(t, u, nd.URL); lost != 0 || acked == 0 {
			t.Errorf("%s: %d of %d acknowledged commits lost (%v)", what, lost, acked, l.errors)
		}
	}
	u.checkData(sets)
	u.scrubClean(tok)
}

// BenchmarkGrow measures, in one VM, how fast md reshapes the data array from a mirror of two disks to a
// RAID 5 of three (each member's data partition read and rewritten, per second), beside how fast it rebuilds
// a replaced member of the mirror (the same partition size written). Both are timed from the first progress
// the API shows to "clean", over the part done meanwhile.
func BenchmarkGrow(b *testing.B) {
	var reshape, rebuild float64
	for range b.N {
		u := boot(b, Config{Disks: []Disk{{ID: "w0", Kind: Virtio, Serial: "BG-0", SizeMiB: 1024}, {ID: "w1", Kind: Virtio, Serial: "BG-1", SizeMiB: 1024}}})
		tok := u.setupAndLogin()
		st := u.waitStates(tok, "system=clean data=clean", 3*time.Minute)
		member := st.Arrays[1].SizeBytes // a mirror's size is its members'
		if err := u.PullDisk("w1"); err != nil {
			b.Fatal(err)
		}
		u.waitStates(tok, "system=degraded data=degraded", time.Minute)
		if err := u.InsertDisk(Disk{ID: "w2", Kind: Virtio, Serial: "BG-2", SizeMiB: 1024}); err != nil {
			b.Fatal(err)
		}
		rebuild += u.syncRate(b, tok, "rebuilding", member)
		if err := u.InsertDisk(Disk{ID: "w3", Kind: Virtio, Serial: "BG-3", SizeMiB: 1024}); err != nil {
			b.Fatal(err)
		}
		eventually(b, time.Minute, "BG-3 a spare", func() error {
			if m := u.storage(tok).member("data", "BG-3"); m != "spare" {
				return fmt.Errorf("BG-3 %q", m)
			}
			return nil
		})
		if code, body := u.call("POST", "/api/v1/storage/grow", tok, `{"without_recent_backup":true}`); code != 202 {
			b.Fatalf("grow = %d %s", code, body)
		}
		reshape += u.syncRate(b, tok, "growing", member)
		u.Close()
	}
	n := float64(b.N)
	b.ReportMetric(reshape/n, "MB/s-reshape")
	b.ReportMetric(rebuild/n, "MB/s-rebuild")
	b.ReportMetric(reshape/rebuild, "ratio")
}

// syncRate waits until the data array, seen in state (rebuilding, growing), is clean again and returns
// the MB/s of member bytes md went through from the first progress seen.
func (u *unit) syncRate(b *testing.B, tok, state string, member int64) float64 {
	var t0 time.Time
	var p0 float64
	deadline := time.Now().Add(10 * time.Minute)
	for {
		st := u.storage(tok)
		if st.arrayStates() == "system=clean data=clean" && !t0.IsZero() {
			break
		}
		for _, a := range st.Arrays {
			if a.Name == "data" && a.State == state && a.RebuildProgress != nil && *a.RebuildProgress > 0 && t0.IsZero() {
				t0, p0 = time.Now(), *a.RebuildProgress
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("the data array never went %s and back to clean: %s", state, st.arrayStates())
		}
		time.Sleep(100 * time.Millisecond)
	}
	rate := (1 - p0) * float64(member) / 1e6 / time.Since(t0).Seconds()
	b.Logf("%s: %.1f MB/s of each member (from %.0f %%)", state, rate, p0*100)
	return rate
}

// waitsForABackup: a third disk: no backup was ever taken, so it waits as a spare and the page says why; the
// admin grows the array anyway.
func waitsForABackup(t *testing.T, u *unit, tok string, d Disk) {
	if err := u.InsertDisk(d); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "GROW-C a spare, the growth waiting", func() error {
		if st := u.storage(tok); st.member("data", "GROW-C") != "spare" || !strings.Contains(st.GrowWaits, "more than a day old") {
			return fmt.Errorf("GROW-C %s, grow_waits %q", st.member("data", "GROW-C"), st.GrowWaits)
		}
		return nil
	})
	if code, body := u.call("POST", "/api/v1/storage/grow", tok, `{}`); code != 409 || !strings.Contains(body, "more than a day old") {
		t.Fatalf("grow without a recent backup = %d %s, want 409", code, body)
	}
	if code, body := u.call("POST", "/api/v1/storage/grow", tok, `{"without_recent_backup":true}`); code != 202 {
		t.Fatalf("grow anyway = %d %s", code, body)
	}
}
