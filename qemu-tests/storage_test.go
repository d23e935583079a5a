package qemutests

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/storage"
)

type storageStatus struct {
	Arrays []struct {
		Name            string   `json:"name"`
		Level           string   `json:"level"`
		State           string   `json:"state"`
		SizeBytes       int64    `json:"size_bytes"`
		Consistency     string   `json:"consistency"`
		RebuildProgress *float64 `json:"rebuild_progress"`
		MismatchSectors int64    `json:"mismatch_sectors"`
		Members         []struct {
			Serial string `json:"serial"`
			State  string `json:"state"`
		} `json:"members"`
	} `json:"arrays"`
	Disks []struct {
		Serial string `json:"serial"`
		Role   string `json:"role"`
		State  string `json:"state"`
		Reason string `json:"reason"`
	} `json:"disks"`
	Persistent bool                 `json:"persistent"`
	GrowWaits  string               `json:"grow_waits"`
	Space      []appliance.Space    `json:"space"`
	Encryption appliance.Encryption `json:"encryption"`
	Alerts     []struct {
		Level   string `json:"level"`
		Message string `json:"message"`
	} `json:"alerts"`
}

func (u *unit) storage(tok string) storageStatus {
	u.t.Helper()
	var st storageStatus
	u.get("/api/v1/storage", tok, &st)
	return st
}

// arrayStates is "system=clean data=rebuilding".
func (st storageStatus) arrayStates() string {
	var out []string
	for _, a := range st.Arrays {
		out = append(out, a.Name+"="+a.State)
	}
	return strings.Join(out, " ")
}

func (st storageStatus) disk(serial string) (role, state, reason string) {
	for _, d := range st.Disks {
		if d.Serial == serial {
			return d.Role, d.State, d.Reason
		}
	}
	return "", "absent", ""
}

// waitStates waits until the arrays are in the given states ("system=clean data=clean").
func (u *unit) waitStates(tok, want string, timeout time.Duration) storageStatus {
	u.t.Helper()
	var st storageStatus
	eventually(u.t, timeout, "arrays "+want, func() error {
		st = u.storage(tok)
		if got := st.arrayStates(); got != want {
			return fmt.Errorf("arrays %q", got)
		}
		return nil
	})
	return st
}

// debug runs a debug console command and returns the submatches of re in its answer.
func (u *unit) debug(cmd string, re string, timeout time.Duration) []string {
	u.t.Helper()
	if err := u.Send(cmd); err != nil {
		u.t.Fatal(err)
	}
	m, err := u.Expect(regexp.MustCompile(re), timeout)
	if err != nil {
		u.t.Fatalf("%s: %v\n%s", cmd, err, tail(u.Console()))
	}
	return m
}

var reDebugSum = `debug: (?:fill|sum) \S+: ([0-9a-f]{64}) <nil>`

// fileSum hashes a disk image on the host.
func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// member returns the state of serial in array name, or "absent".
func (st storageStatus) member(array, serial string) string {
	for _, a := range st.Arrays {
		if a.Name != array {
			continue
		}
		for _, m := range a.Members {
			if m.Serial == serial {
				return m.State
			}
		}
	}
	return "absent"
}

// alertsBut are the alerts whose message does not hold substr.
func (st storageStatus) alertsBut(substr string) []string {
	var out []string
	for _, a := range st.Alerts {
		if !strings.Contains(a.Message, substr) {
			out = append(out, a.Message)
		}
	}
	return out
}

func (st storageStatus) alert(substr string) bool {
	for _, a := range st.Alerts {
		if strings.Contains(a.Message, substr) {
			return true
		}
	}
	return false
}

// fill writes a data set of mib MiB to /data/name and returns its SHA-256.
func (u *unit) fill(name string, mib, seed int) string {
	return u.debug(fmt.Sprintf("fill /data/%s %d %d", name, mib, seed), reDebugSum, 3*time.Minute)[1]
}

// checkData re-reads every data set past the page cache and compares the checksums.
func (u *unit) checkData(sets map[string]string) {
	u.t.Helper()
	for name, want := range sets {
		if got := u.debug("sum /data/"+name, `debug: sum /data/`+name+`: (\S+) (.*)`, 3*time.Minute); got[1] != want {
			u.t.Fatalf("data set %s: sum %s (%s), want %s", name, got[1], got[2], want)
		}
	}
}

