package qemutests

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// smb runs Samba's smbclient (a real SMB client, installed by `make deps`) against the unit's forwarded
// port 445, as an office PC would, and returns what it printed.
func (u *unit) smb(share, user, password string, args ...string) (string, error) {
	return smbAt(u.SMB, share, user, password, args...)
}

func smbAt(addr, share, user, password string, args ...string) (string, error) {
	host, port, _ := net.SplitHostPort(addr)
	argv := []string{"//" + host + "/" + share, "-p", port, "-m", "SMB3", "-t", "60"}
	if user == "" {
		argv = append(argv, "-N")
	} else {
		argv = append(argv, "-U", user+"%"+password)
	}
	out, err := exec.Command("smbclient", append(argv, args...)...).CombinedOutput()
	return string(out), err
}

// The office's file shares, served by the unit's kernel SMB server to a real SMB client: an account with
// write access stores a file and reads back the same bytes, a read-only account reads it and cannot write,
// a wrong password and an anonymous client are refused, SMB1 and SMB 2 are refused and SMB 3 requires
// signing, a share marked so requires encryption; the shares, accounts and files outlive a reboot.
func TestFileShares(t *testing.T) {
	parallel(t)
	if _, err := exec.LookPath("smbclient"); err != nil {
		t.Fatalf("smbclient is not installed (make deps installs it): %v", err)
	}
	disks := keep(t, Disk{ID: "a", Kind: Virtio, Serial: "FS-A", SizeMiB: 1024}, Disk{ID: "b", Kind: Virtio, Serial: "FS-B", SizeMiB: 1024})
	u := boot(t, Config{Disks: disks})
	tok := u.setupAndLogin()
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/api/v1/file-accounts/marie", `{"password":"Marie's long password"}`},
		{"PUT", "/api/v1/file-accounts/paul", `{"password":"Paul's long password"}`},
		{"PUT", "/api/v1/shares/Clients", `{"read_write":["marie"],"read_only":["paul"],"comment":"client files"}`},
		{"PUT", "/api/v1/shares/Dossiers%20sensibles", `{"read_write":["marie"],"encrypt":true}`},
	} {
		if code, body := u.call(c.method, c.path, tok, c.body); code/100 != 2 {
			t.Fatalf("%s %s = %d %s", c.method, c.path, code, body)
		}
	}
	if code, body := u.call("PUT", "/api/v1/shares/bad%5Dname", tok, `{"read_write":["marie"]}`); code != 400 {
		t.Errorf("a share name with ']' = %d %s, want 400", code, body)
	}
	waitServing := func() {
		eventually(t, 3*time.Minute, "file shares serving", func() error {
			if code, body := u.call("GET", "/api/v1/shares", tok, ""); code != 200 || !strings.Contains(body, `"state":"serving"`) {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
	}
	waitServing()
	// The shares are on the documents volume, a DRBD device: primary on this unit alone, its copy complete,
	// mounted where the shares' folders are.
	if code, body := u.call("GET", "/api/v1/shares", tok, ""); code != 200 ||
		!strings.Contains(body, `"replication":{"state":"running","paired":false,"role":"Primary","disk":"UpToDate"`) || !strings.Contains(body, `"mounted":true`) {
		t.Errorf("the documents volume: %d %s", code, body)
	}
	volumeReports(t, u)

	dir := t.TempDir()
	doc := make([]byte, 3<<20+12345)
	rand.Read(doc)
	want := sha256.Sum256(doc)
	local := filepath.Join(dir, "contract.pdf")
	if err := os.WriteFile(local, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	var out string
	var err error
	// The server may still be starting its listener right after it says it serves.
	eventually(t, time.Minute, "marie stores a file", func() error {
		out, err = u.smb("Clients", "marie", "Marie's long password", "-c", "put "+local+" contract.pdf")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	get := func(user, password string) [32]byte {
		t.Helper()
		back := filepath.Join(dir, "back-"+user)
		os.Remove(back)
		if out, err := u.smb("Clients", user, password, "-c", "get contract.pdf "+back); err != nil {
			t.Fatalf("%s reads the file: %v %s", user, err, out)
		}
		b, err := os.ReadFile(back)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(b)
	}
	if got := get("marie", "Marie's long password"); got != want {
		t.Errorf("marie read back other bytes than she wrote")
	}
	if got := get("paul", "Paul's long password"); got != want {
		t.Errorf("paul read other bytes than marie wrote")
	}
	refusedClients(t, u, local)
	encryptedOnTheWire(t, u, dir)

	grown := documentsGrowOnline(t, u, tok)

	// The shares, the accounts and the file outlive a reboot.
	u.shutdown(tok, "reboot")
	u = boot(t, Config{Disks: disks})
	tok = u.login()
	waitServing()
	eventually(t, time.Minute, "the file after the reboot", func() error {
		if out, err := u.smb("Clients", "marie", "Marie's long password", "-c", "ls"); err != nil || !strings.Contains(out, "contract.pdf") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if got := get("marie", "Marie's long password"); got != want {
		t.Errorf("after the reboot the file has other bytes")
	}
	if after := documentsSize(t, u, tok); after != grown {
		t.Errorf("the documents' filesystem: %d bytes after the reboot, %d before", after, grown)
	}
}

// documentsSize is the size of the documents' filesystem the unit reports (it serves them).
func documentsSize(t testing.TB, u *unit, tok string) int64 {
	t.Helper()
	var size int64
	eventually(t, time.Minute, "the documents' filesystem in the storage status", func() error {
		for _, sp := range u.storage(tok).Space {
			if sp.Name == "documents" {
				size = sp.SizeBytes
				return nil
			}
		}
		return errors.New("not listed")
	})
	return size
}

// recordingProxy forwards TCP connections to target and records every byte both ways.
func recordingProxy(t *testing.T, target string) (string, func() []byte) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var seen bytes.Buffer
	rec := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return seen.Write(p) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer s.Close()
				go io.Copy(io.MultiWriter(s, rec), c)
				io.Copy(io.MultiWriter(c, rec), s)
			}()
		}
	}()
	return ln.Addr().String(), func() []byte { mu.Lock(); defer mu.Unlock(); return bytes.Clone(seen.Bytes()) }
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// negotiate sends an SMB2 NEGOTIATE offering dialects 2.0.2 to 3.0.2 and answers the server's choice and
// its security mode (0x01 signing enabled, 0x02 signing required), as [MS-SMB2] 2.2.3 and 2.2.4 lay them out.
func negotiate(addr string) (dialect, security uint16, err error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var msg bytes.Buffer
	hdr := make([]byte, 64)
	copy(hdr, "\xfeSMB")
	binary.LittleEndian.PutUint16(hdr[4:], 64) // StructureSize
	binary.LittleEndian.PutUint16(hdr[14:], 1) // CreditRequest; Command 0 = NEGOTIATE
	msg.Write(hdr)
	dialects := []uint16{0x0202, 0x0210, 0x0300, 0x0302}
	req := make([]byte, 36)
	binary.LittleEndian.PutUint16(req[0:], 36)
	binary.LittleEndian.PutUint16(req[2:], uint16(len(dialects)))
	binary.LittleEndian.PutUint16(req[4:], 0x01) // SecurityMode: signing enabled (not required) on the client
	rand.Read(req[12:28])                        // ClientGuid
	msg.Write(req)
	for _, d := range dialects {
		binary.Write(&msg, binary.LittleEndian, d)
	}
	frame := make([]byte, 4, 4+msg.Len())
	binary.BigEndian.PutUint32(frame, uint32(msg.Len())) // NetBIOS session message: type 0, 24-bit length
	if _, err := c.Write(append(frame, msg.Bytes()...)); err != nil {
		return 0, 0, err
	}
	if _, err := io.ReadFull(c, frame[:4]); err != nil {
		return 0, 0, err
	}
	resp := make([]byte, binary.BigEndian.Uint32(frame[:4])&0xffffff)
	if _, err := io.ReadFull(c, resp); err != nil {
		return 0, 0, err
	}
	if len(resp) < 64+8 || string(resp[:4]) != "\xfeSMB" {
		return 0, 0, fmt.Errorf("not an SMB2 answer: % x", resp[:min(len(resp), 16)])
	}
	if status := binary.LittleEndian.Uint32(resp[8:]); status != 0 {
		return 0, 0, fmt.Errorf("NEGOTIATE answered status %#08x", status)
	}
	body := resp[64:]
	return binary.LittleEndian.Uint16(body[4:]), binary.LittleEndian.Uint16(body[2:]), nil
}

// BenchmarkFileShares: what an office PC writes and reads through a share (Samba's smbclient over the
// forwarded port 445, SMB 3 signed), beside the same number of bytes written on the data filesystem by
// the unit itself, in the same VM.
func BenchmarkFileShares(b *testing.B) {
	const mib = 64
	u := boot(b, Config{Disks: []Disk{{ID: "a", Kind: Virtio, Serial: "FB-A", SizeMiB: 2048}, {ID: "b", Kind: Virtio, Serial: "FB-B", SizeMiB: 2048}}})
	tok := u.setupAndLogin()
	for _, c := range []struct{ path, body string }{
		{"/api/v1/file-accounts/bench", `{"password":"a long password"}`},
		{"/api/v1/shares/Bench", `{"read_write":["bench"]}`},
	} {
		if code, body := u.call("PUT", c.path, tok, c.body); code/100 != 2 {
			b.Fatalf("%s = %d %s", c.path, code, body)
		}
	}
	local := filepath.Join(b.TempDir(), "doc")
	doc := make([]byte, mib<<20)
	rand.Read(doc)
	if err := os.WriteFile(local, doc, 0o600); err != nil {
		b.Fatal(err)
	}
	eventually(b, 3*time.Minute, "the share answers", func() error {
		out, err := u.smb("Bench", "bench", "a long password", "-c", "ls")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	var put, get, fill time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if out, err := u.smb("Bench", "bench", "a long password", "-c", fmt.Sprintf("put %s doc%d", local, i)); err != nil {
			b.Fatalf("put: %v %s", err, out)
		}
		put += time.Since(t0)
		t0 = time.Now()
		if out, err := u.smb("Bench", "bench", "a long password", "-c", fmt.Sprintf("get doc%d %s.back", i, local)); err != nil {
			b.Fatalf("get: %v %s", err, out)
		}
		get += time.Since(t0)
		t0 = time.Now()
		u.fill(fmt.Sprintf("bench-fill-%d", i), mib, i+1)
		fill += time.Since(t0)
	}
	mbs := func(d time.Duration) float64 { return float64(b.N) * mib * (1 << 20) / 1e6 / d.Seconds() }
	b.ReportMetric(mbs(put), "MB/s-smb-write")
	b.ReportMetric(mbs(get), "MB/s-smb-read")
	b.ReportMetric(mbs(fill), "MB/s-local-write")
	b.ReportMetric(mbs(put)/mbs(fill), "ratio-smb-write-vs-local")
}

// BenchmarkReplicatedShares: an office PC writes through the service address (the PC relays SMB to it)
// while the documents are replicated to the partner (every write on both units' disks before it is
// answered), beside the same write once the partner is gone (on the active unit's disks only); then the
// failover: kill -9 of the active unit to the client's first document stored on the other.
func BenchmarkReplicatedShares(b *testing.B) {
	const mib = 32
	l := newPairLab(b, 1500)
	for _, c := range []struct{ path, body string }{
		{"/api/v1/file-accounts/marie", `{"password":"Marie's long password"}`},
		{"/api/v1/shares/Clients", `{"read_write":["marie"]}`},
	} {
		if code, body := l.a.call("PUT", c.path, l.a.tok, c.body); code/100 != 2 {
			b.Fatalf("%s = %d %s", c.path, code, body)
		}
	}
	dir := b.TempDir()
	local := filepath.Join(dir, "doc")
	doc := make([]byte, mib<<20)
	rand.Read(doc)
	if err := os.WriteFile(local, doc, 0o600); err != nil {
		b.Fatal(err)
	}
	l.pc.console("relay 445 192.0.2.100:445", regexp.MustCompile(`debug: relay 445 \S+: <nil>`))
	eventually(b, 5*time.Minute, "the documents in sync on both units", documentsInSync(l.a))
	write := func(name string) float64 {
		t0 := time.Now()
		if out, err := smbAt(l.pc.SMB, "Clients", "marie", "Marie's long password", "-c", "put "+local+" "+name); err != nil {
			b.Fatalf("put %s: %v %s", name, err, out)
		}
		return mib * (1 << 20) / 1e6 / time.Since(t0).Seconds()
	}
	var connected, alone float64
	for i := 0; i < b.N; i++ {
		connected += write(fmt.Sprintf("connected%d", i)) / float64(b.N)
	}
	if err := l.b.Kill9(); err != nil {
		b.Fatal(err)
	}
	eventually(b, time.Minute, "A's documents without their partner", func() error {
		if documentsInSync(l.a)() == nil {
			return errors.New("still connected")
		}
		return nil
	})
	for i := 0; i < b.N; i++ {
		alone += write(fmt.Sprintf("alone%d", i)) / float64(b.N)
	}
	b.Logf("SMB write through the service address: %.1f MB/s replicated (protocol C) beside %.1f MB/s with the partner gone (%.2fx)", connected, alone, connected/alone)
	b.ReportMetric(connected, "MB/s-write-replicated")
	b.ReportMetric(alone, "MB/s-write-partner-gone")
	b.ReportMetric(connected/alone, "ratio")

	l.b = l.restart(b, l.b, "unit-b", l.bDisk)
	eventually(b, 10*time.Minute, "B's copy complete again", documentsInSync(l.a))
	l.b.waitDB(b, "B mirrors A", 5*time.Minute, mirrorsPartner) // a unit whose database is no copy never takes over
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, doc[:64<<10], 0o600); err != nil {
		b.Fatal(err)
	}
	if err := l.a.Kill9(); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	eventually(b, 3*time.Minute, "a document stored on B through the service address", func() error {
		if out, err := smbAt(l.pc.SMB, "Clients", "marie", "Marie's long password", "-t", "5", "-c", "put "+small+" after-kill"); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	took := time.Since(t0)
	b.Logf("failover: kill -9 of the active unit to the client's first document stored on the other: %v", took.Round(10*time.Millisecond))
	b.ReportMetric(took.Seconds(), "s/failover-first-write")
}

// documentsGrowOnline: the documents grow online from the data array's free space; too much is refused with the
// reason.
func documentsGrowOnline(t *testing.T, u *unit, tok string) (grown int64) {
	before := documentsSize(t, u, tok)
	if code, body := u.call("POST", "/api/v1/shares/grow", tok, `{"add_bytes":0}`); code != 400 {
		t.Errorf("grow by 0 = %d %s, want 400", code, body)
	}
	if code, body := u.call("POST", "/api/v1/shares/grow", tok, `{"add_bytes":100000000000}`); code != 409 || !strings.Contains(body, "at most") {
		t.Errorf("grow by 100 GB = %d %s, want 409 saying how much it can", code, body)
	}
	if code, body := u.call("POST", "/api/v1/shares/grow", tok, fmt.Sprintf(`{"add_bytes":%d}`, 16<<20)); code != 204 {
		t.Fatalf("grow the documents by 16 MiB = %d %s", code, body)
	}
	grown = documentsSize(t, u, tok)
	if grown < before+14<<20 {
		t.Errorf("the documents' filesystem: %d bytes before growing by 16 MiB, %d after", before, grown)
	}
	t.Logf("the documents' filesystem grew online from %d to %d bytes", before, grown)
	return grown
}

// encryptedOnTheWire: a document written to an ordinary share passes in clear (signed, not encrypted), one
// written to the share that requires encryption never does (Samba's client encrypts when the share says so;
// the server refuses unencrypted requests to it); the server negotiates SMB 3 with signing required.
func encryptedOnTheWire(t *testing.T, u *unit, dir string) {
	marker := []byte("PRIVILEGED AND CONFIDENTIAL: Dupont v. Durand, settlement terms " + strings.Repeat("x", 200))
	secret := filepath.Join(dir, "memo.txt")
	if err := os.WriteFile(secret, marker, 0o600); err != nil {
		t.Fatal(err)
	}
	for share, clear := range map[string]bool{"Clients": true, "Dossiers sensibles": false} {
		addr, wire := recordingProxy(t, u.SMB)
		if out, err := smbAt(addr, share, "marie", "Marie's long password", "-c", "put "+secret+" memo.txt"); err != nil {
			t.Fatalf("put to %s: %v %s", share, err, out)
		}
		if got := bytes.Contains(wire(), marker); got != clear {
			t.Errorf("share %q: the document in clear on the wire = %v, want %v", share, got, clear)
		}
	}
	dialect, security, err := negotiate(u.SMB)
	if err != nil {
		t.Fatalf("SMB2 negotiate: %v", err)
	}
	if dialect < 0x0300 || security&0x02 == 0 {
		t.Errorf("negotiated dialect %#04x, security mode %#x: want SMB 3 with signing required (0x02)", dialect, security)
	}
	t.Logf("negotiated SMB dialect %#04x, security mode %#x (signing required)", dialect, security)
}

// refusedClients: a read-only account cannot write, a wrong password and an anonymous client are refused, and
// so are clients limited to SMB 1 or SMB 2.1.
func refusedClients(t *testing.T, u *unit, local string) {
	if out, err := u.smb("Clients", "paul", "Paul's long password", "-c", "put "+local+" paul.pdf"); err == nil || !strings.Contains(out, "NT_STATUS_ACCESS_DENIED") {
		t.Errorf("a read-only account wrote a file: %v %s", err, out)
	}
	if out, err := u.smb("Clients", "marie", "a wrong password!", "-c", "ls"); err == nil || !strings.Contains(out, "NT_STATUS_LOGON_FAILURE") {
		t.Errorf("a wrong password: %v %s", err, out)
	}
	if out, err := u.smb("Clients", "", "", "-c", "ls"); err == nil || strings.Contains(out, "contract.pdf") {
		t.Errorf("an anonymous client listed the share: %v %s", err, out)
	}
	for _, proto := range []string{"NT1", "SMB2_10"} {
		host, port, _ := net.SplitHostPort(u.SMB)
		out, err := exec.Command("smbclient", "//"+host+"/Clients", "-p", port, "-U", "marie%Marie's long password", "-t", "30",
			"--option=client min protocol="+proto, "--option=client max protocol="+proto, "-c", "ls").CombinedOutput()
		if err == nil || strings.Contains(string(out), "contract.pdf") {
			t.Errorf("a client limited to %s was served: %s", proto, out)
		}
	}
}

// volumeReports logs lvm's and DRBD's reports (kept in hw/lvm/testdata and hw/drbd/testdata) and checks them.
// Two lines, each matched alone: the daemon's log may come between them on the console.
func volumeReports(t *testing.T, u *unit) {
	vgs := u.debug("volumes", `debug: vgs (\{.*\}) <nil>`, 30*time.Second)
	lvs, lvsErr := u.Expect(regexp.MustCompile(`debug: lvs (\{.*\}) <nil>`), 30*time.Second)
	if lvsErr != nil || !strings.Contains(lvs[1], `"lv_name":"documents"`) {
		t.Errorf("lvm's report: %q %v", lvs, lvsErr)
	} else {
		t.Logf("lvm's reports (hw/lvm/testdata):\n%s\n%s", vgs[1], lvs[1])
	}
	// The peer's disk Outdated: made primary without a partner, the fence-peer helper answered that there
	// is none (unpaired), which DRBD records so.
	if m := u.debug("drbd", `(?s)debug: drbd\r?\n(.*?)\r?\ndebug: end`, 30*time.Second); len(m) < 2 || !strings.Contains(m[1], "cs:StandAlone ro:Primary/Unknown ds:UpToDate/Outdated") {
		t.Errorf("/proc/drbd: %q", m)
	} else {
		t.Logf("/proc/drbd (hw/drbd/testdata):\n%s", m[1])
	}
}
