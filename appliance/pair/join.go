package pair

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/pair/wire"
	"golang.org/x/crypto/argon2"
)

// Pairing: unit A issues a one-time code; unit B sends A a join request sealed with a key derived from the
// code (argon2id, so a captured exchange cannot be brute-forced cheaply; the code holds 80 random bits);
// A answers with the pair key and the settings, sealed the same way. Nothing in the exchange is readable or
// forgeable without the code, and the code is good for one peer and 15 minutes.

const (
	inviteFor   = 15 * time.Minute
	kindJoin    = 'J'
	kindWelcome = 'W'
)

// NewCode returns a pairing code: 16 base32 characters in four groups.
func NewCode() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	s := base32.StdEncoding.EncodeToString(b)
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
}

// codeKey derives the sealing key of a pairing exchange from the code.
func codeKey(code string) []byte {
	norm := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code))
	return argon2.IDKey([]byte(norm), []byte("lawbox pairing v1"), 2, 16<<10, 1, 32)
}

// joinRequest is B's half.
type joinRequest struct {
	Name  string    `json:"name"`
	Addrs []string  `json:"addrs"`
	Nonce []byte    `json:"nonce"`
	Time  time.Time `json:"time"`
}

// welcome is A's answer.
type welcome struct {
	Name      string   `json:"name"`
	Addrs     []string `json:"addrs"`
	Key       []byte   `json:"key"`
	Nonce     []byte   `json:"nonce"` // the request's, echoed
	Witness   string   `json:"witness"`
	Mode      string   `json:"mode"`
	VIP       string   `json:"vip"`
	Heartbeat int      `json:"heartbeat_ms"`
	Timeout   int      `json:"timeout_ms"`
}

// sealJoin encrypts v as a datagram of the given kind.
func sealJoin(key []byte, kind byte, v any) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	out := append([]byte{kind}, nonce...)
	return aead.Seal(out, nonce, plain, []byte{kind}), nil
}

var errJoinAuth = errors.New("pairing message not sealed with this code")

// openJoin decrypts a datagram of the given kind into v.
func openJoin(key []byte, b []byte, v any) error {
	aead, err := newAEAD(key)
	if err != nil {
		return err
	}
	if len(b) < 1+aead.NonceSize() {
		return errJoinAuth
	}
	nonce, ct := b[1:1+aead.NonceSize()], b[1+aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, ct, b[:1])
	if err != nil {
		return errJoinAuth
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return fmt.Errorf("decode pairing message: %w", err)
	}
	return nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	c, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(c)
}

// The node's side of pairing.

// handleJoin answers a join request sealed with the current invite's code.
func (n *Node) handleJoin(b []byte, from net.Addr) {
	inv := n.invite
	if inv == nil || n.Now().After(inv.expires) {
		n.reject("join")
		return
	}
	var req joinRequest
	if err := openJoin(inv.code, b, &req); err != nil || req.Name == "" || len(req.Nonce) < 16 {
		n.reject("join")
		return
	}
	if d := n.Now().Sub(req.Time); d > time.Minute || d < -time.Minute {
		n.reject("join")
		return
	}
	if inv.peer != "" && inv.peer != req.Name || req.Name == n.Name {
		n.reject("join")
		return
	}
	if n.cfg == nil || n.cfg.Peer != req.Name {
		addrs := req.Addrs
		if ua, ok := from.(*net.UDPAddr); ok {
			if ip, ok := netip.AddrFromSlice(ua.IP); ok {
				addrs = append([]string{ip.Unmap().String()}, addrs...)
			}
		}
		s := inv.settings
		c := &Config{Name: n.Name, Peer: req.Name, PeerAddrs: n.foreign(addrs), Key: inv.key, Witness: s.Witness,
			Mode: s.Mode, VIP: s.VIP, Preferred: true, HeartbeatMS: s.HeartbeatMS, TimeoutMS: s.TimeoutMS}
		n.setConfig(c)
		n.save()
		inv.peer = req.Name
		n.event("info", "paired with "+req.Name)
	}
	s := inv.settings
	out, err := sealJoin(inv.code, kindWelcome, welcome{Name: n.Name, Addrs: n.ownAddrs(), Key: inv.key, Nonce: req.Nonce,
		Witness: s.Witness, Mode: s.Mode, VIP: s.VIP, Heartbeat: s.HeartbeatMS, Timeout: s.TimeoutMS})
	if err == nil {
		_, _ = n.conn.WriteTo(out, from)
	}
}

// Invite implements appliance.Pair.
func (n *Node) Invite(_ context.Context, s appliance.PairSettings) (string, error) {
	if err := checkSettings(&s); err != nil {
		return "", err
	}
	code := NewCode()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	derived := codeKey(code)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg != nil {
		return "", fmt.Errorf("%w: this unit is already paired with %s; unpair first", appliance.ErrConflict, n.cfg.Peer)
	}
	n.invite = &invite{code: derived, key: key, settings: s, expires: n.Now().Add(inviteFor)}
	return code, nil
}

