package qemutests

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkRAID5Consistency measures, in one VM, what each consistency policy of a RAID 5 costs: md's
// write-intent bitmap (a resync of what was being written after a power cut; a member that comes back
// gets only what changed) beside its partial parity log (PPL: the stripes being written are made
// consistent again at the next start, degraded too, which closes the write hole; no bitmap). For each:
// write MB/s of a file on /data (fsync'd), the time from "web UI ready" to a clean data array after a
// power cut during writes, and the time to take back a member left out of one boot while 32 MiB were
// written. docs/storage.md, "The RAID 5 write hole", decides with these figures.
func BenchmarkRAID5Consistency(b *testing.B) {
	disks := keep(b,
		Disk{ID: "c0", Kind: Virtio, Serial: "WH-A", SizeMiB: 1024},
		Disk{ID: "c1", Kind: Virtio, Serial: "WH-B", SizeMiB: 1024},
		Disk{ID: "c2", Kind: Virtio, Serial: "WH-C", SizeMiB: 1024})
	u := boot(b, Config{Disks: disks})
	tok := u.setupAndLogin()
	u.waitStates(tok, "system=clean data=clean", 4*time.Minute)
	policy := func(p string) {
		u.debug("mdpolicy md1 "+p, `debug: mdpolicy md1 `+p+`: <nil>`, time.Minute)
	}
	write := map[string]float64{}
	for i := range 2 * b.N {
		for _, p := range []string{"bitmap", "ppl"} {
			policy(p)
			start := time.Now()
			u.fill(fmt.Sprintf("w-%s-%d", p, i), 96, i)
			write[p] += 96 * 1.048576 / time.Since(start).Seconds() / float64(2*b.N)
		}
	}
	// clean is the time from the web UI's start to a clean data array.
	clean := func(what string) time.Duration {
		start := time.Now()
		st := u.waitStates(tok, "system=clean data=clean", 10*time.Minute)
		b.Logf("%s: clean %v after the web UI's start (%s)", what, time.Since(start).Round(100*time.Millisecond), st.Arrays[1].Level)
		return time.Since(start)
	}
	resync, readd := map[string]time.Duration{}, map[string]time.Duration{}
	for _, p := range []string{"bitmap", "ppl"} {
		policy(p)
		// A power cut while a file is being written.
		if err := u.Send(fmt.Sprintf("fill /data/cut-%s 256 3", p)); err != nil {
			b.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		if err := u.Kill9(); err != nil {
			b.Fatal(err)
		}
		u = boot(b, Config{Disks: disks})
		tok = u.login()
		resync[p] = clean(p + ", after a power cut during writes")
		// A member left out of one boot, 32 MiB written meanwhile, then back.
		u.shutdown(tok, "poweroff")
		u = boot(b, Config{Disks: disks[:2]})
		tok = u.login()
		u.waitStates(tok, "system=degraded data=degraded", time.Minute)
		u.fill("while-out-"+p, 32, 5)
		u.shutdown(tok, "poweroff")
		u = boot(b, Config{Disks: disks})
		tok = u.login()
		readd[p] = clean(p + ", a member back after one boot without it")
	}
	b.ReportMetric(write["bitmap"], "MB/s-write-bitmap")
	b.ReportMetric(write["ppl"], "MB/s-write-ppl")
	b.ReportMetric(write["ppl"]/write["bitmap"], "ratio-write")
	b.ReportMetric(resync["bitmap"].Seconds(), "s-resync-bitmap")
	b.ReportMetric(resync["ppl"].Seconds(), "s-resync-ppl")
	b.ReportMetric(readd["bitmap"].Seconds(), "s-readd-bitmap")
	b.ReportMetric(readd["ppl"].Seconds(), "s-readd-ppl")
}
