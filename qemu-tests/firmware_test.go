package qemutests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/firmware"
	"github.com/lawbox/appliance/appliance/storage"
)

// A box with blank disks boots its install disk under UEFI (OVMF, systemd-boot, the unified kernel image);
// once the arrays exist the firmware is on both members' boot partitions. Powered off, the install disk
// taken out, the unit boots from its own disks, with its settings; and from the second disk alone.
func TestInstallAndBootFromDisks(t *testing.T) {
	parallel(t)
	u, tok, cfg := installedUnit(t)
	if u.code != "" {
		t.Fatal("booted from its disks, the unit asks for setup again")
	}
	if c := u.Console(); !strings.Contains(c, "EFI stub: Loaded initrd") || !strings.Contains(c, "booting") {
		t.Errorf("not booted from its disks by UEFI:\n%s", tail(c))
	}
	u.waitStates(tok, "system=clean data=clean", 3*time.Minute)
	u.shutdown(tok, "poweroff")

	// The first disk pulled: the second alone boots the unit (degraded), from its own boot partition.
	u = boot(t, Config{UEFI: true, Disks: cfg.Disks[1:]})
	if u.code != "" || !strings.Contains(u.Console(), "EFI stub: Loaded initrd") {
		t.Fatalf("booted from %s alone: setup code %q\n%s", cfg.Disks[1].Serial, u.code, tail(u.Console()))
	}
	u.login()
}

