// Package wire is the pair's wire format: the messages units and the witness send each other, their
// authentication (HMAC with the pair key, or the witness key derived from it), rising sequence numbers and
// replay windows. It links no netlink and no store: cmd/witness speaks it too.
package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance/chain"
	"github.com/lawbox/appliance/netcfg/vipconn"
)

// Message is what units and the witness send each other over UDP: JSON, then an HMAC-SHA256 tag with the
// pair's key (heartbeats) or the witness key (lease requests and grants). Seq rises with every message from
// a sender, across restarts and whatever its clock says (Sequence), and a receiver drops anything not newer
// than what it has seen on that key from that sender (Replay): no replay. A grant is taken only as the
// answer to a request this unit sent and has not had answered (Echo): a replayed one answers nothing.
type Message struct {
	Kind string `json:"kind"` // "heartbeat", "lease" (a request), "release", "grant" (the witness's answer)
	// heartbeat: the pair protocol the sender speaks (0: 1, from before the field) and its firmware version
	Proto     int            `json:"proto,omitempty"`
	Firmware  string         `json:"firmware,omitempty"`
	From      string         `json:"from"`
	Seq       uint64         `json:"seq"`
	Time      time.Time      `json:"time"`
	Role      string         `json:"role,omitempty"`       // heartbeat: the sender's role
	HearsPeer bool           `json:"hears_peer,omitempty"` // heartbeat: the sender heard the receiver recently
	Yield     bool           `json:"yield,omitempty"`      // heartbeat: the sender stood down for the receiver
	Claim     bool           `json:"claim,omitempty"`      // heartbeat: an admin asked the sender to become active
	ClaimID   uint64         `json:"claim_id,omitempty"`   // heartbeat: which request that is (role.go)
	Ack       uint64         `json:"ack,omitempty"`        // heartbeat, manual mode: the receiver's claim the sender agrees to
	Addrs     []string       `json:"addrs,omitempty"`      // heartbeat: the sender's addresses (every path)
	Conns     []vipconn.Conn `json:"conns,omitempty"`      // heartbeat: the clients' connections to the service address the sender holds
	LeaseMS   int64          `json:"lease_ms,omitempty"`   // lease: for how long
	Echo      uint64         `json:"echo,omitempty"`       // grant: the Seq of the request it answers
	Granted   bool           `json:"granted,omitempty"`    // grant
	Holder    string         `json:"holder,omitempty"`     // grant: who holds the lease
	Epoch     uint64         `json:"epoch,omitempty"`      // heartbeat, lease: the sender's epoch; grant: the witness's (witness.go)
	Force     bool           `json:"force,omitempty"`      // lease: an admin forces a stale unit active
	Bump      bool           `json:"bump,omitempty"`       // lease: the active unit lost its peer; raise the epoch
	Stale     bool           `json:"stale,omitempty"`      // grant: refused, the requester's epoch is older than the last holder's
	// heartbeat: entries of the sender's audit log the receiver has not acknowledged (a few at a time),
	// and the hash of the last entry of the receiver's log the sender keeps a copy of
	Audit    []chain.Entry `json:"audit,omitempty"`
	AuditAck string        `json:"audit_ack,omitempty"`
	// keyshare (share.go): the asker's random challenge, and the holder's answer sealed to it
	Nonce []byte `json:"nonce,omitempty"`
	Share []byte `json:"share,omitempty"`
}

// The pair protocol: what the heartbeats mean and how the units act on them. A firmware that changes it
// raises Proto; each unit takes heartbeats from MinProto to Proto, so the two units of a pair updated one
// after the other (version N beside N+1) keep talking, and refuses others with a clear event, never by
// misreading them.
//
// Protocol 2: the unit runs the pair link (netcfg/tunnel), and its documents' replication goes inside it;
// beside a unit that speaks 1 it replicates as protocol 1 did, on the LAN, until both speak 2.
const (
	Proto    = 2
	MinProto = 1
)

// Tunnels reports whether a unit that speaks proto runs the pair link.
func Tunnels(proto int) bool { return proto >= 2 }

// Compatible says whether a heartbeat of protocol proto can be taken.
func Compatible(proto int) bool {
	if proto == 0 {
		proto = 1
	}
	return proto >= MinProto && proto <= Proto
}