// waitRebuild waits for the data array to rebuild and become clean; it fails if no rebuild with progress
// was ever seen.
func (u *unit) waitRebuild(tok string, timeout time.Duration) {
	u.t.Helper()
	seen := false
	eventually(u.t, timeout, "rebuild to clean", func() error {
		st := u.storage(tok)
		for _, a := range st.Arrays {
			if a.State == "rebuilding" && a.RebuildProgress != nil {
				seen = true
			}
		}
		if got := st.arrayStates(); got != "system=clean data=clean" {
			return fmt.Errorf("arrays %q", got)
		}
		return nil
	})
	if !seen {
		u.t.Error("no rebuild with progress was seen")
	}
}

// failDuringWrites makes member disk id fail with I/O errors while a data set is written, waits until md
// has failed it (data array degraded, an alert), and checks that every data set still reads back intact.
func (u *unit) failDuringWrites(tok, id, serial string, sets map[string]string) {
	u.t.Helper()
	if err := u.InjectIOError(id); err != nil {
		u.t.Fatal(err)
	}
	sets["during"] = u.fill("during", 32, 2)
	eventually(u.t, time.Minute, serial+" faulty in the data array", func() error {
		st := u.storage(tok)
		if st.member("data", serial) != "faulty" || !strings.Contains(st.arrayStates(), "data=degraded") || !st.alert("data array is degraded") {
			return fmt.Errorf("%s, %s %s, alerts %+v", st.arrayStates(), serial, st.member("data", serial), st.Alerts)
		}
		return nil
	})
	u.checkData(sets)
}

// keepSpares sets the policy that keeps a new disk as a hot spare (the arrays do not grow onto it).
func (u *unit) keepSpares(tok string) {
	u.t.Helper()
	if code, body := u.call("PUT", "/api/v1/storage/policy", tok, `{"keep_spare":true}`); code != 204 {
		u.t.Fatalf("keep spares = %d %s", code, body)
	}
}

// scrubClean runs a scrub and checks that it finds no mismatch.
func (u *unit) scrubClean(tok string) {
	u.t.Helper()
	if code, body := u.call("POST", "/api/v1/storage/scrub", tok, ""); code != 202 {
		u.t.Fatalf("scrub = %d %s", code, body)
	}
	if _, err := u.Expect(regexp.MustCompile(`scrub of the data array finished: (\d+) mismatched sectors`), 5*time.Minute); err != nil {
		u.t.Fatal(err)
	}
	st := u.waitStates(tok, "system=clean data=clean", time.Minute)
	for _, a := range st.Arrays {
		if a.MismatchSectors != 0 {
			u.t.Errorf("scrub of %s: %d mismatched sectors", a.Name, a.MismatchSectors)
		}
	}
}

