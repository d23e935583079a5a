package qemutests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"golang.org/x/crypto/md4" //lint:ignore SA1019 the NT hash SMB keeps is MD4
)

// The data array is encrypted at rest (LUKS2). A known plaintext written through the database and into a
// file on /data is on none of the disk images, nor is a file account's NT hash (the state store on the
// system array keeps it sealed with a key on the data array), while a marker written to the system array
// (not encrypted) is found by the same search. The unit has no TPM, so the storage says its key is kept on the disks (a disk
// taken out is not protected yet) and asks for a recovery sheet; the sheet's key opens the array; a
// restart unlocks it by itself and every row is there. A disk replaced afterwards joins encrypted: the
// rebuild copies ciphertext onto it. (A locked unit: TestTPMKeepsTheKey, and TestPairManualMode for a
// unit whose partner keeps its key.)
func TestEncryptedAtRest(t *testing.T) {
	parallel(t)
	disks := keep(t,
		Disk{ID: "e0", Kind: Virtio, Serial: "ENC-A", SizeMiB: 1024},
		Disk{ID: "e1", Kind: Virtio, Serial: "ENC-B", SizeMiB: 1024},
		Disk{ID: "e2", Kind: Virtio, Serial: "ENC-NEW", SizeMiB: 1024})
	u := boot(t, Config{Disks: disks[:2]})
	tok := u.setupAndLogin()
	u.waitStates(tok, "system=clean data=clean", 4*time.Minute)
	st := u.storage(tok)
	if e := st.Encryption; e.State != "open" || len(e.KeyHolders) != 0 || !e.KeyOnDisks || e.RecoveryKey {
		t.Fatalf("a new unit without a TPM: encryption %+v, want open, its key on the disks, no recovery sheet yet", e)
	}
	var said []string
	for _, a := range st.Alerts {
		said = append(said, a.Message)
	}
	if all := strings.Join(said, "\n"); !strings.Contains(all, "a disk taken out of the unit is not protected") || !strings.Contains(all, "no recovery sheet") {
		t.Errorf("the alerts do not say the key is on the disks and no recovery sheet exists:\n%s", all)
	}
	code, body := u.call("POST", "/api/v1/storage/recovery-key", tok, "")
	var sheet struct {
		RecoveryKey string `json:"recovery_key"`
	}
	if code != 201 || json.Unmarshal([]byte(body), &sheet) != nil || len(sheet.RecoveryKey) != 39 {
		t.Fatalf("recovery key = %d %s", code, body)
	}
	if e := u.storage(tok).Encryption; !e.RecoveryKey {
		t.Errorf("after the recovery sheet: %+v", e)
	}
	if code, body := u.call("POST", "/api/v1/storage/unlock", tok, `{"recovery_key":"`+sheet.RecoveryKey+`"}`); code != 409 {
		t.Errorf("unlocking an open array = %d %s, want 409", code, body)
	}

	secret, control := marker("LAWBOX-SECRET-"), marker("LAWBOX-CONTROL-")
	nd := u.loadedDatabase(tok)
	u.exec(t, nd.URL, "CREATE TABLE notes (t text); INSERT INTO notes SELECT '"+secret+"' FROM generate_series(1, 2000)")
	u.debug("text /data/secret.txt "+secret+" 2000", `debug: text /data/secret.txt: <nil>`, time.Minute)
	u.debug("text /var/lib/appliance/control.txt "+control+" 2000", `debug: text /var/lib/appliance/control.txt: <nil>`, time.Minute)
	// A file account: its NT hash opens SMB as the password would. The state store on the system array keeps
	// it sealed with a key on the data array.
	password := marker("file password ")
	if code, body := u.call("PUT", "/api/v1/file-accounts/marie", tok, `{"password":"`+password+`"}`); code/100 != 2 {
		t.Fatalf("file account = %d %s", code, body)
	}
	hash := ntHash(password)
	hashForms := map[string][]byte{"raw": hash, "base64 (JSON)": []byte(base64.StdEncoding.EncodeToString(hash)),
		"hex": []byte(hex.EncodeToString(hash)), "HEX (smbpasswd)": []byte(strings.ToUpper(hex.EncodeToString(hash)))}
	u.shutdown(tok, "poweroff") // PostgreSQL's shutdown checkpoint writes the table out
	found := map[string]int{}
	for _, d := range disks[:2] {
		for name, m := range map[string][]byte{secret: []byte(secret), control: []byte(control), "sealed": []byte("lawbox-sealed-1\x00")} {
			n, err := imageHolds(d.Path, m)
			if err != nil {
				t.Fatal(err)
			}
			found[name] += n
		}
		for form, m := range hashForms {
			n, err := imageHolds(d.Path, m)
			if err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("the file account's NT hash (%s) is on %s %d times", form, d.ID, n)
			}
		}
	}
	if found[control] == 0 {
		t.Fatalf("the search found nothing, not even the marker on the (unencrypted) system array: it cannot prove anything")
	}
	if found["sealed"] == 0 {
		t.Fatalf("no sealed value on the system array: the file account was not stored there sealed")
	}
	if found[secret] != 0 {
		t.Fatalf("the plaintext written through the database and a file is on the disks %d times", found[secret])
	}
	t.Logf("on the disk images: the system array's marker %d times, sealed values %d times, the data's marker and the NT hash none", found[control], found["sealed"])

	u = boot(t, Config{Disks: disks[:2]})
	tok = u.login()
	u.waitDatabase(tok)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := u.connect(ctx, nd.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM notes WHERE t = $1", secret).Scan(&n); err != nil || n != 2000 {
		t.Fatalf("after a restart: %d rows (%v), want 2000", n, err)
	}
	if e := u.storage(tok).Encryption; e.State != "open" || !e.RecoveryKey {
		t.Fatalf("after a restart: %+v", e)
	}
	if code, body := u.call("GET", "/api/v1/shares", tok, ""); code != 200 || !strings.Contains(body, `"name":"marie"`) || strings.Contains(body, "encrypted on it") {
		t.Errorf("the file account after a restart (unsealed with the data array's key) = %d %s", code, body)
	}
	c.Close(ctx)

	if err := u.PullDisk("e1"); err != nil {
		t.Fatal(err)
	}
	u.waitStates(tok, "system=degraded data=degraded", time.Minute)
	if err := u.InsertDisk(disks[2]); err != nil {
		t.Fatal(err)
	}
	u.waitRebuild(tok, 6*time.Minute)
	u.shutdown(tok, "poweroff")
	for m, want := range map[string]bool{secret: false, control: true} {
		n, err := imageHolds(disks[2].Path, []byte(m))
		if err != nil {
			t.Fatal(err)
		}
		if (n > 0) != want {
			t.Errorf("the replaced disk holds %s %d times (the system array's marker is expected, the data's not)", m, n)
		}
	}
}

