package pair

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/pair/wire"
	"github.com/lawbox/appliance/appliance/state"
	"github.com/lawbox/appliance/netcfg/vipconn"
)

// Port is the UDP port of pair traffic (heartbeats, pairing); the witness answers on WitnessPort.
const (
	Port      = 7946
	configKey = "pair"
)

// Defaults: detection within 2×Timeout (0.8 s).
const (
	DefaultHeartbeat = 100 * time.Millisecond
	DefaultTimeout   = 400 * time.Millisecond
)

// Config is the pair's persistent settings.
type Config struct {
	Name        string   `json:"name"`
	Peer        string   `json:"peer"`
	PeerAddrs   []string `json:"peer_addrs"`
	Key         []byte   `json:"key"`
	Witness     string   `json:"witness,omitempty"`
	Mode        string   `json:"mode"`
	VIP         string   `json:"vip"`
	Preferred   bool     `json:"preferred"`
	HeartbeatMS int      `json:"heartbeat_ms"`
	TimeoutMS   int      `json:"timeout_ms"`
	Epoch       uint64   `json:"epoch"` // the witness epoch of this unit's data (witness.go)
	// PeerShare is the secret this unit keeps for the other unit's disks (keyshare.go).
	PeerShare []byte `json:"peer_share,omitempty"`
}

func (c *Config) heartbeat() time.Duration { return time.Duration(c.HeartbeatMS) * time.Millisecond }
func (c *Config) timeout() time.Duration   { return time.Duration(c.TimeoutMS) * time.Millisecond }

// lease is how long a grant lasts: long enough to ride out a few lost renewals, short enough that a
// standby may take over soon after 2×Timeout of silence.
func (c *Config) lease() time.Duration { return max(2*c.timeout(), 500*time.Millisecond) }

// Address is the part that holds the service address (appliance/network.ServiceAddress): the pair says
// whether this unit holds it; the netlink and ARP work is the holder's, never under the pair's lock.
type Address interface {
	Want(appliance.AddressRequest)
	Held() bool
	Conns() []vipconn.Conn // this unit's clients' connections to it, while held
}

// Node runs this unit's side of the pair: heartbeats on every path, the witness lease, the role machine and
// the service address. It implements appliance.Pair.
type Node struct {
	Log     *slog.Logger
	Store   *state.Store
	Name    string                              // this unit's name (its hostname)
	Addrs   func() []netip.Addr                 // this unit's addresses, told to the peer
	Address Address                             // the service address's holder; nil: none
	Roles   *appliance.Feed[appliance.PairRole] // where this unit's role is published (the database, documents, shares and backups follow it); nil: nowhere
	Fit     func() bool                         // whether this unit's data may serve (nil: always)
	// Ready is whether the service behind the address takes writes (nil: always). A unit that becomes
	// active takes the address once it is, or after readyWait: a client meets a refused connection
	// rather than an answer such as "read-only transaction" from a server still being promoted.
	Ready    func() bool
	Version  string                         // the firmware's version, told to the peer
	Now      func() time.Time               // time.Now
	Listen   func() (net.PacketConn, error) // the pair socket; nil: UDP Port on every address
	UDPPort  int                            // the peer's pair port; 0: Port
	LinkPort int                            // the peer's link port (link.go); 0: Port
	// AuditSince lists this unit's audit entries after the one whose hash is given (oldest first, at most
	// n); AuditKeep keeps the partner's entries (a copy of its log) and returns the copy's head. The
	// heartbeats carry them: each unit holds a copy of the other's audit log, so a log rewritten on one
	// unit no longer continues the copy on the other. nil: no audit shipping.
	AuditSince func(after string, n int) ([]state.Chained, error)
	AuditKeep  func(entries []state.Chained) (head string, err error)

	mu       sync.Mutex // guards everything below
	cfg      *Config
	m        *Machine
	vip      netip.Prefix // the service address (none: not paired)
	activeAt time.Time    // when this unit last became active
	ticks    int
	peer     peerState
	witness  witnessState
	seq      wire.Sequence
	replay   wire.Replay
	rejected map[string]int
	invite   *invite
	joining  *joining
	conn     net.PacketConn
	// the last entry of the peer's audit log this unit keeps, and why the last ones were not kept
	auditHead, auditProblem string
	lastEvent               string
	lastRole                string // the role acted on at the last tick
	// maintenance: an admin asked this standby to answer on the service address, read-only, while the
	// other unit cannot be reached (nobody promoted it yet)
	maintenance bool
	// writes carries state-store writes out of the heartbeat path: a commit can wait on the disks for a
	// second, far longer than a lease.
	writes chan func()
}

