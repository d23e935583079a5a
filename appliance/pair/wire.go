package pair

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lawbox/appliance/netcfg/vip"
)

// Message is what units and the witness send each other over UDP: JSON, then an HMAC-SHA256 tag with the
// pair's key. Seq rises with every message from a sender (it starts from the clock, so a restarted sender
// still rises) and a receiver drops anything not newer than what it has seen: no replay.
type Message struct {
	Kind      string     `json:"kind"` // "heartbeat", "lease" (a request), "release", "grant" (the witness's answer)
	From      string     `json:"from"`
	Seq       uint64     `json:"seq"`
	Time      time.Time  `json:"time"`
	Role      string     `json:"role,omitempty"`       // heartbeat: the sender's role
	HearsPeer bool       `json:"hears_peer,omitempty"` // heartbeat: the sender heard the receiver recently
	Yield     bool       `json:"yield,omitempty"`      // heartbeat: the sender stood down for the receiver
	Claim     bool       `json:"claim,omitempty"`      // heartbeat: an admin asked the sender to become active
	ClaimID   uint64     `json:"claim_id,omitempty"`   // heartbeat: which request that is (role.go)
	Ack       uint64     `json:"ack,omitempty"`        // heartbeat, manual mode: the receiver's claim the sender agrees to
	Addrs     []string   `json:"addrs,omitempty"`      // heartbeat: the sender's addresses (every path)
	Conns     []vip.Conn `json:"conns,omitempty"`      // heartbeat: the clients' connections to the service address the sender holds
	LeaseMS   int64      `json:"lease_ms,omitempty"`   // lease: for how long
	Echo      uint64     `json:"echo,omitempty"`       // grant: the Seq of the request it answers
	Granted   bool       `json:"granted,omitempty"`    // grant
	Holder    string     `json:"holder,omitempty"`     // grant: who holds the lease
	Epoch     uint64     `json:"epoch,omitempty"`      // heartbeat, lease: the sender's epoch; grant: the witness's (witness.go)
	Force     bool       `json:"force,omitempty"`      // lease: an admin forces a stale unit active
	Bump      bool       `json:"bump,omitempty"`       // lease: the active unit lost its peer; raise the epoch
	Stale     bool       `json:"stale,omitempty"`      // grant: refused, the requester's epoch is older than the last holder's
}

const tagLen = sha256.Size

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

// Sequence hands out rising sequence numbers, starting from the clock.
type Sequence struct {
	mu   sync.Mutex
	last uint64
}

// Next returns the next number.
func (s *Sequence) Next(now time.Time) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = max(s.last+1, uint64(now.UnixNano()))
	return s.last
}

// Replay remembers the newest sequence number seen from each sender.
type Replay struct {
	mu   sync.Mutex
	last map[string]uint64
}

// Check accepts m only if it is newer than everything seen from its sender.
func (r *Replay) Check(m Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[string]uint64{}
	}
	if m.Seq <= r.last[m.From] {
		return fmt.Errorf("%w: %s seq %d, seen %d", ErrReplay, m.From, m.Seq, r.last[m.From])
	}
	r.last[m.From] = m.Seq
	return nil
}

// WitnessKey is the key shared with the witness, derived from the pair key: the witness PC can grant
// leases but cannot forge heartbeats.
func WitnessKey(pairKey []byte) []byte { return derive(pairKey, "lawbox witness key v1") }

// derive is a key for one purpose, from the pair key.
func derive(pairKey []byte, label string) []byte {
	mac := hmac.New(sha256.New, pairKey)
	mac.Write([]byte(label))
	return mac.Sum(nil)
}