// The box's TPM keeps the key of its data array (swtpm, as QEMU's chip): once the recovery sheet is made
// the key is no longer on the disks, and the unit unlocks by itself at every start in its box. Its disks
// in another box (another TPM) stay locked, say so and serve nothing, until an admin types the recovery
// sheet's key, which also seals a new key to the new box's TPM: the next start there unlocks by itself.
func TestTPMKeepsTheKey(t *testing.T) {
	parallel(t)
	disks := keep(t,
		Disk{ID: "t0", Kind: Virtio, Serial: "TPM-A", SizeMiB: 1024},
		Disk{ID: "t1", Kind: Virtio, Serial: "TPM-B", SizeMiB: 1024})
	box, other := filepath.Join(t.TempDir(), "tpm"), filepath.Join(t.TempDir(), "tpm-other")
	u := boot(t, Config{Disks: disks, TPM: box})
	tok := u.setupAndLogin()
	u.waitStates(tok, "system=clean data=clean", 4*time.Minute)
	if e := u.storage(tok).Encryption; e.State != "open" || strings.Join(e.KeyHolders, ",") != "tpm" || !e.KeyOnDisks {
		t.Fatalf("a new unit with a TPM: %+v, want its key sealed to the TPM and on the disks until a recovery sheet exists", e)
	}
	code, body := u.call("POST", "/api/v1/storage/recovery-key", tok, "")
	var sheet struct {
		RecoveryKey string `json:"recovery_key"`
	}
	if code != 201 || json.Unmarshal([]byte(body), &sheet) != nil {
		t.Fatalf("recovery key = %d %s", code, body)
	}
	eventually(t, time.Minute, "the key kept by the TPM alone", func() error {
		if e := u.storage(tok).Encryption; e.KeyOnDisks || strings.Join(e.KeyHolders, ",") != "tpm" {
			return fmt.Errorf("%+v", e)
		}
		return nil
	})
	nd := u.loadedDatabase(tok)
	u.exec(t, nd.URL, "INSERT INTO load SELECT generate_series(1, 500)")
	rows := func(u *unit) int {
		u.t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := u.connect(ctx, nd.URL)
		if err != nil {
			u.t.Fatal(err)
		}
		defer c.Close(ctx)
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM load").Scan(&n); err != nil {
			u.t.Fatal(err)
		}
		return n
	}
	u.shutdown(tok, "poweroff")

	// Its own box: unlocked by the TPM, nobody typing anything.
	u = boot(t, Config{Disks: disks, TPM: box})
	tok = u.login()
	u.waitDatabase(tok)
	if n := rows(u); n != 500 {
		t.Fatalf("after a restart in its box: %d rows, want 500", n)
	}
	u.shutdown(tok, "poweroff")

	// Another box: locked, and says so; no data served, nothing formatted.
	u = boot(t, Config{Disks: disks, TPM: other})
	tok = u.login()
	eventually(t, time.Minute, "the data locked", func() error {
		if e := u.storage(tok).Encryption; e.State != "locked" || !strings.Contains(e.Reason, "TPM does not open its key") {
			return fmt.Errorf("encryption %+v", e)
		}
		return nil
	})
	if !strings.Contains(u.Console(), "the data is LOCKED") {
		t.Errorf("the console does not say the data is locked:\n%s", tail(u.Console()))
	}
	if code, body := u.call("GET", "/api/v1/database", tok, ""); strings.Contains(body, `"state":"running"`) {
		t.Fatalf("the database runs on a locked unit: %d %s", code, body)
	}
	if st := u.storage(tok); st.arrayStates() != "system=clean data=clean" {
		t.Fatalf("arrays %s", st.arrayStates())
	}
	if code, body := u.call("POST", "/api/v1/storage/unlock", tok, `{"recovery_key":"AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH"}`); code != 400 {
		t.Fatalf("a wrong recovery key = %d %s, want 400", code, body)
	}
	typed := strings.ToLower(strings.ReplaceAll(sheet.RecoveryKey, "-", " ")) // as read over the phone
	if code, body := u.call("POST", "/api/v1/storage/unlock", tok, `{"recovery_key":"`+typed+`"}`); code != 204 {
		t.Fatalf("the recovery key = %d %s", code, body)
	}
	u.waitDatabase(tok)
	if n := rows(u); n != 500 {
		t.Fatalf("unlocked with the recovery key: %d rows, want 500", n)
	}
	if e := u.storage(tok).Encryption; e.State != "open" || strings.Join(e.KeyHolders, ",") != "tpm" || e.KeyOnDisks || !e.RecoveryKey {
		t.Fatalf("after the recovery: %+v, want a new key sealed to this box's TPM, not on the disks, the sheet still valid", e)
	}
	u.shutdown(tok, "poweroff")

	// The new box keeps the new key: it unlocks by itself from now on.
	u = boot(t, Config{Disks: disks, TPM: other})
	tok = u.login()
	u.waitDatabase(tok)
	if n := rows(u); n != 500 {
		t.Fatalf("after a restart in the new box: %d rows, want 500", n)
	}
}