type peerState struct {
	seen                   time.Time
	role                   string
	hearsUs, yields, claim bool
	epoch, claimID, ack    uint64
	paths                  map[string]time.Time
	conns                  []vipconn.Conn // its clients' connections to the service address, while it holds it
	auditAck               string         // the last entry of this unit's audit log the peer keeps
	firmware               string         // the firmware version it runs
	proto                  int            // the pair protocol it speaks
}

type witnessState struct {
	seen       time.Time
	holder     string
	leaseUntil time.Time
	asked      map[uint64]time.Time // every request sent to the witness and not answered yet: seq -> sent
	pending    map[uint64]time.Time // lease requests in flight: seq -> sent
	bumps      map[uint64]bool      // those that asked to raise the epoch
	stale      bool                 // the witness refuses this unit: the other unit was active after its data
	force      bool                 // an admin forces this unit active although its data may be stale
}

type invite struct {
	code     []byte // derived key
	key      []byte // the pair key it hands out
	settings appliance.PairSettings
	expires  time.Time
	peer     string // who used it
}

type joining struct {
	key   []byte
	nonce []byte
	got   chan welcome
}

var _ appliance.Pair = (*Node)(nil)

// Load reads the configuration; call before Run.
func (n *Node) Load() error {
	if n.Now == nil {
		n.Now = time.Now
	}
	defer func() { // the parts learn the role even when there is no pair, or its settings cannot be read
		n.mu.Lock()
		defer n.mu.Unlock()
		n.publish()
	}()
	if err := n.loadSequence(); err != nil {
		return err
	}
	if n.AuditKeep != nil {
		head, err := n.AuditKeep(nil)
		if err != nil {
			return fmt.Errorf("the partner's audit log: %w", err)
		}
		n.auditHead = head
	}
	var c Config
	err := n.Store.GetJSON(state.BucketConfig, configKey, &c)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load pair config: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.setConfig(&c)
	return nil
}

// publish tells the parts that follow the pair this unit's role now (Roles). n.mu is held.
func (n *Node) publish() {
	if n.Roles == nil {
		return
	}
	role := Single
	if n.cfg != nil {
		role = n.m.Role()
	}
	n.Roles.Set(appliance.PairRole(role))
}

// setConfig starts the role machine afresh (standby: a unit that starts never assumes it is active).
func (n *Node) setConfig(c *Config) {
	n.cfg = c
	n.m, n.vip = nil, netip.Prefix{}
	n.peer, n.witness = peerState{}, witnessState{}
	defer n.publish()
	defer n.holdVIP(false) // a unit that starts or unpairs holds nothing
	if c == nil {
		return
	}
	n.m = NewMachine(c.Mode, c.timeout(), c.Preferred)
	n.m.Epoch = c.Epoch
	n.lastRole = n.m.Role()
	if p, err := netip.ParsePrefix(c.VIP); err == nil {
		n.vip = p
	}
}

// holdVIP asks the holder to hold the service address or not. n.mu is held.
func (n *Node) holdVIP(hold bool) {
	if n.Address == nil {
		return
	}
	req := appliance.AddressRequest{Prefix: n.vip, Hold: hold && n.vip.IsValid()}
	if req.Hold {
		req.Tickle = n.peer.conns
	}
	n.Address.Want(req)
}

// vipHeld reports whether this unit holds the service address.
func (n *Node) vipHeld() bool { return n.Address != nil && n.Address.Held() }

