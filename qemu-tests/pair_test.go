package qemutests

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
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

// Two units and an office PC (witness and client) on one virtual LAN, the units also joined by a direct
// cable. A role checker polls both units throughout and fails on two active units.
func TestPairFailover(t *testing.T) {
	alone(t)
	// A longer timeout than the default (400 ms): other QEMU tests share the CPUs, and under TCG a unit taking
	// over (its database promoted, its documents volume checked and mounted, Samba started) can be slow to
	// renew its lease; and the documents' replication is encrypted by the emulated CPUs (the pair link),
	// which left the witness on the office PC's VM answering late enough to fence the active unit.
	l := newLab(t, labConfig{timeoutMS: 2500, bTPM: true}) // B's TPM: witnessKeepsTheKey
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
	l.witnessKeepsTheKey(t, chk)
}

// Manual mode (no witness), A's documents grown before the pairing: B's volume grows to match, and the copies
// connect. Nothing changes role by itself. A switchover needs the active unit to stand down first; when the active
// unit dies, the standby waits for an admin, who must confirm (the other unit might still be serving); the dead unit
// comes back as standby. The role checker runs throughout.
//
// The encryption at rest follows the pair: once B's recovery sheet is made, the key of B's data array is
// kept only by its partner (no longer on B's disks). B restarted alone (its LAN and cable cut) stays
// locked and says why; reconnected, it unlocks by itself with A's secret and mirrors A again.
func TestPairManualMode(t *testing.T) {
	alone(t)
	l := newLab(t, labConfig{timeoutMS: 800, manual: true, aGrown: true})
	chk := startChecker(t, l.a, l.b)
	defer chk.finish()
	// A's documents grew while it was alone: B's volume, smaller, is grown to match over the pair link (DRBD
	// refuses a smaller partner), and the copies connect.
	eventually(t, 3*time.Minute, "B's documents copy complete, its volume grown to A's", documentsInSync(l.b))
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