func checkSettings(s *appliance.PairSettings) error {
	bad := func(f string, a ...any) error {
		return fmt.Errorf("%w: %s", appliance.ErrBadInput, fmt.Sprintf(f, a...))
	}
	p, err := netip.ParsePrefix(s.VIP)
	if err != nil || p.Addr().IsUnspecified() || p.Addr().IsLoopback() || p.Addr().IsMulticast() {
		return bad("service address %q: give an address and prefix length, e.g. 192.0.2.100/24", s.VIP)
	}
	switch s.Mode {
	case "":
		s.Mode = Auto
	case Auto, Manual:
	default:
		return bad("mode %q: auto or manual", s.Mode)
	}
	if s.Mode == Auto && s.Witness == "" {
		return bad("automatic failover needs a witness (host:port of the witness program)")
	}
	if s.Witness != "" {
		if _, _, err := net.SplitHostPort(s.Witness); err != nil {
			s.Witness = net.JoinHostPort(s.Witness, strconv.Itoa(wire.WitnessPort))
		}
		if _, err := net.ResolveUDPAddr("udp", s.Witness); err != nil {
			return bad("witness %q: %v", s.Witness, err)
		}
	}
	if s.HeartbeatMS == 0 {
		s.HeartbeatMS = int(DefaultHeartbeat.Milliseconds())
	}
	if s.TimeoutMS == 0 {
		s.TimeoutMS = int(DefaultTimeout.Milliseconds())
	}
	if s.HeartbeatMS < 20 || s.HeartbeatMS > 2000 {
		return bad("heartbeat_ms %d: between 20 and 2000", s.HeartbeatMS)
	}
	if s.TimeoutMS < 3*s.HeartbeatMS || s.TimeoutMS > 10000 {
		return bad("timeout_ms %d: at least 3 heartbeats and at most 10000", s.TimeoutMS)
	}
	return nil
}

// Join implements appliance.Pair.
func (n *Node) Join(ctx context.Context, peer, code string) error {
	addr := peer
	if _, _, err := net.SplitHostPort(peer); err != nil {
		addr = net.JoinHostPort(peer, strconv.Itoa(n.port()))
	}
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return fmt.Errorf("%w: peer %q: %v", appliance.ErrBadInput, peer, err)
	}
	j := &joining{key: codeKey(code), nonce: make([]byte, 16), got: make(chan welcome, 1)}
	_, _ = rand.Read(j.nonce)
	n.mu.Lock()
	if n.cfg != nil {
		n.mu.Unlock()
		return fmt.Errorf("%w: this unit is already paired with %s; unpair first", appliance.ErrConflict, n.cfg.Peer)
	}
	if n.conn == nil {
		n.mu.Unlock()
		return fmt.Errorf("%w: the pair service is not running", appliance.ErrUnavailable)
	}
	n.joining = j
	req, err := sealJoin(j.key, kindJoin, joinRequest{Name: n.Name, Addrs: n.ownAddrs(), Nonce: j.nonce, Time: n.Now()})
	conn := n.conn
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.joining = nil
		n.mu.Unlock()
	}()
	if err != nil {
		return err
	}
	var w welcome
	for try := 0; ; try++ {
		if try == 5 {
			return fmt.Errorf("%w: no answer from %s: check the address and the code (it is valid for 15 minutes)", appliance.ErrUnavailable, to)
		}
		if _, err := conn.WriteTo(req, to); err != nil {
			// No route, no address on that network, a port down: the admin fixes it, it is no fault of the unit.
			return fmt.Errorf("%w: this unit cannot send to %s (%v): check the address (it must be reachable from one of this unit's ports) and the cables",
				appliance.ErrUnavailable, to.IP, errors.Unwrap(err))
		}
		select {
		case w = <-j.got:
		case <-time.After(time.Second):
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		break
	}
	if w.Name == n.Name {
		return fmt.Errorf("%w: both units are called %s; rename one", appliance.ErrConflict, w.Name)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	addrs := n.foreign(append([]string{to.IP.String()}, w.Addrs...))
	c := &Config{Name: n.Name, Peer: w.Name, PeerAddrs: addrs, Key: w.Key, Witness: w.Witness, Mode: w.Mode,
		VIP: w.VIP, HeartbeatMS: w.Heartbeat, TimeoutMS: w.Timeout}
	n.setConfig(c)
	// The welcome is word from the peer: this unit does not rush for the lease as a unit alone would
	// (the inviting, preferred unit asks first).
	n.peer.seen = n.Now()
	n.save()
	n.event("info", "paired with "+w.Name)
	return nil
}
