package pair

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/network"
	"github.com/lawbox/appliance/appliance/pair/wire"
	"github.com/lawbox/appliance/appliance/state"
	"github.com/lawbox/appliance/appliance/witness"
	"github.com/lawbox/appliance/netcfg/vip"
)

var key = []byte("0123456789abcdef0123456789abcdef")

type fakeVIP struct {
	mu        sync.Mutex
	held      bool
	announced int
	clients   []vip.Conn   // Conns while held
	tickled   [][]vip.Conn // every Tickle
}

func (v *fakeVIP) Hold() error     { v.mu.Lock(); defer v.mu.Unlock(); v.held = true; return nil }
func (v *fakeVIP) Drop() error     { v.mu.Lock(); defer v.mu.Unlock(); v.held = false; return nil }
func (v *fakeVIP) Announce() error { v.mu.Lock(); defer v.mu.Unlock(); v.announced++; return nil }
func (v *fakeVIP) Held() bool      { v.mu.Lock(); defer v.mu.Unlock(); return v.held }
func (v *fakeVIP) Conns() ([]vip.Conn, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.held {
		return nil, nil
	}
	return v.clients, nil
}
func (v *fakeVIP) Tickle(c []vip.Conn) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.tickled = append(v.tickled, c)
	return nil
}
func (v *fakeVIP) Tickled() [][]vip.Conn { v.mu.Lock(); defer v.mu.Unlock(); return v.tickled }

type testNode struct {
	*Node
	vip    *fakeVIP
	cancel context.CancelFunc
	done   chan error
}