// Run sends heartbeats, listens, and steps the role until ctx ends. The service address is dropped at
// the end (and is not held at start: setConfig).
func (n *Node) Run(ctx context.Context) error {
	listen := n.Listen
	if listen == nil {
		listen = func() (net.PacketConn, error) { return net.ListenPacket("udp", ":"+strconv.Itoa(Port)) }
	}
	conn, err := listen()
	if err != nil {
		return fmt.Errorf("pair socket: %w", err)
	}
	n.mu.Lock()
	n.conn = conn
	writes := make(chan func(), 256)
	n.writes = writes
	go func() {
		for w := range writes {
			w()
		}
	}()
	n.mu.Unlock()
	go n.receive(conn)
	defer func() {
		conn.Close()
		n.mu.Lock()
		defer n.mu.Unlock()
		n.holdVIP(false)
		close(n.writes)
		n.writes = nil
	}()
	for {
		n.mu.Lock()
		every := DefaultHeartbeat
		if n.cfg != nil {
			every = n.cfg.heartbeat()
		}
		n.tick()
		n.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// tick is one heartbeat interval: step the machine, act on the role, tell the peer and the witness.
func (n *Node) tick() {
	if n.cfg == nil {
		return
	}
	now := n.Now()
	was := n.lastRole
	role, wantLease := n.m.Step(n.inputs(now))
	n.lastRole = role
	n.publish()
	if role != was {
		n.roleChanged(was, role)
		if role == Active {
			n.activeAt = now
		}
	}
	n.ticks++
	peerGone := n.peer.seen.IsZero() || now.Sub(n.peer.seen) >= n.cfg.timeout()
	if !peerGone && n.peer.role == Active {
		n.witness.stale = false // following the newer unit: its data becomes this unit's
	}
	if n.maintenance && (role != Standby || !peerGone) {
		n.maintenance = false
		n.event("warning", "maintenance mode ended: the other unit answers again, or this unit changed role")
	}
	serve := role == Active || n.maintenance
	if serve && !n.vipHeld() && !n.maintenance && n.Ready != nil && !n.Ready() && now.Sub(n.activeAt) < readyWait {
		serve = false // not yet: the service behind the address cannot take writes
	}
	n.holdVIP(serve)
	var conns []vipconn.Conn
	if serve && n.Address != nil {
		conns = n.Address.Conns()
	}
	c := n.cfg
	if n.m.Epoch != c.Epoch {
		c.Epoch = n.m.Epoch
		n.save()
	}
	hb := wire.Message{Kind: "heartbeat", Proto: wire.Proto, Firmware: n.Version, From: c.Name, Time: now, Role: role, HearsPeer: n.m.HearsPeer(now, n.peer.seen),
		Yield: n.m.Yielding(), Claim: n.m.Claiming(), ClaimID: n.m.ClaimID(), Ack: n.m.Ack(n.inputs(now)), Addrs: n.ownAddrs(), Epoch: c.Epoch, Conns: conns,
		AuditAck: n.auditHead}
	if n.AuditSince != nil && !peerGone {
		if items, err := n.AuditSince(n.peer.auditAck, auditPerHeartbeat); err == nil {
			hb.Audit = items
		}
	}
	for _, a := range c.PeerAddrs {
		hb.Seq = n.seq.Next(now)
		n.send(c.Key, hb, net.JoinHostPort(a, strconv.Itoa(n.port())))
	}
	if c.Witness == "" || c.Mode != Auto {
		return
	}
	if was == Active && role != Active {
		n.send(wire.WitnessKey(c.Key), wire.Message{Kind: "release", From: c.Name, Seq: n.ask(now), Time: now}, c.Witness)
		n.witness.leaseUntil = time.Time{}
	}
	if wantLease {
		seq := n.ask(now)
		if n.witness.pending == nil || len(n.witness.pending) > 100 {
			n.witness.pending = map[uint64]time.Time{}
		}
		n.witness.pending[seq] = now
		bump := n.m.Bump(n.inputs(now))
		if bump {
			if n.witness.bumps == nil || len(n.witness.bumps) > 100 {
				n.witness.bumps = map[uint64]bool{}
			}
			n.witness.bumps[seq] = true
		}
		n.witness.force = n.witness.force && n.m.Claiming()
		n.send(wire.WitnessKey(c.Key), wire.Message{Kind: "lease", From: c.Name, Seq: seq, Time: now, LeaseMS: c.lease().Milliseconds(),
			Epoch: c.Epoch, Force: n.witness.force, Bump: bump}, c.Witness)
	} else if n.ticks%5 == 0 { // a standby still wants to know the witness is there
		n.send(wire.WitnessKey(c.Key), wire.Message{Kind: "ping", From: c.Name, Seq: n.ask(now), Time: now}, c.Witness)
	}
	if n.ticks%50 == 0 {
		n.saveReplay()
	}
}

// auditPerHeartbeat bounds the audit entries a heartbeat carries (a datagram stays small): ten heartbeats
// a second ship 30 entries a second, far more than people make.
const auditPerHeartbeat = 3

// ask returns the sequence number of a new request to the witness, remembered until it is answered.
func (n *Node) ask(now time.Time) uint64 {
	seq := n.seq.Next(now)
	if n.witness.asked == nil || len(n.witness.asked) > 100 {
		n.witness.asked = map[uint64]time.Time{}
	}
	n.witness.asked[seq] = now
	return seq
}

// Keys of the state store that carry the pair's message numbers across restarts.
const (
	seqKey    = "pair.seq"    // this unit's sequence high-water mark
	replayKey = "pair.replay" // the newest number seen per key and sender
)

// loadSequence continues this unit's numbers and the replay windows from before a restart; the new
// high-water mark is saved before any message is sent.
func (n *Node) loadSequence() error {
	var saved uint64
	if err := n.Store.GetJSON(state.BucketConfig, seqKey, &saved); err != nil && !errors.Is(err, state.ErrNotFound) {
		return fmt.Errorf("load pair sequence: %w", err)
	}
	if err := n.Store.PutJSON(state.BucketConfig, seqKey, n.seq.Start(saved, n.Now())); err != nil {
		return fmt.Errorf("save pair sequence: %w", err)
	}
	n.seq.Reserve = func(mark uint64) {
		n.write(func() {
			if err := n.Store.PutJSON(state.BucketConfig, seqKey, mark); err != nil {
				n.Log.Error("save pair sequence", "err", err)
			}
		})
	}
	var windows map[string]uint64
	if err := n.Store.GetJSON(state.BucketConfig, replayKey, &windows); err != nil && !errors.Is(err, state.ErrNotFound) {
		return fmt.Errorf("load pair replay windows: %w", err)
	}
	n.replay.Load(windows)
	return nil
}

// saveReplay saves the replay windows if they moved (every few seconds: a restart accepts nothing older).
func (n *Node) saveReplay() {
	if w := n.replay.Windows(); w != nil {
		n.write(func() {
			if err := n.Store.PutJSON(state.BucketConfig, replayKey, w); err != nil {
				n.Log.Error("save pair replay windows", "err", err)
			}
		})
	}
}

func (n *Node) port() int {
	if n.UDPPort != 0 {
		return n.UDPPort
	}
	return Port
}

func (n *Node) inputs(now time.Time) Inputs {
	return Inputs{Now: now, PeerSeen: n.peer.seen, PeerRole: n.peer.role, PeerHearsUs: n.peer.hearsUs,
		PeerYields: n.peer.yields, PeerClaims: n.peer.claim, LeaseUntil: n.witness.leaseUntil, PeerEpoch: n.peer.epoch,
		PeerClaimID: n.peer.claimID, PeerAck: n.peer.ack, WinsTie: n.cfg != nil && n.cfg.Name < n.cfg.Peer,
		Unfit: n.Fit != nil && !n.Fit()}
}

// readyWait bounds how long an active unit waits for its service to take writes before it takes the
// service address all the same (the database's own state then says what is wrong).
const readyWait = time.Minute

func (n *Node) roleChanged(was, role string) {
	level := "info"
	msg := fmt.Sprintf("role %s -> %s", was, role)
	switch {
	case role == Fenced:
		level, msg = "critical", msg+": lost the witness and the other unit; stopped serving"
		n.Log.Warn("fenced", "witness_last_answer", n.Now().Sub(n.witness.seen), "lease_until", n.witness.leaseUntil,
			"unanswered", len(n.witness.pending), "peer_last_heard", n.Now().Sub(n.peer.seen), "holder", n.witness.holder)
	case role == Active:
		msg += ": this unit now serves the service address"
	}
	n.event(level, msg)
}

// Event records a pair event from another part (the service address's holder).
func (n *Node) Event(level, msg string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.event(level, msg)
}

func (n *Node) event(level, msg string) {
	n.Log.Info("pair: "+msg, "level", level)
	if msg == n.lastEvent {
		return // a retried failure is one event
	}
	n.lastEvent = msg
	e := state.Event{Time: n.Now(), Source: "pair", Level: level, Message: msg}
	n.write(func() {
		if err := n.Store.AddEvent(e); err != nil {
			n.Log.Error("record pair event", "err", err)
		}
	})
}

// write runs w on the writer goroutine (or now, when the node is not running).
func (n *Node) write(w func()) {
	if n.writes == nil {
		w()
		return
	}
	select {
	case n.writes <- w:
	default:
		n.Log.Error("pair: state writes are backed up; one was dropped")
	}
}

func (n *Node) send(key []byte, m wire.Message, to string) {
	b, err := wire.Seal(key, m)
	if err != nil {
		return
	}
	addr, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		return
	}
	_, _ = n.conn.WriteTo(b, addr) // a path that is down just loses the datagram
}

// ownAddrs lists this unit's addresses minus the service address (when paired).
func (n *Node) ownAddrs() []string {
	var out []string
	if n.Addrs == nil {
		return nil
	}
	var vip netip.Prefix
	if n.cfg != nil {
		vip, _ = netip.ParsePrefix(n.cfg.VIP)
	}
	for _, a := range n.Addrs() {
		if a != vip.Addr() {
			out = append(out, a.String())
		}
	}
	return out
}

// foreign drops this unit's own addresses (both units may share a management address), link-local ones and
// repeats from a peer's list.
func (n *Node) foreign(addrs []string) []string {
	skip := map[string]bool{}
	if n.Addrs != nil {
		for _, a := range n.Addrs() {
			skip[a.String()] = true
		}
	}
	var out []string
	for _, a := range addrs {
		if ip, err := netip.ParseAddr(a); err == nil && !skip[a] && !ip.IsLinkLocalUnicast() {
			out = append(out, a)
			skip[a] = true
		}
	}
	return out
}

func (n *Node) save() {
	c := *n.cfg
	c.PeerAddrs = slices.Clone(c.PeerAddrs)
	n.write(func() {
		if err := n.Store.PutJSON(state.BucketConfig, configKey, &c); err != nil {
			n.Log.Error("save pair config", "err", err)
		}
	})
}