// RAID 1: I/O errors on a member during writes, pull it, reboot degraded, replace it, scrub. The data set
// written at the start reads back intact at every step, and the settings survive the reboot on the
// degraded system array.
func TestRAID1FailPullRebootReplace(t *testing.T) {
	parallel(t)
	ds := keep(t, Disk{ID: "a", Kind: Virtio, Serial: "R1-A", SizeMiB: 1024}, Disk{ID: "b", Kind: Virtio, Serial: "R1-B", SizeMiB: 1024, Faulty: true})
	a, b := ds[0], ds[1]
	u := boot(t, Config{Disks: []Disk{a, b}})
	tok := u.setupAndLogin()
	st := u.waitStates(tok, "system=clean data=clean", 3*time.Minute)
	if st.Arrays[1].Level != "raid1" || !st.Persistent || len(st.alertsBut("encrypted")) != 0 { // a lone unit without TPM: its key is on the disks (TestEncryptedAtRest)
		t.Fatalf("after first boot: %+v", st)
	}
	sets := map[string]string{"before": u.fill("before", 64, 1)}
	u.failDuringWrites(tok, "b", "R1-B", sets)

	if err := u.PullDisk("b"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "R1-B removed from both arrays", func() error {
		st = u.storage(tok)
		if st.arrayStates() != "system=degraded data=degraded" || st.member("data", "R1-B") != "removed" || st.member("system", "R1-B") != "removed" {
			return fmt.Errorf("%s, R1-B data %s system %s", st.arrayStates(), st.member("data", "R1-B"), st.member("system", "R1-B"))
		}
		return nil
	})
	u.capture("raid1-pulled")

	// Reboot while degraded: QEMU runs with -no-reboot, so the reboot ends it; boot again with disk A only.
	u.shutdown(tok, "reboot")
	u = boot(t, Config{Disks: []Disk{a}})
	if u.code != "" {
		t.Fatal("the unit asks for setup again: its settings did not survive on the degraded system array")
	}
	tok = u.login()
	u.waitStates(tok, "system=degraded data=degraded", time.Minute)
	if !strings.Contains(u.Console(), "the data array started DEGRADED") {
		t.Error("no loud degraded message at boot")
	}
	u.checkData(sets)

	if err := u.InsertDisk(Disk{ID: "c", Kind: Virtio, Serial: "R1-C", SizeMiB: 1024}); err != nil {
		t.Fatal(err)
	}
	u.waitRebuild(tok, 5*time.Minute)
	st = u.storage(tok)
	if st.member("data", "R1-C") != "in_sync" || st.member("system", "R1-C") != "in_sync" {
		t.Errorf("R1-C after the rebuild: data %s, system %s", st.member("data", "R1-C"), st.member("system", "R1-C"))
	}
	u.scrubClean(tok)
	u.checkData(sets)
}

// RAID 5 on three disks: a too-small disk and a disk holding an old filesystem are refused and left
// byte-for-byte untouched; the old one, once adopted, becomes a hot spare; pulling a member starts the
// rebuild onto it by itself; QEMU is killed half-way through the rebuild and the rebuild finishes after
// the restart, with the data intact.
func TestRAID5RefuseAdoptSpareCrash(t *testing.T) {
	parallel(t)
	all := keep(t,
		Disk{ID: "d0", Kind: Virtio, Serial: "R5-A", SizeMiB: 1024},
		Disk{ID: "d1", Kind: Virtio, Serial: "R5-B", SizeMiB: 1024},
		Disk{ID: "d2", Kind: Virtio, Serial: "R5-C", SizeMiB: 1024},
		Disk{ID: "small", Kind: Virtio, Serial: "SMALL", SizeMiB: 512},
		Disk{ID: "old", Kind: Virtio, Serial: "OLD-FS", SizeMiB: 1024})
	disks, small, old := all[:3], all[3], all[4]
	oldSum := foreignDisk(t, old.Path)

	u := boot(t, Config{Disks: disks})
	tok := u.setupAndLogin()
	st := u.waitStates(tok, "system=clean data=clean", 3*time.Minute)
	if st.Arrays[1].Level != "raid5" {
		t.Fatalf("data array on 3 disks: %s", st.Arrays[1].Level)
	}
	sets := map[string]string{"set": u.fill("set", 96, 3)}
	u.keepSpares(tok)

	for _, d := range []Disk{small, old} {
		if err := u.InsertDisk(d); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, time.Minute, "the odd disks refused", func() error {
		st = u.storage(tok)
		_, s1, r1 := st.disk("SMALL")
		_, s2, r2 := st.disk("OLD-FS")
		if s1 != "refused" || !strings.Contains(r1, "too small") || s2 != "needs_adopt" || !strings.Contains(r2, "ext2/3/4 filesystem") {
			return fmt.Errorf("SMALL %s (%s), OLD-FS %s (%s)", s1, r1, s2, r2)
		}
		return nil
	})
	u.capture("raid5-odd-disks")
	time.Sleep(6 * time.Second) // a few more passes of the storage loop
	zero := make([]byte, 512<<20)
	if b, err := os.ReadFile(small.Path); err != nil || !bytes.Equal(b, zero) {
		t.Errorf("the too-small disk was written (%v)", err)
	}
	if fileSum(t, old.Path) != oldSum {
		t.Error("the disk with an old filesystem was written before it was adopted")
	}

	if code, body := u.call("POST", "/api/v1/storage/disks/OLD-FS/adopt", tok, ""); code != 202 {
		t.Fatalf("adopt = %d %s", code, body)
	}
	eventually(t, time.Minute, "OLD-FS a hot spare", func() error {
		if role, _, _ := u.storage(tok).disk("OLD-FS"); role != "spare" {
			return fmt.Errorf("OLD-FS role %q", role)
		}
		return nil
	})

	if err := u.PullDisk("d2"); err != nil {
		t.Fatal(err)
	}
	// md starts rebuilding onto the spare; kill QEMU when the data array is part-way through.
	var killedAt float64
	eventually(t, 2*time.Minute, "rebuild onto the spare under way", func() error {
		st = u.storage(tok)
		for _, a := range st.Arrays {
			if a.Name == "data" && a.State == "rebuilding" && a.RebuildProgress != nil && *a.RebuildProgress > 0.05 {
				killedAt = *a.RebuildProgress
				return nil
			}
		}
		return fmt.Errorf("arrays %s", st.arrayStates())
	})
	if err := u.Kill9(); err != nil {
		t.Fatal(err)
	}
	u = boot(t, Config{Disks: []Disk{disks[0], disks[1], old}})
	tok = u.login()
	resumedAt := -1.0
	eventually(t, 5*time.Minute, "clean after the restart", func() error {
		st = u.storage(tok)
		for _, a := range st.Arrays {
			if a.Name == "data" && a.RebuildProgress != nil && resumedAt < 0 {
				resumedAt = *a.RebuildProgress
			}
		}
		if got := st.arrayStates(); got != "system=clean data=clean" {
			return fmt.Errorf("arrays %q", got)
		}
		return nil
	})
	t.Logf("data rebuild killed at %.0f %%, first seen after the restart at %.0f %% (md's checkpoint)", killedAt*100, resumedAt*100)
	if st := u.storage(tok); st.member("data", "OLD-FS") != "in_sync" {
		t.Errorf("OLD-FS after the rebuild: %s", st.member("data", "OLD-FS"))
	}
	u.checkData(sets)
}