// startNode runs a node on ip:port (loopback addresses 127.0.0.x stand in for units).
func startNode(t *testing.T, name, ip string, port int, st *state.Store, opts ...func(*Node)) *testNode {
	t.Helper()
	if st == nil {
		var err error
		if st, err = state.Open(filepath.Join(t.TempDir(), "state.db")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
	}
	tn := &testNode{vip: &fakeVIP{}, done: make(chan error, 2)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	holder := &network.ServiceAddress{Log: log, New: func(netip.Prefix) network.Holder { return tn.vip }}
	tn.Node = &Node{Log: log, Store: st, Name: name, UDPPort: port, Version: "fw-" + name,
		Addrs:   func() []netip.Addr { return []netip.Addr{netip.MustParseAddr(ip)} },
		Address: holder,
		Listen:  func() (net.PacketConn, error) { return net.ListenPacket("udp", net.JoinHostPort(ip, fmt.Sprint(port))) }}
	holder.Event = tn.Event
	for _, o := range opts {
		o(tn.Node)
	}
	if err := tn.Load(); err != nil {
		t.Fatal(err)
	}
	var ctx context.Context
	ctx, tn.cancel = context.WithCancel(context.Background())
	go func() { tn.done <- tn.Run(ctx) }()
	go func() { tn.done <- holder.Run(ctx) }()
	t.Cleanup(tn.stop)
	return tn
}

func (tn *testNode) stop() {
	if tn.cancel != nil {
		tn.cancel()
		<-tn.done
		<-tn.done
		tn.cancel = nil
	}
}

func waitRoles(t *testing.T, what string, a, b *testNode, ra, rb string) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		if a.Role() == ra && b.Role() == rb {
			t.Logf("%s: %s/%s after %v", what, ra, rb, time.Since(start).Round(time.Millisecond))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: roles %s/%s, want %s/%s\nA: %+v %+v\nB: %+v %+v", what, a.Role(), b.Role(), ra, rb, a.Pair(), a.Pair().Witness, b.Pair(), b.Pair().Witness)
}

// Two nodes and a witness over real UDP on loopback addresses: pairing, the service address, forged and
// replayed heartbeats, failover, and the returning unit staying standby.
func TestNodesPairAndFailOver(t *testing.T) {
	port := freeUDPPort(t)
	wconn, err := net.ListenPacket("udp", "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	// Each unit's audit log ("audit" in its store) is copied to the other ("copy").
	audit := func(n *Node) {
		n.AuditSince = func(after string, k int) ([]state.Chained, error) { return n.Store.ChainSince("audit", after, k) }
		n.AuditKeep = func(e []state.Chained) (string, error) { return n.Store.ContinueChain("copy", time.Now(), e, 0) }
	}
	a := startNode(t, "unit-a", "127.0.0.1", port, nil, audit)
	var bReady atomic.Bool // B's database takes writes
	bReady.Store(true)
	b := startNode(t, "unit-b", "127.0.0.2", port, nil, audit, func(n *Node) { n.Ready = bReady.Load })

	if _, err := a.Invite(context.Background(), appliance.PairSettings{VIP: "192.0.2.100/24", Mode: Auto}); err == nil {
		t.Error("automatic mode without a witness was accepted")
	}
	code, err := a.Invite(context.Background(), appliance.PairSettings{VIP: "192.0.2.100/24", Mode: Auto, Witness: wconn.LocalAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Join(context.Background(), "127.0.0.1", "AAAA-BBBB-CCCC-DDDD"); err == nil {
		t.Fatal("joined with a wrong code")
	}
	if err := b.Join(context.Background(), "127.0.0.1", code); err != nil {
		t.Fatal(err)
	}
	key, err := a.WitnessKey()
	if err != nil {
		t.Fatal(err)
	}
	if bk, _ := b.WitnessKey(); bk != key {
		t.Fatal("the units derived different witness keys")
	}
	ws := &witness.WitnessServer{Key: wire.WitnessKey(a.cfg.Key), Log: a.Log, Now: time.Now, Name: "witness"}
	wctx, wstop := context.WithCancel(context.Background())
	defer wstop()
	go ws.Serve(wctx, wconn)

	waitRoles(t, "after pairing", a, b, Active, Standby)
	eventually(t, time.Second, "the service address on A", func() error {
		if !a.vip.Held() || b.vip.Held() {
			return fmt.Errorf("held: a=%v b=%v", a.vip.Held(), b.vip.Held())
		}
		return nil
	})
	time.Sleep(time.Second) // a standby pings the witness every 5 heartbeats
	st := b.Pair()
	if !st.Paired || st.Peer == nil || st.Peer.Name != "unit-a" || !st.Peer.Reachable || st.Witness == nil || !st.Witness.Reachable {
		t.Fatalf("B's status = %+v peer %+v witness %+v", st, st.Peer, st.Witness)
	}

	auditCopied(t, a, b)
	refuseForgedHeartbeats(t, a, b, port)
	switchOverWhenWritable(t, a, b, &bReady)

	// A has a client; B learns of its connection from A's heartbeats (listed every second).
	client := vip.Conn{Port: 5432, Client: netip.MustParseAddrPort("192.0.2.30:40000")}
	a.vip.mu.Lock()
	a.vip.clients = []vip.Conn{client}
	a.vip.mu.Unlock()
	time.Sleep(1500 * time.Millisecond)
	if n := len(b.vip.Tickled()); n != 0 {
		t.Errorf("B tickled clients %d times before taking over", n)
	}

	a.stop() // A dies
	start := time.Now()
	for b.Role() != Active {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("B did not take over: %+v", b.Pair())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("failover in %v", time.Since(start))
	eventually(t, time.Second, "the service address on B after failover", func() error {
		if a.vip.Held() || !b.vip.Held() {
			return fmt.Errorf("held: a=%v b=%v", a.vip.Held(), b.vip.Held())
		}
		return nil
	})
	// Once with the address and at each of the 4 announcements.
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		got := b.vip.Tickled()
		if len(got) == 5 && slices.Equal(got[0], []vip.Conn{client}) && slices.Equal(got[4], []vip.Conn{client}) {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("B tickled %v, want A's client %v 5 times", got, client)
		}
	}

	returnsAsStandby(t, a, b, port)
}

func freeUDPPort(t *testing.T) int {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Manual mode, the active unit dies: the standby stays standby until an admin decides; maintenance mode
// makes it answer on the service address (read-only) meanwhile, and ends by itself when the other unit is
// back. It is refused while the other unit answers.
func TestMaintenanceMode(t *testing.T) {
	port := freeUDPPort(t)
	a := startNode(t, "unit-a", "127.0.0.1", port, nil)
	b := startNode(t, "unit-b", "127.0.0.2", port, nil)
	ctx := context.Background()
	code, err := a.Invite(ctx, appliance.PairSettings{VIP: "192.0.2.100/24", Mode: Manual})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Join(ctx, "127.0.0.1", code); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if a.Role() != Active {
		if err := a.SetRole(ctx, Active, false); err != nil {
			t.Fatal(err)
		}
	}
	waitRoles(t, "paired", a, b, Active, Standby)
	if err := b.SetMaintenance(ctx, true); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("maintenance with the other unit answering: %v", err)
	}
	a.stop()
	deadline := time.Now().Add(10 * time.Second)
	for b.Pair().Peer.Reachable && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if b.Role() != Standby || b.vip.Held() {
		t.Fatalf("manual mode: B took over by itself: %s, address held %v", b.Role(), b.vip.Held())
	}
	if err := b.SetMaintenance(ctx, true); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "maintenance: B holds the address, standby", func() error {
		if st := b.Pair(); !b.vip.Held() || st.Role != Standby || !st.Maintenance {
			return fmt.Errorf("%+v, address held %v", st, b.vip.Held())
		}
		return nil
	})
	startNode(t, "unit-a", "127.0.0.1", port, a.Store)
	deadline = time.Now().Add(10 * time.Second)
	for (b.vip.Held() || b.Pair().Maintenance) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if b.vip.Held() || b.Pair().Maintenance {
		t.Errorf("maintenance did not end when the other unit came back: %+v", b.Pair())
	}
}

// Whoever holds the witness key (the office PC) cannot silence a unit: a "grant" in the peer's name with
// the highest number is refused and moves no window, the real heartbeats still count; a grant that
// answers no request of this unit's is refused too, and a real answer counts once.
func TestWitnessKeyCannotSilenceThePeer(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	n := &Node{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: st, Name: "unit-a", Now: func() time.Time { return now }}
	if err := n.Load(); err != nil {
		t.Fatal(err)
	}
	n.setConfig(&Config{Name: "unit-a", Peer: "unit-b", Key: key, Mode: Auto, HeartbeatMS: 100, TimeoutMS: 400})
	wk := wire.WitnessKey(key)
	seal := func(k []byte, m wire.Message) []byte {
		b, err := wire.Seal(k, m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	n.handle(seal(wk, wire.Message{Kind: "grant", From: "unit-b", Seq: ^uint64(0), Time: now}), nil)
	n.handle(seal(wk, wire.Message{Kind: "heartbeat", From: "unit-b", Seq: ^uint64(0), Time: now, Role: Active}), nil)
	n.handle(seal(key, wire.Message{Kind: "heartbeat", From: "unit-b", Seq: 1000, Time: now, Role: Active}), nil)
	if n.peer.seen.IsZero() || n.peer.role != Active {
		t.Errorf("the real heartbeat after forged ones was dropped: %+v, rejected %v", n.peer, n.rejected)
	}
	if n.rejected["unknown_sender"] != 2 {
		t.Errorf("rejected %v, want the two messages in the peer's name on the witness key", n.rejected)
	}
	n.handle(seal(wk, wire.Message{Kind: "grant", From: wire.WitnessName, Seq: 5, Time: now, Echo: 77, Granted: true, Holder: "unit-a"}), nil)
	if !n.witness.seen.IsZero() || n.rejected["replay"] != 1 {
		t.Errorf("a grant answering no request was taken: %+v, rejected %v", n.witness, n.rejected)
	}
	seq := n.ask(now)
	answer := seal(wk, wire.Message{Kind: "grant", From: wire.WitnessName, Seq: 6, Time: now, Echo: seq, Holder: "unit-b"})
	n.handle(answer, nil)
	if n.witness.seen.IsZero() || n.witness.holder != "unit-b" {
		t.Errorf("the witness's answer was not taken: %+v", n.witness)
	}
	n.handle(answer, nil)
	if n.rejected["replay"] != 2 {
		t.Errorf("the same answer twice: rejected %v", n.rejected)
	}
}

// eventually retries f until it succeeds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	var err error
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

// unroutable is a socket with no route anywhere (a unit whose ports are not on the peer's network).
type unroutable struct{ net.PacketConn }

func (unroutable) WriteTo([]byte, net.Addr) (int, error) {
	return 0, &net.OpError{Op: "write", Net: "udp", Err: os.NewSyscallError("sendto", syscall.ENETUNREACH)}
}

// Joining a peer the unit has no route to is the admin's to fix: a sentence and ErrUnavailable (503), not
// an internal error.
func TestJoinWithoutRoute(t *testing.T) {
	n := startNode(t, "unit-b", "127.0.0.2", freeUDPPort(t), nil, func(n *Node) {
		listen := n.Listen
		n.Listen = func() (net.PacketConn, error) {
			c, err := listen()
			return unroutable{c}, err
		}
	})
	err := n.Join(context.Background(), "198.51.100.7", "ABCD-EFGH-IJKL")
	if !errors.Is(err, appliance.ErrUnavailable) || !strings.Contains(err.Error(), "cannot send to 198.51.100.7") || !strings.Contains(err.Error(), "network is unreachable") {
		t.Errorf("Join without a route = %v", err)
	}
}

// switchOverWhenWritable asks for a switchover from the standby, and back from the active one. B's database
// is still being promoted when B becomes active: B takes the service address only once it takes writes.
func switchOverWhenWritable(t *testing.T, a, b *testNode, bReady *atomic.Bool) {
	// Switchover asked from the standby, and back from the active one. B's database is still being promoted
	// when B becomes active: B takes the service address only once it takes writes.
	bReady.Store(false)
	if err := b.SetRole(context.Background(), Active, false); err != nil {
		t.Fatal(err)
	}
	waitRoles(t, "switchover to B", a, b, Standby, Active)
	time.Sleep(500 * time.Millisecond)
	if b.vip.Held() || a.vip.Held() {
		t.Errorf("the service address is held (A %v, B %v) while B cannot take writes yet", a.vip.Held(), b.vip.Held())
	}
	bReady.Store(true)
	eventually(t, 2*time.Second, "B takes the service address once its database takes writes", func() error {
		if !b.vip.Held() {
			return errors.New("not held")
		}
		return nil
	})
	if err := b.SetRole(context.Background(), Standby, false); err != nil {
		t.Fatal(err)
	}
	waitRoles(t, "switchover back to A", a, b, Active, Standby)
}

// refuseForgedHeartbeats: a forged heartbeat (wrong key) claiming A stood down, and a replayed genuine one,
// change nothing; a genuine heartbeat of a protocol this firmware does not speak is refused and said, never
// acted on.
func refuseForgedHeartbeats(t *testing.T, a, b *testNode, port int) {
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.2:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := wire.Seal([]byte("not the pair key, not at all....."), wire.Message{Kind: "heartbeat", From: "unit-a", Seq: 1 << 62, Time: time.Now(), Role: Standby, Yield: true})
	old, _ := wire.Seal(a.cfg.Key, wire.Message{Kind: "heartbeat", From: "unit-a", Seq: 1, Time: time.Now(), Role: Standby, Yield: true})
	conn.Write(forged)
	conn.Write(old)
	time.Sleep(300 * time.Millisecond)
	st := b.Pair()
	if st.Rejected["bad_tag"] < 1 || st.Rejected["replay"] < 1 {
		t.Errorf("rejected = %v, want a bad_tag and a replay", st.Rejected)
	}
	waitRoles(t, "after forged heartbeats", a, b, Active, Standby)
	if p := b.Pair().Peer; p == nil || p.Firmware != "fw-unit-a" {
		t.Errorf("B does not know A's firmware: %+v", p)
	}

	// A genuine heartbeat of a protocol this firmware does not speak is refused and said, never acted on.
	future, _ := wire.Seal(a.cfg.Key, wire.Message{Kind: "heartbeat", Proto: wire.Proto + 1, Firmware: "fw-next", From: "unit-a", Seq: 1 << 62, Time: time.Now(), Role: Standby, Yield: true})
	conn.Write(future)
	time.Sleep(300 * time.Millisecond)
	st = b.Pair()
	said := false
	for _, e := range st.Events {
		said = said || strings.Contains(e.Message, fmt.Sprintf("runs firmware fw-next, which speaks pair protocol %d", wire.Proto+1))
	}
	if st.Rejected["incompatible"] < 1 || !said {
		t.Errorf("an incompatible heartbeat: rejected %v, events %v", st.Rejected, st.Events)
	}
	waitRoles(t, "after an incompatible heartbeat", a, b, Active, Standby)
}

// auditCopied: A's audit entries reach B's copy with the heartbeats, a few at a time, and the copy verifies.
func auditCopied(t *testing.T, a, b *testNode) {
	for i := range 20 {
		if _, err := a.Store.AppendChained("audit", time.Now(), map[string]int{"entry": i}, 0); err != nil {
			t.Fatal(err)
		}
	}
	_, headA, _ := a.Store.VerifyChain("audit")
	eventually(t, 10*time.Second, "A's audit log copied to B", func() error {
		n, head, err := b.Store.VerifyChain("copy")
		if err != nil || n != 20 || head != headA {
			return fmt.Errorf("B's copy: %d entries, head %.12s (A's %.12s), %v", n, head, headA, err)
		}
		return nil
	})
}

// returnsAsStandby: A comes back (same stored config): standby, and it does not take the address back.
func returnsAsStandby(t *testing.T, a, b *testNode, port int) {
	a2 := startNode(t, "unit-a", "127.0.0.1", port, a.Store)
	time.Sleep(2 * time.Second)
	waitRoles(t, "A back", a2, b, Standby, Active)
	if st := a2.Pair(); st.Peer == nil || !st.Peer.Reachable || a2.vip.Held() {
		t.Errorf("returning A: %+v peer %+v, service address held %v", st, st.Peer, a2.vip.Held())
	}
}
