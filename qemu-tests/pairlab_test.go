package qemutests

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
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
	bTPM       string // B's TPM (its swtpm state), or ""
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
func newPairLab(t testing.TB, timeoutMS int) *pairLab {
	return newLab(t, labConfig{timeoutMS: timeoutMS})
}

// labConfig is a lab's heartbeat timeout (0: the default); manual mode (two units alone: an admin makes A
// active); and installed units, which boot as shipped boxes do: under UEFI, from the install disk at
// first, then from their own disks (named by MAC address then, the kernel command line being the
// firmware's own).
type labConfig struct {
	timeoutMS         int
	manual, installed bool
	bTPM              bool // B has a TPM 2.0 (the same chip across its restarts)
	// aGrown: A's documents volume grows by 32 MiB before the pairing, so B's is smaller when they pair
	aGrown bool
}

// newLab is newPairLab with the lab's configuration.
func newLab(t testing.TB, lc labConfig) *pairLab {
	timeoutMS, manual := lc.timeoutMS, lc.manual
	if tt, ok := t.(*testing.T); ok && !queued.runsAlone(tt) {
		t.Fatal("a pair lab runs alone: its test starts with alone(t)")
	}
	l := &pairLab{lan: NewHub(t.TempDir()), cable: NewHub(t.TempDir())}
	t.Cleanup(l.lan.Close)
	t.Cleanup(l.cable.Close)
	l.aDisk = keep(t, Disk{ID: "a1", Kind: Virtio, Serial: "UNIT-A-1", SizeMiB: 1200})
	l.bDisk = keep(t, Disk{ID: "b1", Kind: Virtio, Serial: "UNIT-B-1", SizeMiB: 1200})
	cfgs := []Config{unitConfig("unit-a", l.aDisk, l.lan, l.cable), unitConfig("unit-b", l.bDisk, l.lan, l.cable)}
	if lc.bTPM {
		l.bTPM = t.TempDir()
		cfgs[1].TPM = l.bTPM
	}
	if lc.installed {
		im := image(t)
		for i := range cfgs {
			inst := filepath.Join(t.TempDir(), "installer.img")
			if err := copyFile(filepath.Join(im.root, im.Installer), inst); err != nil {
				t.Fatal(err)
			}
			cfgs[i].UEFI, cfgs[i].Reboot, cfgs[i].Cmdline = true, true, nil
			cfgs[i].Disks[0].BootIndex = 1
			cfgs[i].Disks = append(cfgs[i].Disks, Disk{ID: "inst", Kind: Virtio, Serial: "INSTALL", Path: inst, BootIndex: 2})
		}
	}
	if !manual {
		cfgs = append(cfgs, unitConfig("office-pc", nil, l.lan))
	}
	us := bootAll(t, cfgs...)
	l.a, l.b = newPairUnit(us[0], us[0].setupAndLogin()), newPairUnit(us[1], us[1].setupAndLogin())
	if !manual {
		l.pc = newPairUnit(us[2], "")
		l.pc.console("addr "+l.pc.MACs[0]+" 192.0.2.30/24", reAddrOK)
	}
	l.staticPorts(t)
	if lc.aGrown {
		eventually(t, 2*time.Minute, "A's documents grown alone", func() error {
			if code, body := l.a.call("POST", "/api/v1/shares/grow", l.a.tok, fmt.Sprintf(`{"add_bytes":%d}`, 32<<20)); code != 204 {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
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
	if old == l.b {
		cfg.TPM = l.bTPM
	}
	u := boot(t, cfg)
	return newPairUnit(u, u.login())
}

// udpFrame reports an IPv4/UDP frame's ports and payload length.
func udpFrame(frame []byte) (src, dst, payload int, ok bool) {
	if len(frame) < 14+20+8 || binary.BigEndian.Uint16(frame[12:14]) != 0x0800 || frame[14+9] != 17 {
		return 0, 0, 0, false
	}
	udp := 14 + int(frame[14]&0x0f)*4
	if len(frame) < udp+8 {
		return 0, 0, 0, false
	}
	return int(binary.BigEndian.Uint16(frame[udp:])), int(binary.BigEndian.Uint16(frame[udp+2:])), len(frame) - udp - 8, true
}

// documentsStayEncryptedOnTheWire writes a known plaintext into the active unit's documents and, once the
// partner's copy is complete again, checks every frame both hubs carried meanwhile: the plaintext is in
// none, and the pair link (WireGuard, UDP 51820) carried at least its size. Both units' pages say the
// replication is encrypted.
func (l *pairLab) documentsStayEncryptedOnTheWire(t *testing.T, active, standby *pairUnit) {
	t.Helper()
	const word, count = "LAWBOX-CLIENT-FILE-PLAINTEXT-4711", 20000 // 680 KB
	var mu sync.Mutex
	seen, tunneled := 0, 0
	tap := func(_ int, frame []byte) {
		mu.Lock()
		defer mu.Unlock()
		if bytes.Contains(frame, []byte(word)) {
			seen++
		}
		if src, dst, n, ok := udpFrame(frame); ok && (src == 51820 || dst == 51820) {
			tunneled += n
		}
	}
	l.lan.SetTap(tap)
	l.cable.SetTap(tap)
	defer l.lan.SetTap(nil)
	defer l.cable.SetTap(nil)
	active.debug(fmt.Sprintf("text /data/documents/tunnel-proof.txt %s %d", word, count), `debug: text \S+: <nil>`, time.Minute)
	eventually(t, 3*time.Minute, "the standby's documents copy complete after the plaintext", documentsInSync(standby))
	mu.Lock()
	defer mu.Unlock()
	t.Logf("documents written: %d bytes; the pair link carried %d bytes; frames with the plaintext: %d", len(word+"\n")*count, tunneled, seen)
	if seen > 0 {
		t.Errorf("the documents' plaintext crossed the wire in %d frames", seen)
	}
	if size := len(word+"\n") * count; tunneled < size {
		t.Errorf("the pair link carried %d bytes, less than the %d bytes written: the replication does not go through it", tunneled, size)
	}
	for _, u := range []*pairUnit{active, standby} {
		if _, body := u.call("GET", "/api/v1/shares", u.tok, ""); !strings.Contains(body, `"encrypted":true`) {
			t.Errorf("%s does not say its replication is encrypted: %s", u.Name(), body)
		}
	}
}

// staticPorts gives each unit its fixed addresses. Ports are named by MAC address: the kernel does not number
// virtio NICs in the same order every boot. A names the office's name server on its LAN port; B keeps its DHCP
// lease's (none: QEMU's restricted user network gives no name server).
func (l *pairLab) staticPorts(t testing.TB) {
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
}