const tagLen = sha256.Size

// WitnessName is who the witness's grants come from: a unit takes grants from nobody else.
const WitnessName = "witness"

// WitnessPort is the UDP port the witness answers on (the units' pair traffic uses pair.Port).
const WitnessPort = 7947

// Errors of Open and Replay.
var (
	ErrBadTag = errors.New("message not authenticated by the pair key")
	ErrReplay = errors.New("message replayed or out of order")
)

// Seal encodes and authenticates m.
func Seal(key []byte, m Message) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(b)
	return mac.Sum(b), nil
}

// Open checks the tag and decodes the message.
func Open(key, b []byte) (Message, error) {
	if len(b) < tagLen {
		return Message{}, ErrBadTag
	}
	body, tag := b[:len(b)-tagLen], b[len(b)-tagLen:]
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	if !hmac.Equal(tag, mac.Sum(nil)) {
		return Message{}, ErrBadTag
	}
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		return Message{}, fmt.Errorf("decode message: %w", err)
	}
	return m, nil
}

// Sequence hands out rising sequence numbers. Once started (Start) it does not depend on the clock: it
// continues above the high-water mark saved before and asks for a new mark (Reserve) half a block before
// it reaches the saved one, so a restart continues above every number used even if the clock went back
// (a unit without a battery-backed clock). Not started, it follows the clock (the witness).
type Sequence struct {
	// Reserve saves a new high-water mark; it must not block (it is called with the sender's locks held).
	Reserve func(mark uint64)

	mu       sync.Mutex // guards the fields below
	last     uint64
	reserved uint64 // the high-water mark saved; 0: not started
}

// seqBlock is how far ahead a high-water mark is saved: about a day of messages.
const seqBlock = 1 << 20

// Start continues from saved, the high-water mark saved before (0: none, the first start: begin at the
// clock, above the numbers of a firmware that used the clock), and returns the mark to save before the first
// message is sent.
func (s *Sequence) Start(saved uint64, now time.Time) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = saved
	if saved == 0 {
		s.last = uint64(now.UnixNano())
	}
	s.reserved = s.last + seqBlock
	return s.reserved
}

// Next returns the next number.
func (s *Sequence) Next(now time.Time) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reserved == 0 {
		s.last = max(s.last+1, uint64(now.UnixNano()))
		return s.last
	}
	s.last++
	if s.last+seqBlock/2 >= s.reserved {
		s.reserved += seqBlock
		if s.Reserve != nil {
			s.Reserve(s.reserved)
		}
	}
	return s.last
}

// Replay remembers the newest sequence number seen on each channel: a key and a sender ("pair/unit-b",
// "witness/unit-a"). A message authenticated by one key never moves the window of another, so the
// witness's key cannot be used to silence a unit's heartbeats.
type Replay struct {
	mu    sync.Mutex // guards the fields below
	last  map[string]uint64
	dirty bool // changed since Windows
}

// Check accepts seq on channel only if it is newer than everything seen there.
func (r *Replay) Check(channel string, seq uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[string]uint64{}
	}
	if seq <= r.last[channel] {
		return fmt.Errorf("%w: %s seq %d, seen %d", ErrReplay, channel, seq, r.last[channel])
	}
	r.last[channel], r.dirty = seq, true
	return nil
}

// Windows returns the newest number of every channel if they changed since the last call (to be saved),
// else nil.
func (r *Replay) Windows() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.dirty {
		return nil
	}
	r.dirty = false
	return maps.Clone(r.last)
}

// Load continues from windows saved before a restart: a message recorded before it is still refused.
func (r *Replay) Load(windows map[string]uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[string]uint64{}
	}
	for k, v := range windows {
		r.last[k] = max(r.last[k], v)
	}
}

// WitnessKey is the key shared with the witness, derived from the pair key: the witness PC can grant
// leases but cannot forge heartbeats.
func WitnessKey(pairKey []byte) []byte { return Derive(pairKey, "lawbox witness key v1") }

// Derive is a key for one purpose, from the pair key.
func Derive(pairKey []byte, label string) []byte {
	mac := hmac.New(sha256.New, pairKey)
	mac.Write([]byte(label))
	return mac.Sum(nil)
}