// RAID 5 on four disks: I/O errors on a member during writes, pull it, insert a blank disk, rebuild, scrub.
func TestRAID5FourDisksFailReplace(t *testing.T) {
	parallel(t)
	var disks []Disk
	for i, s := range []string{"Q-A", "Q-B", "Q-C", "Q-D"} {
		disks = append(disks, Disk{ID: fmt.Sprintf("q%d", i), Kind: Virtio, Serial: s, SizeMiB: 1024, Faulty: s == "Q-C"})
	}
	u := boot(t, Config{Disks: disks})
	tok := u.setupAndLogin()
	st := u.waitStates(tok, "system=clean data=clean", 4*time.Minute)
	// RAID 5 of four: three members' data partitions (storage.Layout), less md's metadata and bitmap
	member := int64(1024<<20 - 1<<20 - storage.BootBytes - storage.SystemBytes - 16<<20)
	if st.Arrays[1].Level != "raid5" || len(st.Arrays[0].Members) != 4 || st.Arrays[1].SizeBytes < 3*member {
		t.Fatalf("after first boot: %+v", st.Arrays)
	}
	sets := map[string]string{"before": u.fill("before", 64, 4)}
	u.failDuringWrites(tok, "q2", "Q-C", sets)
	if err := u.PullDisk("q2"); err != nil {
		t.Fatal(err)
	}
	u.waitStates(tok, "system=degraded data=degraded", time.Minute)
	if err := u.InsertDisk(Disk{ID: "q9", Kind: Virtio, Serial: "Q-NEW", SizeMiB: 1024}); err != nil {
		t.Fatal(err)
	}
	u.waitRebuild(tok, 6*time.Minute)
	u.scrubClean(tok)
	u.checkData(sets)
}

