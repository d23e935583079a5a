package qemutests

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance/pair/wire"
)

type pairStatus struct {
	Paired  bool   `json:"paired"`
	Name    string `json:"name"`
	Role    string `json:"role"`
	VIPHeld bool   `json:"vip_held"`
	Peer    *struct {
		Name      string `json:"name"`
		Reachable bool   `json:"reachable"`
		Paths     []struct {
			Address   string `json:"address"`
			Reachable bool   `json:"reachable"`
		} `json:"paths"`
	} `json:"peer"`
	Witness *struct {
		Reachable bool   `json:"reachable"`
		Holder    string `json:"holder"`
		Stale     bool   `json:"stale"`
	} `json:"witness"`
	Rejected map[string]int `json:"rejected"`
}

// pairUnit is a unit of the pair with its admin token and a short-timeout client for polling.
type pairUnit struct {
	*unit
	tok  string
	poll *http.Client
}

func (p *pairUnit) pair() (pairStatus, error) {
	req, _ := http.NewRequest("GET", p.URL("/api/v1/pair"), nil)
	req.Header.Set("Authorization", "Bearer "+p.tok)
	resp, err := p.poll.Do(req)
	if err != nil {
		return pairStatus{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st pairStatus
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("GET /api/v1/pair = %d %s", resp.StatusCode, b)
	}
	return st, json.Unmarshal(b, &st)
}

func (p *pairUnit) mustPair() pairStatus {
	p.t.Helper()
	st, err := p.pair()
	if err != nil {
		p.t.Fatal(err)
	}
	return st
}

func (p *pairUnit) console(cmd string, want *regexp.Regexp) []string {
	p.t.Helper()
	if err := p.Send(cmd); err != nil {
		p.t.Fatal(err)
	}
	m, err := p.Expect(want, time.Minute)
	if err != nil {
		p.t.Fatalf("%s: %v", cmd, err)
	}
	return m
}

// waitPeer waits (a minute at most) until p reaches the other unit.
func (p *pairUnit) waitPeer(t testing.TB, what string) {
	t.Helper()
	eventually(t, time.Minute, what, func() error {
		if st := p.mustPair(); st.Peer == nil || !st.Peer.Reachable {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
}

// carrier is the link state of p's port with this (permanent) MAC address, not of a bond showing it; the
// second value lists every port's, for a failure message.
func (p *pairUnit) carrier(mac string) (bool, string) {
	p.t.Helper()
	var n struct {
		Links []struct {
			Name, MAC string
			Carrier   bool
		}
	}
	p.get("/api/v1/network", p.tok, &n)
	for _, l := range n.Links {
		if l.MAC == mac && !strings.HasPrefix(l.Name, "bond") {
			return l.Carrier, fmt.Sprintf("%+v", n.Links)
		}
	}
	p.t.Fatalf("no link state for %s: %+v", mac, n.Links)
	return false, ""
}

func newPairUnit(u *unit, tok string) *pairUnit {
	return &pairUnit{unit: u, tok: tok, poll: &http.Client{Timeout: 2 * time.Second, Transport: u.http.Transport}}
}

// overlapChecker polls both units' roles every 100 ms for the whole test and fails on two active units.
// A round counts only when both answers came within 150 ms of each other's start (the design keeps at
// least PeerTimeout/2 between one unit's stop and the other's start, so a conclusive round with both active
// is a real overlap).
type overlapChecker struct {
	t          testing.TB
	mu         sync.Mutex
	units      [2]*pairUnit
	rounds     int
	conclusive int
	overlaps   []string
	stop       chan struct{}
	done       chan struct{}
}

func startChecker(t testing.TB, a, b *pairUnit) *overlapChecker {
	c := &overlapChecker{t: t, units: [2]*pairUnit{a, b}, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *overlapChecker) set(i int, u *pairUnit) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.units[i] = u
}

func (c *overlapChecker) run() {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		c.mu.Lock()
		units := c.units
		c.mu.Unlock()
		var wg sync.WaitGroup
		var roles [2]string
		var ends [2]time.Time
		start := time.Now()
		for i, u := range units {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if st, err := u.pair(); err == nil {
					roles[i] = st.Role
				}
				ends[i] = time.Now()
			}()
		}
		wg.Wait()
		c.mu.Lock()
		c.rounds++
		if ends[0].Sub(start) < 150*time.Millisecond && ends[1].Sub(start) < 150*time.Millisecond {
			c.conclusive++
			if roles[0] == "active" && roles[1] == "active" {
				c.overlaps = append(c.overlaps, start.Format("15:04:05.000"))
			}
		}
		c.mu.Unlock()
	}
}

// finish stops polling and fails the test if both units were ever seen active at once.
func (c *overlapChecker) finish() {
	close(c.stop)
	<-c.done
	c.t.Logf("role checker: %d rounds, %d conclusive", c.rounds, c.conclusive)
	if len(c.overlaps) > 0 {
		c.t.Errorf("both units active at %v", c.overlaps)
	}
	if c.conclusive < c.rounds/4 {
		c.t.Errorf("only %d of %d checker rounds were conclusive", c.conclusive, c.rounds)
	}
}

func waitRoles(t testing.TB, what string, timeout time.Duration, a, b *pairUnit, ra, rb string) {
	t.Helper()
	eventually(t, timeout, what, func() error {
		sa, err := a.pair()
		if err != nil {
			return err
		}
		sb, err := b.pair()
		if err != nil {
			return err
		}
		if sa.Role != ra || sb.Role != rb {
			return fmt.Errorf("roles %s=%s %s=%s, want %s/%s", sa.Name, sa.Role, sb.Name, sb.Role, ra, rb)
		}
		return nil
	})
}

// heartbeat reports whether frame is a pair datagram (UDP 7946) from src to dst, and where its UDP header is.
func heartbeat(frame []byte, src, dst [4]byte) (udp int, ok bool) {
	if len(frame) < 14+20+8 || binary.BigEndian.Uint16(frame[12:14]) != 0x0800 || frame[14+9] != 17 {
		return 0, false
	}
	ihl := int(frame[14]&0x0f) * 4
	udp = 14 + ihl
	if len(frame) < udp+8 || !bytes.Equal(frame[14+12:14+16], src[:]) || !bytes.Equal(frame[14+16:14+20], dst[:]) ||
		binary.BigEndian.Uint16(frame[udp+2:udp+4]) != 7946 || frame[udp+8] != '{' {
		return 0, false
	}
	return udp, true
}

// withUDPPayload is an IPv4/UDP frame like frame (its UDP header at udp) carrying payload instead, with
// its lengths and IP checksum set again and no UDP checksum (allowed on IPv4).
func withUDPPayload(frame []byte, udp int, payload []byte) []byte {
	f := append(bytes.Clone(frame[:udp+8]), payload...)
	binary.BigEndian.PutUint16(f[14+2:], uint16(len(f)-14))
	binary.BigEndian.PutUint16(f[udp+4:], uint16(8+len(payload)))
	f[udp+6], f[udp+7] = 0, 0
	f[14+10], f[14+11] = 0, 0
	var sum uint32
	for i := 14; i < udp; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(f[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(f[14+10:], ^uint16(sum))
	return f
}

var (
	reProbe  = regexp.MustCompile(`debug: probe (\d+) ([0-9a-f:]{17})`)
	reMark   = regexp.MustCompile(`debug: mark (\d+)`)
	reAddrOK = regexp.MustCompile(`debug: addr \S+ \S+: <nil>`)
)

// pairLab is two units (LAN + direct cable) and an office PC running the witness and the client probe
// (no PC in manual mode).
type pairLab struct {
	lan, cable *Hub
	a, b       *pairUnit
	pc         *pairUnit
	aDisk      []Disk
	bDisk      []Disk
}

// close stops the lab's VMs and hubs (a benchmark runs several labs one after the other).
func (l *pairLab) close() {
	for _, u := range []*pairUnit{l.a, l.b, l.pc} {
		if u != nil {
			u.Close()
		}
	}
	l.lan.Close()
	l.cable.Close()
}

func unitConfig(name string, disks []Disk, hubs ...*Hub) Config {
	return Config{Hubs: hubs, Disks: disks, Cmdline: []string{"appliance.hostname=" + name}}
}

// newPairLab boots the three VMs, gives the ports fixed addresses, pairs the units in automatic mode
// (timeoutMS: 0 for the default), starts the witness on the PC and waits for A active and B standby.
func newPairLab(t testing.TB, timeoutMS int) *pairLab { return newLab(t, timeoutMS, false) }

// newLab is newPairLab, or in manual mode two units alone: an admin makes A active.
func newLab(t testing.TB, timeoutMS int, manual bool) *pairLab {
	holdCPU(t, true)
	l := &pairLab{lan: NewHub(t.TempDir()), cable: NewHub(t.TempDir())}
	t.Cleanup(l.lan.Close)
	t.Cleanup(l.cable.Close)
	l.aDisk = keep(t, Disk{ID: "a1", Kind: Virtio, Serial: "UNIT-A-1", SizeMiB: 1200})
	l.bDisk = keep(t, Disk{ID: "b1", Kind: Virtio, Serial: "UNIT-B-1", SizeMiB: 1200})
	cfgs := []Config{unitConfig("unit-a", l.aDisk, l.lan, l.cable), unitConfig("unit-b", l.bDisk, l.lan, l.cable)}
	if !manual {
		cfgs = append(cfgs, unitConfig("office-pc", nil, l.lan))
	}
	us := bootAll(t, cfgs...)
	l.a, l.b = newPairUnit(us[0], us[0].setupAndLogin()), newPairUnit(us[1], us[1].setupAndLogin())
	if !manual {
		l.pc = newPairUnit(us[2], "")
		l.pc.console("addr "+l.pc.MACs[0]+" 192.0.2.30/24", reAddrOK)
	}
	// Ports are named by MAC address: the kernel does not number virtio NICs in the same order every boot.
	// A names the office's name server on its LAN port; B keeps its DHCP lease's (none: QEMU's restricted
	// user network gives no name server).
	for i, u := range []*pairUnit{l.a, l.b} {
		dns := map[int]string{0: `,"dns":["192.0.2.53"]`}[i]
		body := fmt.Sprintf(`{"ports":[{"name":%q,"addresses":["192.0.2.%d/24"]%s},{"name":%q,"addresses":["198.51.100.%d/24"]}]}`,
			u.MACs[0], 11+i, dns, u.MACs[1], 1+i)
		if code, body := u.call("PUT", "/api/v1/network", u.tok, body); code != 200 {
			t.Fatalf("network on %s = %d %s", u.Name(), code, body)
		}
		var net struct{ Nameservers []string }
		u.get("/api/v1/network", u.tok, &net)
		if want := map[int][]string{0: {"192.0.2.53"}}[i]; !slices.Equal(net.Nameservers, want) {
			t.Errorf("name servers in effect on %s: %v, want %v", u.Name(), net.Nameservers, want)
		}
	}

	if code, body := l.a.call("POST", "/api/v1/pair/invite", l.a.tok, `{"vip":"192.0.2.100/24","mode":"auto"}`); code != 400 {
		t.Errorf("automatic mode without a witness = %d %s", code, body)
	}
	settings := `{"vip":"192.0.2.100/24","mode":"auto","witness":"192.0.2.30:7947"`
	if manual {
		settings = `{"vip":"192.0.2.100/24","mode":"manual"`
	}
	if timeoutMS > 0 {
		settings += `,"timeout_ms":` + strconv.Itoa(timeoutMS)
	}
	code, body := l.a.call("POST", "/api/v1/pair/invite", l.a.tok, settings+"}")
	var inv struct{ Code string }
	if code != 201 || json.Unmarshal([]byte(body), &inv) != nil {
		t.Fatalf("invite = %d %s", code, body)
	}
	if code, body := l.b.call("POST", "/api/v1/pair/join", l.b.tok, `{"peer":"192.0.2.11","code":"AAAA-BBBB-CCCC-DDDD"}`); code != 503 {
		t.Errorf("join with a wrong code = %d %s", code, body)
	}
	if code, body := l.b.call("POST", "/api/v1/pair/join", l.b.tok, `{"peer":"192.0.2.11","code":"`+inv.Code+`"}`); code != 200 {
		t.Fatalf("join = %d %s", code, body)
	}
	if manual {
		// Nothing changes role by itself in manual mode: both wait, and an admin makes A active.
		time.Sleep(3 * time.Second)
		waitRoles(t, "manual mode: nobody active by itself", time.Second, l.a, l.b, "standby", "standby")
		if code, body := l.a.call("POST", "/api/v1/pair/role", l.a.tok, `{"role":"active"}`); code != 202 {
			t.Fatalf("make A active = %d %s", code, body)
		}
	} else {
		var wk struct{ Key string }
		l.a.get("/api/v1/pair/witness-key", l.a.tok, &wk)
		l.pc.console("witness "+wk.Key, regexp.MustCompile(`debug: witness: <nil>`))
	}
	waitRoles(t, "roles after pairing", time.Minute, l.a, l.b, "active", "standby")
	// B copies A's database right after pairing: a one-time load that the scenarios should not race with.
	eventually(t, 5*time.Minute, "B's database copy done", func() error {
		code, body := l.b.call("GET", "/api/v1/database", l.b.tok, "")
		if code != 200 || !strings.Contains(body, `"role":"mirror"`) || !strings.Contains(body, `"state":"running"`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	eventually(t, 30*time.Second, "both paths and the witness seen", func() error {
		for _, u := range []*pairUnit{l.a, l.b} {
			st := u.mustPair()
			if st.Peer == nil || len(st.Peer.Paths) != 2 || !st.Peer.Paths[0].Reachable || !st.Peer.Paths[1].Reachable ||
				!manual && (st.Witness == nil || !st.Witness.Reachable) {
				return fmt.Errorf("%s: %+v peer %+v witness %+v", u.Name(), st, st.Peer, st.Witness)
			}
		}
		return nil
	})
	return l
}

// Name is the unit's host name.
func (p *pairUnit) Name() string {
	st, err := p.pair()
	if err != nil {
		return "?"
	}
	return st.Name
}

// killAndMeasure kill -9s the unit u and returns how long the PC's probe took to get its first answer from
// survivor on the service address.
func (l *pairLab) killAndMeasure(t testing.TB, u, survivor *pairUnit) time.Duration {
	t.Helper()
	if err := u.Kill9(); err != nil {
		t.Fatal(err)
	}
	mark, _ := strconv.Atoi(l.pc.console("mark", reMark)[1])
	m := l.expectAnswer(t, survivor, time.Minute)
	at, _ := strconv.Atoi(m[1])
	return time.Duration(at-mark) * time.Millisecond
}

// expectAnswer waits for the PC's probe to report an answer on the service address from u's LAN port.
func (l *pairLab) expectAnswer(t testing.TB, u *pairUnit, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, err := l.pc.Expect(reProbe, time.Until(deadline))
		if err != nil {
			t.Fatalf("no answer from %s (%s) on the service address: %v", u.Name(), u.MACs[0], err)
		}
		if m[2] == u.MACs[0] {
			return m
		}
	}
}

// restart boots a killed unit again on its disks and hubs, with its MAC addresses.
func (l *pairLab) restart(t testing.TB, old *pairUnit, name string, disks []Disk) *pairUnit {
	t.Helper()
	cfg := unitConfig(name, disks, l.lan, l.cable)
	cfg.MACs = old.MACs
	u := boot(t, cfg)
	return newPairUnit(u, u.login())
}

// Two units and an office PC (witness and client) on one virtual LAN, the units also joined by a direct
// cable. A role checker polls both units throughout and fails on two active units.
func TestPairFailover(t *testing.T) {
	t.Parallel()
	l := newPairLab(t, 800) // a longer timeout than the default: other QEMU tests share the CPUs
	chk := startChecker(t, l.a, l.b)
	defer chk.finish()
	l.pc.console("probe 192.0.2.100:443", regexp.MustCompile(`debug: probing`))
	l.expectAnswer(t, l.a, time.Minute)

	// A forged heartbeat and a replayed one, injected into B's LAN port, are dropped.
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

	// Only the direct cable is cut: heartbeats go on over the LAN, nobody changes role.
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

	// Switchover from the standby's page, and back from the active one.
	if code, body := l.b.call("POST", "/api/v1/pair/role", l.b.tok, `{"role":"active"}`); code != 202 {
		t.Fatalf("switchover to B = %d %s", code, body)
	}
	waitRoles(t, "after switchover to B", 30*time.Second, l.a, l.b, "standby", "active")
	l.expectAnswer(t, l.b, 30*time.Second)
	if code, body := l.b.call("POST", "/api/v1/pair/role", l.b.tok, `{"role":"standby"}`); code != 202 {
		t.Fatalf("switchover back = %d %s", code, body)
	}
	waitRoles(t, "after switchover back to A", 30*time.Second, l.a, l.b, "active", "standby")
	l.expectAnswer(t, l.a, 30*time.Second)

	// kill -9 of the active unit: the PC reaches B on the service address.
	took := l.killAndMeasure(t, l.a, l.b)
	t.Logf("failover: the client got its first answer from unit-b %v after kill -9 of unit-a", took)
	if st := l.b.mustPair(); st.Role != "active" || !st.VIPHeld {
		t.Fatalf("B after failover: %+v", st)
	}

	// A comes back: standby, and it stays so.
	l.a = l.restart(t, l.a, "unit-a", l.aDisk)
	chk.set(0, l.a)
	l.a.waitPeer(t, "A back and paired")
	time.Sleep(5 * time.Second)
	waitRoles(t, "after A returned", time.Second, l.a, l.b, "standby", "active")

	// The active unit (B) is cut off from A and the witness: B fences itself, A takes over. A must hold a
	// complete copy of B's database first: a unit in the middle of its rejoin (pg_rewind) never asks.
	l.a.waitDB(t, "A mirrors B", 5*time.Minute, mirrorsPartner)
	l.lan.SetCut(l.b.HubPorts[0], true)
	l.cable.SetCut(l.b.HubPorts[1], true)
	waitRoles(t, "B isolated", 30*time.Second, l.a, l.b, "active", "fenced")
	l.lan.SetCut(l.b.HubPorts[0], false)
	l.cable.SetCut(l.b.HubPorts[1], false)
	waitRoles(t, "B back on the network", 30*time.Second, l.a, l.b, "active", "standby")

	// The witness is unreachable and the units lose each other: nobody is active rather than two.
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

// Manual mode (no witness): nothing changes role by itself. A switchover needs the active unit to stand
// down first; when the active unit dies, the standby waits for an admin, who must confirm (the other unit
// might still be serving); the dead unit comes back as standby. The role checker runs throughout.
func TestPairManualMode(t *testing.T) {
	t.Parallel()
	l := newLab(t, 800, true)
	chk := startChecker(t, l.a, l.b)
	defer chk.finish()
	role := func(u *pairUnit, body string, want int) {
		t.Helper()
		if code, got := u.call("POST", "/api/v1/pair/role", u.tok, body); code != want {
			t.Fatalf("%s on %s = %d %s, want %d", body, u.Name(), code, got, want)
		}
	}
	role(l.b, `{"role":"active"}`, 409) // A is active
	role(l.a, `{"role":"standby"}`, 202)
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
		role(l.a, `{"role":"standby"}`, 202)
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

	// B comes back: standby, and its database mirrors A.
	l.b = l.restart(t, l.b, "unit-b", l.bDisk)
	chk.set(1, l.b)
	l.b.waitPeer(t, "B back and paired")
	time.Sleep(3 * time.Second)
	waitRoles(t, "after B returned", time.Second, l.a, l.b, "active", "standby")
	l.b.waitDB(t, "B mirrors A", 5*time.Minute, mirrorsPartner)
}
