package qemutests

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance/pair/wire"
)

// The phases of TestPairFailover and TestPairManualMode (pair_test.go).

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
	// partner up and holds A's writes until A's fence-peer helper had B mark its copy outdated, over the
	// pair link on the LAN; then A stores it alone. B's copy, outdated in its DRBD metadata (a restart of B
	// keeps it so), refuses to take over (409) until it is connected and complete again (checked before the
	// switchover below).
	start := time.Now()
	l.a.fill("documents/during-the-cut.pdf", 1, 3)
	t.Logf("a document stored on A with the replication path cut, in %v", time.Since(start).Round(100*time.Millisecond))
	eventually(t, 10*time.Second, "B's copy marked outdated", func() error {
		if _, body := l.b.call("GET", "/api/v1/shares", l.b.tok, ""); !strings.Contains(body, `"disk":"Outdated"`) {
			return fmt.Errorf("A stored a document alone while B's copy is not marked outdated: B says %s", body)
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
	u := l.restartBAlone(t)
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

// restartBAlone starts B again with its LAN and cable cut: its data stays locked, says why (its TPM, if it
// has one, alone does not open it), and its database does not run. It answers B's VM, whose ports are then
// still cut.
func (l *pairLab) restartBAlone(t *testing.T) *unit {
	cfg := unitConfig("unit-b", l.bDisk, l.lan, l.cable)
	cfg.MACs, cfg.TPM = l.b.MACs, l.bTPM
	why := "neither the partner unit nor the witness gave its key"
	if l.bTPM != "" {
		why = "this box's TPM alone does not open it"
	}
	u := start(t, cfg)
	l.lan.SetCut(u.HubPorts[0], true)
	l.cable.SetCut(u.HubPorts[1], true)
	u.ready()
	l.b = newPairUnit(u, u.login())
	eventually(t, time.Minute, "B locked while alone", func() error {
		if e := l.b.storage(l.b.tok).Encryption; e.State != "locked" || !strings.Contains(e.Reason, why) {
			return fmt.Errorf("B's encryption %+v", e)
		}
		return nil
	})
	if code, body := l.b.call("GET", "/api/v1/database", l.b.tok, ""); strings.Contains(body, `"state":"running"`) {
		t.Fatalf("B's database runs on locked data: %d %s", code, body)
	}
	return u
}

// witnessKeepsTheKey: once B's recovery sheet is made, B's key is kept by its TPM, its partner and the
// witness, two of which must answer, and no longer on B's disks. With A cut off, B is restarted: alone, its
// TPM alone does not open it (a unit stolen with its disks stays locked); its LAN back (the witness
// reachable, A still cut off), it unlocks by itself with the witness's share and its TPM's, takes over and
// serves. A, reconnected, is standby.
func (l *pairLab) witnessKeepsTheKey(t *testing.T, chk *overlapChecker) {
	if code, body := l.b.call("POST", "/api/v1/storage/recovery-key", l.b.tok, ""); code != 201 {
		t.Fatalf("B's recovery sheet = %d %s", code, body)
	}
	eventually(t, time.Minute, "B's key kept by its TPM, its partner and the witness, two needed", func() error {
		if e := l.b.storage(l.b.tok).Encryption; e.State != "open" || strings.Join(e.KeyHolders, ",") != "tpm,partner,witness" || e.KeysNeeded != 2 || e.KeyOnDisks {
			return fmt.Errorf("B's encryption %+v", e)
		}
		return nil
	})
	l.lan.SetCut(l.a.HubPorts[0], true)
	l.cable.SetCut(l.a.HubPorts[1], true)
	if err := l.b.Kill9(); err != nil {
		t.Fatal(err)
	}
	u := l.restartBAlone(t)
	back := time.Now()
	l.lan.SetCut(u.HubPorts[0], false)
	eventually(t, time.Minute, "B unlocked by its TPM and the witness", func() error {
		if e := l.b.storage(l.b.tok).Encryption; e.State != "open" {
			return fmt.Errorf("B's encryption %+v", e)
		}
		return nil
	})
	t.Logf("B, alone with its TPM, locked; unlocked by its TPM and the witness %v after its LAN came back", time.Since(back).Round(100*time.Millisecond))
	chk.set(1, l.b)
	eventually(t, time.Minute, "B active, A cut off and not active", func() error {
		if sa, sb := l.a.mustPair(), l.b.mustPair(); sa.Role == "active" || sb.Role != "active" {
			return fmt.Errorf("A=%s B=%s", sa.Role, sb.Role)
		}
		return nil
	})
	l.b.waitDB(t, "B's database serves", 3*time.Minute, func(s dbStatus) bool { return s.Role == "production" && s.State == "running" })
	l.lan.SetCut(l.a.HubPorts[0], false)
	l.cable.SetCut(l.a.HubPorts[1], false)
	l.cable.SetCut(u.HubPorts[1], false)
	waitRoles(t, "A back as standby", time.Minute, l.a, l.b, "standby", "active")
}