// marker is a known plaintext no disk holds by chance.
func marker(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + strings.ToUpper(hex.EncodeToString(b))
}

// imageHolds counts the times m is in the disk image at path (read whole, in chunks overlapping by len(m)).
func imageHolds(path string, m []byte) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 8<<20)
	n, carry := 0, 0
	for {
		r, err := io.ReadFull(f, buf[carry:])
		chunk := buf[:carry+r]
		n += bytes.Count(chunk, m)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		carry = copy(buf, chunk[len(chunk)-len(m)+1:])
	}
}

// BenchmarkEncryption measures what the encryption of the data array costs, in one VM: a write, on one
// scratch disk, MB/s written with O_DIRECT through a LUKS2 device made as the data array's (AES-XTS, 4 KiB
// sectors) beside the same disk written raw, alternated, twice each; and a boot, the time the unit spent
// unlocking its data array (reading its key and opening it) beside the time from power on to the web UI
// of that boot.
func BenchmarkEncryption(b *testing.B) {
	scratch := Disk{ID: "s0", Kind: Virtio, Serial: "ENC-S0", SizeMiB: 1024, Path: filepath.Join(b.TempDir(), "s0.img")}
	if err := os.WriteFile(scratch.Path, []byte{1}, 0o600); err != nil { // holds data: the unit leaves it alone
		b.Fatal(err)
	}
	if err := os.Truncate(scratch.Path, 1<<30); err != nil {
		b.Fatal(err)
	}
	disks := keep(b, Disk{ID: "e0", Kind: Virtio, Serial: "ENC-A", SizeMiB: 1024}, Disk{ID: "e1", Kind: Virtio, Serial: "ENC-B", SizeMiB: 1024})
	u := boot(b, Config{Disks: disks})
	tok := u.setupAndLogin()
	u.waitStates(tok, "system=clean data=clean", 4*time.Minute)
	if err := u.InsertDisk(scratch); err != nil {
		b.Fatal(err)
	}
	var name string
	eventually(b, time.Minute, "the scratch disk seen", func() error {
		for _, d := range u.status(tok).Disks {
			if d.Serial == scratch.Serial {
				name = d.Name
				return nil
			}
		}
		return fmt.Errorf("no disk %s", scratch.Serial)
	})
	var raw, enc float64
	for range 2 * b.N {
		m := u.debug("rawwrite "+name+" 256", `debug: rawwrite \S+: ([0-9.]+) MB/s <nil>`, 5*time.Minute)
		v, _ := strconv.ParseFloat(m[1], 64)
		raw += v / float64(2*b.N)
		m = u.debug("cryptwrite 256 "+name, `debug: cryptwrite: ([0-9.]+) MB/s <nil>`, 5*time.Minute)
		v, _ = strconv.ParseFloat(m[1], 64)
		enc += v / float64(2*b.N)
	}
	var ui, unlock time.Duration
	for range b.N {
		u.shutdown(tok, "poweroff")
		start := time.Now()
		u = boot(b, Config{Disks: disks})
		ui += time.Since(start)
		m := regexp.MustCompile(`msg="data array unlocked" part=storage took=(\S+)`).FindStringSubmatch(u.Console())
		if m == nil {
			b.Fatalf("no unlock in the console:\n%s", tail(u.Console()))
		}
		d, err := time.ParseDuration(m[1])
		if err != nil {
			b.Fatal(err)
		}
		unlock += d
		tok = u.login()
	}
	b.ReportMetric(ui.Seconds()/float64(b.N), "s-boot-to-ui")
	b.ReportMetric(unlock.Seconds()/float64(b.N), "s-unlocking")
	b.ReportMetric(raw, "MB/s-write-plain")
	b.ReportMetric(enc, "MB/s-write-encrypted")
	b.ReportMetric(enc/raw, "ratio-write")
}

// ntHash is the NT hash SMB keeps of a password: MD4 of its UTF-16LE form.
func ntHash(password string) []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune(password)) {
		b = append(b, byte(c), byte(c>>8))
	}
	h := md4.New()
	h.Write(b)
	return h.Sum(nil)
}
