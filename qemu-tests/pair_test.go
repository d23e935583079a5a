package qemutests

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance/pair/wire"
)

// Two units and an office PC (witness and client) on one virtual LAN, the units also joined by a direct
// cable. A role checker polls both units throughout and fails on two active units.
func TestPairFailover(t *testing.T) {
	alone(t)
	// A longer timeout than the default (400 ms): other QEMU tests share the CPUs, and under TCG a unit taking
	// over (its database promoted, its documents volume checked and mounted, Samba started) can be slow to
	// renew its lease; and the documents' replication is encrypted by the emulated CPUs (the pair link),
	// which left the witness on the office PC's VM answering late enough to fence the active unit.
	l := newPairLab(t, 2500)
	chk := startChecker(t, l.a, l.b)
	defer chk.finish()
	l.pc.console("probe 192.0.2.100:443", regexp.MustCompile(`debug: probing`))
	l.expectAnswer(t, l.a, time.Minute)

	l.forgeriesRefused(t)

	// The documents cross the LAN and the cable only inside the pair's encrypted link.
	eventually(t, 3*time.Minute, "B's documents copy complete", documentsInSync(l.b))
	l.documentsStayEncryptedOnTheWire(t, l.a, l.b)

	docsGrown := l.documentsGrow(t)
	l.cableCutAndPulled(t)
	l.switchOverAndBack(t, docsGrown)
	l.sharesFollowThePair(t)

	// The office PC copies documents to the share through the service address once B's copy is complete;
	// A is killed in the middle of the copy. Every document whose copy the client was told is done (its
	// close answered) is on both units' disks (DRBD protocol C, Samba syncing every write).
	docs := t.TempDir()
	eventually(t, 3*time.Minute, "B's documents copy complete", documentsInSync(l.a))
	l.pc.console("relay 445 192.0.2.100:445", regexp.MustCompile(`debug: relay 445 \S+: <nil>`))
	copying := startCopy(t, l.pc.SMB, docs, "copy", 24)
	copying.waitFor(t, 4)

	// kill -9 of the active unit: the PC reaches B on the service address.
	took := l.killAndMeasure(t, l.a, l.b)
	t.Logf("failover: the client got its first answer from unit-b %v after kill -9 of unit-a", took)
	if st := l.b.mustPair(); st.Role != "active" || !st.VIPHeld {
		t.Fatalf("B after failover: %+v", st)
	}
	acked := copying.end(t)
	eventually(t, 2*time.Minute, "B serves, through the service address, every document whose copy was acknowledged", func() error {
		for name, sum := range acked {
			if err := documentIs(l.pc.SMB, docs, name, sum); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("copy killed: %d of 24 documents acknowledged before the kill, each read back from B with its SHA-256", len(acked))

	// A comes back: standby, and it stays so.
	l.a = l.restart(t, l.a, "unit-a", l.aDisk)
	chk.set(0, l.a)
	l.a.waitPeer(t, "A back and paired")
	time.Sleep(5 * time.Second)
	waitRoles(t, "after A returned", time.Second, l.a, l.b, "standby", "active")

	// The active unit (B) is cut off from A and the witness: B fences itself, A takes over. A must hold a
	// complete copy of B's database first: a unit in the middle of its rejoin (pg_rewind) never asks.
	l.a.waitDB(t, "A mirrors B", 5*time.Minute, mirrorsPartner)
	// A resynchronised only what B wrote while it was away; a document stored on B is on A when it takes over.
	eventually(t, 3*time.Minute, "A's documents copy complete again", documentsInSync(l.b))
	storedOnB := putDocument(t, l.b.SMB, docs, "on-b.pdf")
	// A client on B's side of the partition (the host, through B's own port) is copying documents when B is
	// cut off: B stops serving, and no document it acknowledged is lost when A takes over.
	isolated := startCopy(t, l.b.SMB, docs, "isolated", 60)
	isolated.waitFor(t, 2)
	l.lan.SetCut(l.b.HubPorts[0], true)
	l.cable.SetCut(l.b.HubPorts[1], true)
	waitRoles(t, "B isolated", 30*time.Second, l.a, l.b, "active", "fenced")
	ackedOnB := isolated.end(t)
	eventually(t, time.Minute, "A serves the documents stored on B", func() error {
		if err := documentIs(l.a.SMB, docs, "on-b.pdf", storedOnB); err != nil {
			return err
		}
		for name, sum := range ackedOnB {
			if err := documentIs(l.a.SMB, docs, name, sum); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("B cut off during a copy: %d documents acknowledged by B, each on A", len(ackedOnB))
	l.lan.SetCut(l.b.HubPorts[0], false)
	l.cable.SetCut(l.b.HubPorts[1], false)
	waitRoles(t, "B back on the network", 30*time.Second, l.a, l.b, "active", "standby")

	l.nobodyActiveWithoutWitness(t)
}

// Manual mode (no witness): nothing changes role by itself. A switchover needs the active unit to stand
// down first; when the active unit dies, the standby waits for an admin, who must confirm (the other unit
// might still be serving); the dead unit comes back as standby. The role checker runs throughout.
//
// The encryption at rest follows the pair: once B's recovery sheet is made, the key of B's data array is
// kept only by its partner (no longer on B's disks). B restarted alone (its LAN and cable cut) stays
// locked and says why; reconnected, it unlocks by itself with A's secret and mirrors A again.
func TestPairManualMode(t *testing.T) {
	alone(t)
	l := newLab(t, labConfig{timeoutMS: 800, manual: true})
	chk := startChecker(t, l.a, l.b)
	defer chk.finish()
	if code, body := l.b.call("POST", "/api/v1/storage/recovery-key", l.b.tok, ""); code != 201 {
		t.Fatalf("B's recovery sheet = %d %s", code, body)
	}
	eventually(t, time.Minute, "B's key kept by its partner only", func() error {
		if e := l.b.storage(l.b.tok).Encryption; e.State != "open" || strings.Join(e.KeyHolders, ",") != "partner" || e.KeyOnDisks {
			return fmt.Errorf("B's encryption %+v", e)
		}
		return nil
	})
	role := func(u *pairUnit, body string, want int) {
		t.Helper()
		if code, got := u.call("POST", "/api/v1/pair/role", u.tok, body); code != want {
			t.Fatalf("%s on %s = %d %s, want %d", body, u.Name(), code, got, want)
		}
	}
	// Standing down waits (409) until the other unit could take over at once: its database streaming and
	// caught up (B has just copied A's).
	standDown := func(u *pairUnit) {
		t.Helper()
		eventually(t, 2*time.Minute, u.Name()+" stands down", func() error {
			code, got := u.call("POST", "/api/v1/pair/role", u.tok, `{"role":"standby"}`)
			if code != 202 && code != 409 {
				t.Fatalf("stand down on %s = %d %s", u.Name(), code, got)
			}
			if code != 202 {
				return fmt.Errorf("%d %s", code, got)
			}
			return nil
		})
	}
	role(l.b, `{"role":"active"}`, 409) // A is active
	standDown(l.a)
	waitRoles(t, "A stood down", 10*time.Second, l.a, l.b, "standby", "standby")
	// Two admins press "make active" on both units at once: one unit becomes active, the other is told no
	// (the role checker fails the test if both ever answer as active).
	codes := make(chan int, 2)
	for _, u := range []*pairUnit{l.a, l.b} {
		go func() {
			code, _ := u.call("POST", "/api/v1/pair/role", u.tok, `{"role":"active"}`)
			codes <- code
		}()
	}
	if c1, c2 := <-codes, <-codes; c1+c2 != 202+409 {
		t.Fatalf("make active on both units at once = %d and %d, want 202 and 409", c1, c2)
	}
	if l.a.mustPair().Role == "active" {
		standDown(l.a)
		waitRoles(t, "A stood down again", 10*time.Second, l.a, l.b, "standby", "standby")
		role(l.b, `{"role":"active"}`, 202)
	}
	waitRoles(t, "switchover to B", 10*time.Second, l.a, l.b, "standby", "active")
	eventually(t, 10*time.Second, "B holds the service address", func() error {
		if st := l.b.mustPair(); !st.VIPHeld {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	l.a.waitDB(t, "A mirrors B", 5*time.Minute, mirrorsPartner)

	// B dies: A stays standby until an admin confirms.
	if err := l.b.Kill9(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "A sees B gone", func() error {
		if st := l.a.mustPair(); st.Peer == nil || st.Peer.Reachable {
			return fmt.Errorf("peer %+v", st.Peer)
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	if st := l.a.mustPair(); st.Role != "standby" || st.VIPHeld {
		t.Fatalf("A took over by itself in manual mode: %+v", st)
	}
	role(l.a, `{"role":"active"}`, 409) // unconfirmed
	role(l.a, `{"role":"active","force":true}`, 202)
	eventually(t, 10*time.Second, "A active with the service address", func() error {
		if st := l.a.mustPair(); st.Role != "active" || !st.VIPHeld {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	l.a.waitDB(t, "A's database serves", 2*time.Minute, func(s dbStatus) bool { return s.Role == "production" && s.State == "running" })

	l.returnsLockedWhileAlone(t, chk)
}

// documentsInSync waits for u's documents volume to be connected to the partner's with both copies complete.
func documentsInSync(u *pairUnit) func() error {
	return func() error {
		_, body := u.call("GET", "/api/v1/shares", u.tok, "")
		for _, want := range []string{`"connection":"Connected"`, `"disk":"UpToDate"`, `"peer_disk":"UpToDate"`} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("no %s: %s", want, body)
			}
		}
		return nil
	}
}

// putDocument stores 1 MiB of random bytes as name in the share Clients through addr, as marie, and returns
// their SHA-256.
func putDocument(t *testing.T, addr, dir, name string) [32]byte {
	t.Helper()
	doc := make([]byte, 1<<20)
	rand.Read(doc)
	local := filepath.Join(dir, name)
	if err := os.WriteFile(local, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := smbAt(addr, "Clients", "marie", "Marie's long password", "-c", "put "+local+" "+name); err != nil {
		t.Fatalf("store %s through %s: %v %s", name, addr, err, out)
	}
	return sha256.Sum256(doc)
}

// documentIs reads name from the share Clients through addr and compares its SHA-256 with want.
func documentIs(addr, dir, name string, want [32]byte) error {
	back := filepath.Join(dir, "back-"+name)
	os.Remove(back)
	if out, err := smbAt(addr, "Clients", "marie", "Marie's long password", "-c", "get "+name+" "+back); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	b, err := os.ReadFile(back)
	if err != nil {
		return err
	}
	if sha256.Sum256(b) != want {
		return fmt.Errorf("%s read through %s: %d bytes, not the bytes stored", name, addr, len(b))
	}
	return nil
}

// docCopy is smbclient copying documents to the share Clients, one after another in one session.
type docCopy struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	sums  map[string][32]byte // every document's SHA-256
	done  []string            // the documents whose close the server answered, in order
	out   strings.Builder
	ended chan error
}

// startCopy starts copying n documents of 256 KiB of random bytes through addr, as marie, named prefix00.pdf,
// prefix01.pdf, ...
func startCopy(t *testing.T, addr, dir, prefix string, n int) *docCopy {
	t.Helper()
	c := &docCopy{sums: map[string][32]byte{}, ended: make(chan error, 1)}
	var puts []string
	for i := range n {
		name := fmt.Sprintf("%s%02d.pdf", prefix, i)
		doc := make([]byte, 256<<10)
		rand.Read(doc)
		if err := os.WriteFile(filepath.Join(dir, name), doc, 0o600); err != nil {
			t.Fatal(err)
		}
		c.sums[name] = sha256.Sum256(doc)
		puts = append(puts, "put "+filepath.Join(dir, name)+" "+name)
	}
	host, port, _ := net.SplitHostPort(addr)
	c.cmd = exec.Command("smbclient", "//"+host+"/Clients", "-p", port, "-m", "SMB3", "-t", "60", "-U", "marie%Marie's long password",
		"-c", strings.Join(puts, "; "))
	r, w := io.Pipe()
	c.cmd.Stdout, c.cmd.Stderr = w, w
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.ended <- c.cmd.Wait(); w.Close() }()
	putting := regexp.MustCompile(`putting file \S+ as \\(` + prefix + `\d\d\.pdf)`) // printed once the close is answered
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			c.mu.Lock()
			c.out.WriteString(sc.Text() + "\n")
			if m := putting.FindStringSubmatch(sc.Text()); m != nil {
				c.done = append(c.done, m[1])
			}
			c.mu.Unlock()
		}
	}()
	return c
}

// waitFor waits until n documents are stored.
func (c *docCopy) waitFor(t *testing.T, n int) {
	t.Helper()
	eventually(t, 3*time.Minute, fmt.Sprintf("%d documents copied", n), func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.done) < n {
			return fmt.Errorf("%d copied: %s", len(c.done), c.out.String())
		}
		return nil
	})
}

// end waits for the copy to stop (the server it was talking to died) and answers the SHA-256 of each
// document whose copy the client was told is done.
func (c *docCopy) end(t *testing.T) map[string][32]byte {
	t.Helper()
	select {
	case <-c.ended:
	case <-time.After(3 * time.Minute):
		c.cmd.Process.Kill()
		<-c.ended
	}
	time.Sleep(100 * time.Millisecond) // the last lines read
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.done) == len(c.sums) {
		t.Fatalf("the copy ended before the kill (it should be under way):\n%s", c.out.String())
	}
	acked := map[string][32]byte{}
	for _, name := range c.done {
		acked[name] = c.sums[name]
	}
	return acked
}

// sharesFollowThePair: the file shares follow the pair: made on the active unit (A), handed to B, which refuses
// changes of its own while it is the standby; A serves them, B does not (after a failover, B serves them to
// the same accounts).
func (l *pairLab) sharesFollowThePair(t *testing.T) {
	for _, c := range []struct{ path, body string }{
		{"/api/v1/file-accounts/marie", `{"password":"Marie's long password"}`},
		{"/api/v1/shares/Clients", `{"read_write":["marie"]}`},
	} {
		if code, body := l.a.call("PUT", c.path, l.a.tok, c.body); code/100 != 2 {
			t.Fatalf("%s on A = %d %s", c.path, code, body)
		}
	}
	eventually(t, time.Minute, "B has A's shares", func() error {
		if code, body := l.b.call("GET", "/api/v1/shares", l.b.tok, ""); code != 200 || !strings.Contains(body, `"name":"Clients"`) ||
			!strings.Contains(body, `"accounts":[{"name":"marie"}]`) || !strings.Contains(body, `"changeable":false`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	if code, body := l.b.call("PUT", "/api/v1/shares/Other", l.b.tok, `{"read_only":["marie"]}`); code != 409 {
		t.Errorf("a share made on the standby = %d %s, want 409", code, body)
	}
	eventually(t, time.Minute, "A serves the share", func() error {
		if out, err := smbAt(l.a.SMB, "Clients", "marie", "Marie's long password", "-c", "ls"); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if out, err := smbAt(l.b.SMB, "Clients", "marie", "Marie's long password", "-c", "ls"); err == nil {
		t.Errorf("the standby serves the shares: %s", out)
	}
}

// switchOverAndBack: a switchover from the standby's page, and back from the active one. The cable tests may
// have broken the documents' replication (it runs on the cable): B's copy counts as behind, and a switchover
// to it is refused, until it is connected and complete again. B's own page, not A's: B judges its copy on its
// own passes, and its page shows it in sync once it does.
func (l *pairLab) switchOverAndBack(t *testing.T, docsGrown int64) {
	eventually(t, 3*time.Minute, "B's documents copy complete after the cable tests", documentsInSync(l.b))
	if code, body := l.b.call("POST", "/api/v1/pair/role", l.b.tok, `{"role":"active"}`); code != 202 {
		t.Fatalf("switchover to B = %d %s", code, body)
	}
	waitRoles(t, "after switchover to B", 30*time.Second, l.a, l.b, "standby", "active")
	if got := documentsSize(t, l.b.unit, l.b.tok); got != docsGrown {
		t.Errorf("the documents' filesystem on B after the switchover: %d bytes, %d on A before", got, docsGrown)
	}
	// The new active unit takes the address once its database takes writes, at most a minute after it became
	// active (pair.readyWait): the answer may take that long.
	l.expectAnswer(t, l.b, 90*time.Second)
	// B serves the documents from its own volume before it hands everything back.
	eventually(t, time.Minute, "B holds its documents volume", func() error {
		_, body := l.b.call("GET", "/api/v1/shares", l.b.tok, "")
		if !strings.Contains(body, `"role":"Primary"`) || !strings.Contains(body, `"mounted":true`) {
			return fmt.Errorf("B: %s", body)
		}
		return nil
	})
	// B hands back once A can take over at once (its database mirrors B's again): until then the hand-over
	// is refused (409) rather than leaving nobody serving.
	eventually(t, 3*time.Minute, "B hands the service back", func() error {
		if st := l.b.mustPair(); st.Role != "active" { // a moment fenced under the suite's load: it comes back
			return fmt.Errorf("B is %s", st.Role)
		}
		if code, body := l.b.call("POST", "/api/v1/pair/role", l.b.tok, `{"role":"standby"}`); code != 202 {
			if code != 409 {
				t.Fatalf("switchover back = %d %s", code, body)
			}
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	waitRoles(t, "after switchover back to A", 30*time.Second, l.a, l.b, "active", "standby")
	l.expectAnswer(t, l.a, 90*time.Second)
}

// cableCutAndPulled: only the direct cable is cut: heartbeats go on over the LAN, nobody changes role. Then
// the cable is pulled out of A's port.
func (l *pairLab) cableCutAndPulled(t *testing.T) {
	l.cable.SetCut(l.a.HubPorts[1], true)
	time.Sleep(5 * time.Second)
	waitRoles(t, "roles with the cable cut", time.Second, l.a, l.b, "active", "standby")
	eventually(t, 10*time.Second, "cable path reported missing", func() error {
		for _, p := range l.b.mustPair().Peer.Paths {
			if p.Address == "198.51.100.1" && !p.Reachable {
				return nil
			}
		}
		return fmt.Errorf("%+v", l.b.mustPair().Peer)
	})
	// A document stored on A while the cable (the documents' replication path) is cut: DRBD gives the
	// partner up and A stores it alone. B's copy may now lack it: B refuses to take over (409) until its copy
	// is connected and complete again (checked before the switchover below).
	l.a.fill("documents/during-the-cut.pdf", 1, 3)
	eventually(t, 30*time.Second, "B sees its documents' replication down", func() error {
		if err := documentsInSync(l.b)(); err == nil {
			return errors.New("still connected")
		}
		return nil
	})
	time.Sleep(3 * time.Second) // a pass of B's documents volume
	if code, body := l.b.call("POST", "/api/v1/pair/role", l.b.tok, `{"role":"active"}`); code != 409 || !strings.Contains(body, "not complete") {
		t.Fatalf("B asked to take over with a copy that lacks a document stored on A = %d %s, want 409", code, body)
	}
	l.cable.SetCut(l.a.HubPorts[1], false)

	// The cable pulled out of A's port (the NIC loses its carrier): A says so at once and warns; no role
	// changes; plugged back in, the warning ends.
	linkOf := func(u *pairUnit, mac string) (carrier, alerted bool) {
		carrier, _ = u.carrier(mac)
		_, alerts := u.call("GET", "/api/v1/alerts", u.tok, "")
		return carrier, strings.Contains(alerts, "network port ") && strings.Contains(alerts, "("+mac+") lost its link")
	}
	if err := l.a.SetLink("lan1", false); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "A reports its cable port without link, and warns", func() error {
		if carrier, alerted := linkOf(l.a, l.a.MACs[1]); carrier || !alerted {
			return fmt.Errorf("carrier %v, alert %v", carrier, alerted)
		}
		return nil
	})
	waitRoles(t, "roles with the cable pulled", time.Second, l.a, l.b, "active", "standby")
	if err := l.a.SetLink("lan1", true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "A's cable port has its link back, no warning", func() error {
		if carrier, alerted := linkOf(l.a, l.a.MACs[1]); !carrier || alerted {
			return fmt.Errorf("carrier %v, alert %v", carrier, alerted)
		}
		return nil
	})
}

// documentsGrow: the documents grow on both units, asked on the active one (the standby refuses): B's volume
// first, then A's, then DRBD and the filesystem, online; B's copy stays complete.
func (l *pairLab) documentsGrow(t *testing.T) (docsGrown int64) {
	docsBefore := documentsSize(t, l.a.unit, l.a.tok)
	if code, body := l.b.call("POST", "/api/v1/shares/grow", l.b.tok, fmt.Sprintf(`{"add_bytes":%d}`, 32<<20)); code != 409 {
		t.Errorf("grow the documents on the standby = %d %s, want 409", code, body)
	}
	if code, body := l.a.call("POST", "/api/v1/shares/grow", l.a.tok, fmt.Sprintf(`{"add_bytes":%d}`, 32<<20)); code != 204 {
		t.Fatalf("grow the documents on A = %d %s", code, body)
	}
	docsGrown = documentsSize(t, l.a.unit, l.a.tok)
	if docsGrown < docsBefore+30<<20 {
		t.Errorf("the documents' filesystem on A: %d bytes before growing by 32 MiB, %d after", docsBefore, docsGrown)
	}
	eventually(t, 3*time.Minute, "B's documents copy complete after growing", documentsInSync(l.b))
	return docsGrown
}

// forgeriesRefused: a forged heartbeat and a replayed one, injected into B's LAN port, are dropped; whoever
// holds the witness key (the office PC) forges a grant in A's name with the highest number: B refuses it, and
// A's heartbeats still count (it once silenced them for good).
func (l *pairLab) forgeriesRefused(t *testing.T) {
	var mu sync.Mutex
	var captured []byte
	seen := map[string]int{}
	l.lan.SetTap(func(port int, frame []byte) {
		mu.Lock()
		defer mu.Unlock()
		if len(frame) >= 34 && binary.BigEndian.Uint16(frame[12:14]) == 0x0800 {
			seen[fmt.Sprintf("%d.%d.%d.%d->%d.%d.%d.%d", frame[26], frame[27], frame[28], frame[29], frame[30], frame[31], frame[32], frame[33])]++
		}
		if _, ok := heartbeat(frame, [4]byte{192, 0, 2, 11}, [4]byte{192, 0, 2, 12}); ok {
			captured = frame
		}
	})
	eventually(t, 10*time.Second, "a heartbeat from A to B on the LAN", func() error {
		mu.Lock()
		defer mu.Unlock()
		if captured == nil {
			return fmt.Errorf("IPv4 frames seen: %v", seen)
		}
		return nil
	})
	l.lan.SetTap(nil)
	mu.Lock()
	frame := captured
	mu.Unlock()
	before := l.b.mustPair().Rejected
	forged := bytes.Clone(frame)
	udp, _ := heartbeat(forged, [4]byte{192, 0, 2, 11}, [4]byte{192, 0, 2, 12})
	forged[len(forged)-1] ^= 0xff       // the tag no longer matches
	forged[udp+6], forged[udp+7] = 0, 0 // no UDP checksum (allowed on IPv4), so the kernel delivers it
	lanB := l.b.HubPorts[0]
	for _, f := range [][]byte{forged, frame} {
		if err := l.lan.Inject(lanB, f); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "forged and replayed heartbeats refused", func() error {
		r := l.b.mustPair().Rejected
		if r["bad_tag"] <= before["bad_tag"] || r["replay"] <= before["replay"] {
			return fmt.Errorf("rejected %v (before %v)", r, before)
		}
		return nil
	})
	waitRoles(t, "roles after the forged heartbeats", 5*time.Second, l.a, l.b, "active", "standby")

	// Whoever holds the witness key (the office PC) forges a grant in A's name with the highest number: B
	// refuses it, and A's heartbeats still count (it once silenced them for good).
	var wk struct{ Key string }
	l.a.get("/api/v1/pair/witness-key", l.a.tok, &wk)
	wkey, err := hex.DecodeString(wk.Key)
	if err != nil {
		t.Fatalf("witness key %q: %v", wk.Key, err)
	}
	sealed, err := wire.Seal(wkey, wire.Message{Kind: "grant", From: l.a.Name(), Seq: math.MaxUint64, Time: time.Now(), Granted: true, Holder: l.a.Name()})
	if err != nil {
		t.Fatal(err)
	}
	before = l.b.mustPair().Rejected
	if err := l.lan.Inject(lanB, withUDPPayload(frame, udp, sealed)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a grant in A's name refused", func() error {
		if r := l.b.mustPair().Rejected; r["unknown_sender"] <= before["unknown_sender"] {
			return fmt.Errorf("rejected %v (before %v)", r, before)
		}
		return nil
	})
	time.Sleep(3 * time.Second) // many heartbeats later
	waitRoles(t, "roles after the forged grant", 5*time.Second, l.a, l.b, "active", "standby")
	if p := l.b.mustPair(); !p.Peer.Reachable {
		t.Errorf("B no longer hears A after the forged grant: %+v", p)
	}
}

// nobodyActiveWithoutWitness: the witness is unreachable and the units lose each other: nobody is active
// rather than two; healed, exactly one is.
func (l *pairLab) nobodyActiveWithoutWitness(t *testing.T) {
	l.lan.SetCut(l.pc.HubPorts[0], true)
	l.lan.SetCut(l.b.HubPorts[0], true)
	l.cable.SetCut(l.b.HubPorts[1], true)
	waitRoles(t, "partition without the witness", 30*time.Second, l.a, l.b, "fenced", "standby")
	time.Sleep(5 * time.Second)
	waitRoles(t, "still nobody active", time.Second, l.a, l.b, "fenced", "standby")
	for _, n := range []int{l.pc.HubPorts[0], l.b.HubPorts[0]} {
		l.lan.SetCut(n, false)
	}
	l.cable.SetCut(l.b.HubPorts[1], false)
	eventually(t, 30*time.Second, "exactly one active after healing", func() error {
		sa, sb := l.a.mustPair(), l.b.mustPair()
		if (sa.Role == "active") == (sb.Role == "active") {
			return fmt.Errorf("A=%s B=%s", sa.Role, sb.Role)
		}
		return nil
	})
}

// returnsLockedWhileAlone: B comes back alone (cut from A): its data stays locked, and says why; reconnected, it
// unlocks by itself with A's secret, standby, and its database mirrors A.
func (l *pairLab) returnsLockedWhileAlone(t *testing.T, chk *overlapChecker) {
	cfg := unitConfig("unit-b", l.bDisk, l.lan, l.cable)
	cfg.MACs = l.b.MACs
	u := start(t, cfg)
	l.lan.SetCut(u.HubPorts[0], true)
	l.cable.SetCut(u.HubPorts[1], true)
	u.ready()
	l.b = newPairUnit(u, u.login())
	eventually(t, time.Minute, "B locked while alone", func() error {
		if e := l.b.storage(l.b.tok).Encryption; e.State != "locked" || !strings.Contains(e.Reason, "neither the partner unit nor the witness gave its key") {
			return fmt.Errorf("B's encryption %+v", e)
		}
		return nil
	})
	if code, body := l.b.call("GET", "/api/v1/database", l.b.tok, ""); strings.Contains(body, `"state":"running"`) {
		t.Fatalf("B's database runs on locked data: %d %s", code, body)
	}
	// Reconnected: it unlocks by itself with A's secret, standby, and its database mirrors A.
	l.lan.SetCut(u.HubPorts[0], false)
	l.cable.SetCut(u.HubPorts[1], false)
	eventually(t, time.Minute, "B unlocked by its partner", func() error {
		if e := l.b.storage(l.b.tok).Encryption; e.State != "open" {
			return fmt.Errorf("B's encryption %+v", e)
		}
		return nil
	})
	chk.set(1, l.b)
	l.b.waitPeer(t, "B back and paired")
	time.Sleep(3 * time.Second)
	waitRoles(t, "after B returned", time.Second, l.a, l.b, "active", "standby")
	l.b.waitDB(t, "B mirrors A", 5*time.Minute, mirrorsPartner)
}