// One NVMe disk: the arrays run as mirrors with their second half missing and say so; a second disk
// completes them.
func TestSingleDiskThenSecond(t *testing.T) {
	parallel(t)
	u := boot(t, Config{Disks: []Disk{{ID: "n1", Kind: NVMe, Serial: "ONLY-ONE", SizeMiB: 1024}}})
	tok := u.setupAndLogin()
	st := u.waitStates(tok, "system=degraded data=degraded", 3*time.Minute)
	if !st.alert("NO REDUNDANCY") || !st.Persistent {
		t.Fatalf("single disk: %+v", st)
	}
	before := dataSpace(t, st)
	sets := map[string]string{"one": u.fill("one", 32, 6)}
	// The storage reports the data filesystem's space as df does: 32 MiB written are about 32 MiB more used
	// (the database on the same filesystem may have recycled a WAL segment meanwhile).
	if after := dataSpace(t, u.storage(tok)); after.UsedBytes-before.UsedBytes < 24<<20 || after.FreeBytes > before.FreeBytes-24<<20 {
		t.Errorf("space of the data filesystem: %+v, then after 32 MiB written %+v", before, after)
	}
	if err := u.InsertDisk(Disk{ID: "v2", Kind: Virtio, Serial: "SECOND", SizeMiB: 1024}); err != nil {
		t.Fatal(err)
	}
	u.waitRebuild(tok, 5*time.Minute)
	if st := u.storage(tok); st.alert("NO REDUNDANCY") || st.member("data", "SECOND") != "in_sync" {
		t.Errorf("after the second disk: %+v", st)
	}
	u.checkData(sets)
}

// dataSpace is the data filesystem's space in st, checked for sense.
func dataSpace(t *testing.T, st storageStatus) appliance.Space {
	t.Helper()
	for _, sp := range st.Space {
		if sp.Name == "data" {
			if sp.SizeBytes <= 0 || sp.UsedBytes <= 0 || sp.FreeBytes <= 0 || sp.UsedBytes+sp.FreeBytes > sp.SizeBytes || sp.Percent <= 0 || sp.Percent >= 100 {
				t.Errorf("the data filesystem's space makes no sense: %+v", sp)
			}
			return sp
		}
	}
	t.Fatalf("no space reported for the data filesystem: %+v", st.Space)
	return appliance.Space{}
}