// upload sends an update bundle to the unit; query is "" or "?allow_downgrade=true".
func (u *unit) upload(tok string, bundle []byte, query string) (int, string) {
	u.t.Helper()
	req, err := http.NewRequest("POST", u.URL("/api/v1/system/firmware"+query), bytes.NewReader(bundle))
	if err != nil {
		u.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/octet-stream")
	hc := *u.http
	hc.Timeout = 10 * time.Minute // 50 MB into a TCG guest, checked, then written to every disk
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (u *unit) firmware(tok string) appliance.FirmwareStatus {
	u.t.Helper()
	var st appliance.FirmwareStatus
	u.get("/api/v1/system/firmware", tok, &st)
	return st
}

// slots is the slots' states by version ("v1:running v0:previous").
func slots(st appliance.FirmwareStatus) string {
	var s []string
	for _, sl := range st.Slots {
		s = append(s, sl.Version+":"+sl.State)
	}
	return strings.Join(s, " ")
}

// booted waits for the unit to have started version v (after a restart it does by itself), then for its
// web UI, and logs in again.
func (u *unit) booted(v string, timeout time.Duration) string {
	u.t.Helper()
	if _, err := u.Expect(regexp.MustCompile(`appliance `+regexp.QuoteMeta(v)+` booting`), timeout); err != nil {
		u.t.Fatalf("%v\n%s", err, tail(u.Console()))
	}
	u.ready()
	return u.login()
}

// espSums hashes the boot partition of each disk image, read from the host.
func espSums(t testing.TB, disks []Disk) []string {
	var out []string
	for _, d := range disks {
		f, err := os.Open(d.Path)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		boot := storage.Layout(int64(d.SizeMiB)<<20, 512).Partitions[0]
		_, err = io.Copy(h, io.NewSectionReader(f, int64(boot.First)*512, int64(boot.Last-boot.First+1)*512))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, hex.EncodeToString(h.Sum(nil)))
	}
	return out
}

// loadedDatabase waits for the database, creates the office database "practice" with a table "load" for
// startLoad, and returns its connection string.
func (u *unit) loadedDatabase(tok string) newDatabase {
	u.t.Helper()
	u.waitDatabase(tok)
	code, body := u.call("POST", "/api/v1/database/databases", tok, `{"name":"practice","owner":"practice_app"}`)
	var nd newDatabase
	if code != 201 || json.Unmarshal([]byte(body), &nd) != nil {
		u.t.Fatalf("create database = %d %s", code, body)
	}
	u.exec(u.t, nd.URL, "CREATE TABLE load (id int PRIMARY KEY)")
	return nd
}

// dbLoad commits rows one after another from the host through the unit's forwarded PostgreSQL port,
// connecting again after each lost connection. acked are the rows whose commit was acknowledged.
type dbLoad struct {
	stop   chan struct{}
	once   sync.Once
	done   chan struct{}
	mu     sync.Mutex
	acked  []int
	errors map[string]int
}

func startLoad(u *unit, connURL string) *dbLoad { return startLoadFrom(u, connURL, 0) }

// startLoadFrom is startLoad with the rows numbered from first (a second load into the same table).
func startLoadFrom(u *unit, connURL string, first int) *dbLoad {
	l := &dbLoad{stop: make(chan struct{}), done: make(chan struct{}), errors: map[string]int{}}
	go func() {
		defer close(l.done)
		var c *pgx.Conn
		for i := first; ; {
			select {
			case <-l.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var err error
			if c == nil || c.IsClosed() {
				c, err = u.connect(ctx, connURL)
			}
			if err == nil {
				_, err = c.Exec(ctx, "INSERT INTO load VALUES ($1)", i)
			}
			cancel()
			l.mu.Lock()
			if err != nil {
				var pe *pgconn.PgError
				kind := "connection lost or refused"
				if errors.As(err, &pe) {
					kind = pe.Code + " " + pe.Message
				}
				l.errors[kind]++
				c = nil
				l.mu.Unlock()
				time.Sleep(500 * time.Millisecond)
				continue
			}
			l.acked = append(l.acked, i)
			l.mu.Unlock()
			i++
		}
	}()
	return l
}

// check stops the load (if it still runs) and returns how many commits were acknowledged and how many
// of them u lacks.
func (l *dbLoad) check(t *testing.T, u *unit, connURL string) (acked, lost int) {
	l.once.Do(func() { close(l.stop) })
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := u.connect(ctx, connURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	have := map[int]bool{}
	rows, err := c.Query(ctx, "SELECT id FROM load")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int
		rows.Scan(&id)
		have[id] = true
	}
	for _, id := range l.acked {
		if !have[id] {
			lost++
		}
	}
	return len(l.acked), lost
}

// installedUnit boots a unit from a copy of two disks on which the install disk installed the firmware
// (installedDisks), restarting by itself as a box does (Config.Reboot). It returns the unit, an admin
// token and its configuration.
func installedUnit(t testing.TB) (*unit, string, Config) {
	base := installedDisks(t)
	dir := t.TempDir()
	var members []Disk
	for _, d := range base {
		d.Path = filepath.Join(dir, d.ID+".img")
		if out, err := exec.Command("cp", "--sparse=always", "--reflink=auto", base[len(members)].Path, d.Path).CombinedOutput(); err != nil {
			t.Fatalf("copy the installed disk %s: %v %s", d.ID, err, out)
		}
		members = append(members, d)
	}
	cfg := Config{UEFI: true, Reboot: true, Disks: members}
	u := boot(t, cfg)
	return u, u.login(), cfg
}

// installed is the install the tests of installed units start from, made once by the first that needs it.
var installed struct {
	once  sync.Once
	dir   string
	disks []Disk
}

// installedDisks boots the install disk with two blank disks under UEFI, sets the unit up, waits for its
// arrays and for the firmware on both members' boot partitions, and powers it off; it returns those two
// disks, which the callers copy.
func installedDisks(t testing.TB) []Disk {
	installed.once.Do(func() {
		im := image(t)
		dir, err := os.MkdirTemp("", "lawbox-installed-")
		if err != nil {
			t.Fatal(err)
		}
		installed.dir = dir
		members := []Disk{
			{ID: "a", Kind: Virtio, Serial: "UP-A", SizeMiB: 1024, Path: filepath.Join(dir, "a.img")},
			{ID: "b", Kind: Virtio, Serial: "UP-B", SizeMiB: 1024, Path: filepath.Join(dir, "b.img")},
		}
		inst := filepath.Join(t.TempDir(), "installer.img")
		if err := copyFile(filepath.Join(im.root, im.Installer), inst); err != nil {
			t.Fatal(err)
		}
		u := boot(t, Config{UEFI: true, Disks: append(slices.Clone(members), Disk{ID: "inst", Kind: Virtio, Serial: "INSTALL", Path: inst})})
		tok := u.setupAndLogin()
		u.waitStates(tok, "system=clean data=clean", 3*time.Minute)
		re := regexp.MustCompile(`firmware installed: the unit boots from this disk.* partition=(\S+)`)
		for range members {
			m, err := u.Expect(re, 3*time.Minute)
			if err != nil {
				t.Fatalf("%v\n%s", err, tail(u.Console()))
			}
			t.Logf("firmware installed on %s", m[1])
		}
		u.shutdown(tok, "poweroff")
		installed.disks = members
	})
	if installed.disks == nil {
		t.Fatal("the install the installed units start from failed (see the first test that made it)")
	}
	return installed.disks
}

// removeFixtures removes what the tests shared.
func removeFixtures() {
	if installed.dir != "" {
		os.RemoveAll(installed.dir)
	}
}

// blessed waits until the firmware running on u is blessed, and returns its status.
func (u *unit) blessed(tok string) appliance.FirmwareStatus {
	u.t.Helper()
	var st appliance.FirmwareStatus
	eventually(u.t, 10*time.Minute, "the new firmware blessed", func() error {
		if st = u.firmware(tok); st.Update == nil || st.Update.State != appliance.FirmwareBlessed || st.Trial {
			return fmt.Errorf("%+v", st.Update)
		}
		return nil
	})
	return st
}

// update uploads bundle and waits until u runs version v, blessed; it returns a new admin token.
func (u *unit) update(tok string, bundle []byte, v string) string {
	u.t.Helper()
	if code, body := u.upload(tok, bundle, ""); code != 202 {
		u.t.Fatalf("update to %s = %d %s", v, code, body)
	}
	tok = u.booted(v, 5*time.Minute)
	u.blessed(tok)
	return tok
}

// rollsBack uploads a bundle whose firmware (version v) never becomes healthy and waits until the boot
// loader has tried it its three times and u is back on version running by itself, the update reported
// rolled back; it returns a new admin token.
func (u *unit) rollsBack(tok string, bundle []byte, v, running string) string {
	u.t.Helper()
	if code, body := u.upload(tok, bundle, ""); code != 202 {
		u.t.Fatalf("update to %s = %d %s", v, code, body)
	}
	for i := range firmware.Tries {
		if _, err := u.Expect(regexp.MustCompile(`appliance `+regexp.QuoteMeta(v)+` booting`), 5*time.Minute); err != nil {
			u.t.Fatalf("try %d: %v\n%s", i+1, err, tail(u.Console()))
		}
	}
	tok = u.booted(running, 10*time.Minute)
	eventually(u.t, 2*time.Minute, "the failed update reported", func() error {
		if st := u.firmware(tok); st.Update == nil || st.Update.State != appliance.FirmwareRolledBack {
			return fmt.Errorf("%+v", st.Update)
		}
		return nil
	})
	return tok
}

// A unit installed on its disks takes signed updates under UEFI: every bad bundle is refused with the boot
// partitions' bytes unchanged; a good one, under a client load, restarts into the new slot, which is blessed
// once the unit is healthy (the previous slot kept, no acknowledged commit lost); a downgrade is not taken
// unless asked for; a rollback by hand goes back.
func TestFirmwareUpdate(t *testing.T) {
	parallel(t)
	im := image(t)
	u, tok, cfg := installedUnit(t)
	members := cfg.Disks
	if st := u.firmware(tok); st.Version != im.Version || slots(st) != im.Version+":running" {
		t.Fatalf("installed: %+v", st)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(im.root, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	next, own := read(im.TestBundles["next"]), read(im.Update)
	vNext := im.Version + "-next"

	// Bad bundles: nothing written.
	before := espSums(t, members)
	corrupt := bytes.Clone(next)
	corrupt[len(corrupt)/2] ^= 0xff
	foreignKey, _ := firmware.GenerateKey()
	var foreign bytes.Buffer
	if err := firmware.Write(&foreign, foreignKey, firmware.Manifest{Version: "evil", Build: im.Build + 100, Parts: []firmware.Part{{Name: "lawbox-evil.efi"}}},
		func(string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(next[:1<<20])), nil }); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		bundle []byte
		want   int
	}{
		{"truncated", next[:len(next)*3/5], 400},
		{"corrupted", corrupt, 400},
		{"signed with another key", foreign.Bytes(), 400},
		{"the running version", own, 409},
	} {
		if code, body := u.upload(tok, c.bundle, ""); code != c.want {
			t.Errorf("%s bundle: %d %s, want %d", c.name, code, body, c.want)
		}
	}
	if after := espSums(t, members); !slices.Equal(before, after) {
		t.Errorf("a refused bundle changed a boot partition: %v -> %v", before, after)
	}

	// A good one under a client load.
	nd := u.loadedDatabase(tok)
	load := startLoad(u, nd.URL)
	start := time.Now()
	tok = u.update(tok, next, vNext)
	t.Logf("update: upload to blessed in %v", time.Since(start).Round(time.Second))
	if st := u.firmware(tok); st.Version != vNext || slots(st) != vNext+":running "+im.Version+":previous" {
		t.Errorf("after the update: %+v", st)
	}
	time.Sleep(3 * time.Second) // commits on the new firmware too
	acked, lost := load.check(t, u, nd.URL)
	t.Logf("client load through the update: %d commits acknowledged, %d lost; what the client met: %v", acked, lost, load.errors)
	if lost != 0 || acked == 0 {
		t.Errorf("%d of %d acknowledged commits lost", lost, acked)
	}
	before = espSums(t, members)
	if code, body := u.upload(tok, own, ""); code != 409 || !strings.Contains(body, "older") {
		t.Errorf("downgrade not asked for: %d %s", code, body)
	}
	if after := espSums(t, members); !slices.Equal(before, after) {
		t.Errorf("a refused downgrade changed a boot partition")
	}

	// Back by hand.
	if code, body := u.call("POST", "/api/v1/system/firmware/rollback", tok, ""); code != 202 {
		t.Fatalf("rollback = %d %s", code, body)
	}
	tok = u.booted(im.Version, 5*time.Minute)
	if st := u.firmware(tok); slots(st) != im.Version+":running "+vNext+":failed" || st.Update.State != appliance.FirmwareManualRollback {
		t.Errorf("after the rollback: %s, %+v", slots(st), st.Update)
	}

}

// A power cut while an update's slot is written leaves a unit that boots; a firmware that never becomes
// healthy is left by the boot loader after its tries and the unit, back on its firmware by itself, says why.
func TestFirmwareUpdateInterrupted(t *testing.T) {
	soak(t) // 10 minutes of VM time: three boots of the unhealthy firmware under TCG
	parallel(t)
	im := image(t)
	u, tok, cfg := installedUnit(t)
	next, err := os.ReadFile(filepath.Join(im.root, im.TestBundles["next"]))
	if err != nil {
		t.Fatal(err)
	}
	unhealthy, err := os.ReadFile(filepath.Join(im.root, im.TestBundles["unhealthy"]))
	if err != nil {
		t.Fatal(err)
	}
	vNext, vUnhealthy := im.Version+"-next", im.Version+"-unhealthy"

	// Power cut while the slot is written: the unit boots (on either slot).
	go u.upload(tok, next, "")
	if _, err := u.Expect(regexp.MustCompile(`firmware update: writing the new slot`), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := u.Kill9(); err != nil {
		t.Fatal(err)
	}
	u = boot(t, cfg)
	tok = u.login()
	st := u.firmware(tok)
	t.Logf("booted after the power cut: %s (%s), last update %+v", st.Version, slots(st), st.Update)
	if st.Version == vNext {
		u.blessed(tok)
	} else if st.Version != im.Version || st.Update.State != appliance.FirmwareInterrupted {
		t.Errorf("after the power cut: %+v", st)
	}
	running := u.firmware(tok).Version

	// A firmware that never becomes healthy: tried, left, and said.
	start := time.Now()
	tok = u.rollsBack(tok, unhealthy, vUnhealthy, running)
	t.Logf("automatic rollback: upload to back on %s in %v", running, time.Since(start).Round(time.Second))
	st = u.firmware(tok)
	if st.Version != running || !strings.Contains(st.Update.Reason, "did not become healthy in 3 tries") || !strings.Contains(slots(st), vUnhealthy+":failed") {
		t.Errorf("after the automatic rollback: %s, %+v", slots(st), st.Update)
	}
	if code, body := u.call("GET", "/", "", ""); code != 200 && code != 303 {
		t.Errorf("dashboard = %d %s", code, body)
	}
}

// waitDatabase waits until u's database runs.
func (u *unit) waitDatabase(tok string) {
	u.t.Helper()
	eventually(u.t, 3*time.Minute, "database running", func() error {
		if code, body := u.call("GET", "/api/v1/database", tok, ""); !strings.Contains(body, `"state":"running"`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
}