// First boot with a blank disk and a disk holding an old filesystem: nothing is created (and the old disk
// not touched) until an admin adopts it; the settings made meanwhile live in RAM, move to the new system
// array, and survive a reboot.
func TestFirstBootWaitsForAdopt(t *testing.T) {
	parallel(t)
	ds := keep(t, Disk{ID: "a", Kind: Virtio, Serial: "NEW-A", SizeMiB: 1024}, Disk{ID: "b", Kind: NVMe, Serial: "OLD-B", SizeMiB: 1024})
	blank, old := ds[0], ds[1]
	if err := os.WriteFile(old.Path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(old.Path, 1<<30); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", old.Path).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 on the host: %v %s", err, out)
	}
	oldSum := fileSum(t, old.Path)
	u := boot(t, Config{Disks: []Disk{blank, old}})
	tok := u.setupAndLogin()
	var st storageStatus
	eventually(t, time.Minute, "waiting for a decision", func() error {
		st = u.storage(tok)
		if _, s, _ := st.disk("OLD-B"); s != "needs_adopt" || len(st.Arrays) != 0 || st.Persistent {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	u.capture("first-boot-foreign")
	time.Sleep(6 * time.Second)
	if st = u.storage(tok); len(st.Arrays) != 0 || fileSum(t, old.Path) != oldSum {
		t.Fatalf("something was created or written before the adopt: %+v", st)
	}
	if code, body := u.call("POST", "/api/v1/storage/disks/OLD-B/adopt", tok, ""); code != 202 {
		t.Fatalf("adopt = %d %s", code, body)
	}
	st = u.waitStates(tok, "system=clean data=clean", 3*time.Minute)
	if !st.Persistent || st.member("data", "OLD-B") != "in_sync" || st.member("data", "NEW-A") != "in_sync" {
		t.Fatalf("after the adopt: %+v", st)
	}
	if _, err := u.Expect(regexp.MustCompile(`state store: /var/lib/appliance/state.db`), time.Minute); err != nil {
		t.Fatal(err)
	}
	u.shutdown(tok, "reboot")
	u = boot(t, Config{Disks: []Disk{blank, old}})
	if u.code != "" {
		t.Fatal("the unit asks for setup again: the settings made before the arrays existed were lost")
	}
	u.waitStates(u.login(), "system=clean data=clean", time.Minute)
}

// A scrub interrupted by a restart is paused with its position saved and resumes after the boot, then
// reports its result.
func TestScrubResumesAfterReboot(t *testing.T) {
	parallel(t)
	disks := keep(t, Disk{ID: "a", Kind: Virtio, Serial: "SC-A", SizeMiB: 2048}, Disk{ID: "b", Kind: Virtio, Serial: "SC-B", SizeMiB: 2048})
	u := boot(t, Config{Disks: disks})
	tok := u.setupAndLogin()
	u.waitStates(tok, "system=clean data=clean", 3*time.Minute)
	if code, body := u.call("POST", "/api/v1/storage/scrub", tok, ""); code != 202 {
		t.Fatalf("scrub = %d %s", code, body)
	}
	eventually(t, 2*time.Minute, "the data array's check a part of the way", func() error {
		for _, a := range u.storage(tok).Arrays {
			if a.Name == "data" && a.State == "checking" && a.RebuildProgress != nil && *a.RebuildProgress > 0.1 && *a.RebuildProgress < 0.6 {
				return nil
			}
		}
		return fmt.Errorf("not yet")
	})
	u.shutdown(tok, "reboot")
	if _, err := u.Expect(regexpQuote("scrub paused for shutdown; it resumes at the next start"), time.Minute); err != nil {
		t.Fatal(err)
	}
	u = boot(t, Config{Disks: disks})
	tok = u.login()
	resumed := regexp.MustCompile(`scrub resumed on .* where it stopped \(sectors map\[data:[1-9]`)
	eventually(t, time.Minute, "scrub resumed past the start of the data array", func() error {
		if !resumed.MatchString(u.Console()) { // it may come before "web UI ready"
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if _, err := u.Expect(regexp.MustCompile(`scrub of the data array finished: 0 mismatched sectors`), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	u.waitStates(tok, "system=clean data=clean", time.Minute)
}

// A data filesystem with damage is never "repaired" by answering yes to everything: here the kernel refuses
// the mount (a metadata checksum fails) and the unit says so, changes nothing, and keeps the database off it.
func TestDamagedFilesystemIsLeftAlone(t *testing.T) {
	parallel(t)
	disks := keep(t, Disk{ID: "a", Kind: Virtio, Serial: "FS-A", SizeMiB: 1024}, Disk{ID: "b", Kind: Virtio, Serial: "FS-B", SizeMiB: 1024})
	u := boot(t, Config{Disks: disks})
	tok := u.setupAndLogin()
	u.waitStates(tok, "system=clean data=clean", 3*time.Minute)
	// The array is encrypted: the damage is done inside, through the data volume's plaintext, the
	// filesystem frozen first (nothing of it left to write back over the damage), then the power is cut.
	u.debug("corruptroot /dev/lawbox/data /data", `debug: corruptroot /dev/lawbox/data: <nil>`, time.Minute)
	if err := u.Kill9(); err != nil {
		t.Fatal(err)
	}
	u = boot(t, Config{Disks: disks})
	tok = u.login()
	var st storageStatus
	eventually(t, time.Minute, "filesystem alert", func() error {
		st = u.storage(tok)
		if !st.alert("the data filesystem could not be mounted") {
			return fmt.Errorf("alerts %+v", st.Alerts)
		}
		return nil
	})
	if code, body := u.call("GET", "/api/v1/database", tok, ""); code != 200 || !strings.Contains(body, "waiting for storage") {
		t.Errorf("the database started on a damaged filesystem: %d %s", code, body)
	}
}

// foreignDisk makes a disk image of 1 GiB holding another system's filesystem (ext4, labelled oldclient) and
// answers its checksum.
func foreignDisk(t *testing.T, path string) (sum string) {
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 1<<30); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "oldclient", path).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 on the host: %v %s", err, out)
	}
	return fileSum(t, path)
}
