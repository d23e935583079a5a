package appliance

import (
	"context"
	"time"
)

// PairSettings are chosen on the unit that issues the pairing code and carried to the one that joins.
type PairSettings struct {
	VIP         string `json:"vip"`               // the service address with its prefix length, "192.0.2.100/24"
	Witness     string `json:"witness,omitempty"` // "host:port" of cmd/witness; required in automatic mode
	Mode        string `json:"mode"`              // "auto" or "manual"
	HeartbeatMS int    `json:"heartbeat_ms,omitempty"`
	TimeoutMS   int    `json:"timeout_ms,omitempty"`
}

// PairPath is one way the units reach each other (LAN, direct cable).
type PairPath struct {
	Address   string    `json:"address"`
	Reachable bool      `json:"reachable"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
}

// PairPeer is the other unit as this one sees it.
type PairPeer struct {
	Name      string     `json:"name"`
	Address   string     `json:"address"`
	Reachable bool       `json:"reachable"`
	LastSeen  time.Time  `json:"last_seen,omitzero"`
	Role      string     `json:"role"`
	Firmware  string     `json:"firmware,omitempty"` // the version it runs, from its heartbeats
	Paths     []PairPath `json:"paths"`
}

// PairWitness is the third vote.
type PairWitness struct {
	Address    string    `json:"address"`
	Reachable  bool      `json:"reachable"`
	LastSeen   time.Time `json:"last_seen,omitzero"`
	Holder     string    `json:"holder"` // who holds the lease, as the witness last said
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	// Stale: the witness refuses this unit the lease because the other unit was active after this unit's
	// data (an admin may force it).
	Stale bool `json:"stale,omitempty"`
}

// PairStatus is GET /api/v1/pair.
type PairStatus struct {
	Paired      bool           `json:"paired"`
	Name        string         `json:"name"`
	Role        string         `json:"role"` // single | active | standby | fenced
	Mode        string         `json:"mode,omitempty"`
	Peer        *PairPeer      `json:"peer,omitempty"`
	VIP         string         `json:"vip,omitempty"`
	VIPHeld     bool           `json:"vip_held"`
	Maintenance bool           `json:"maintenance"` // a standby serving read-only on the service address
	Witness     *PairWitness   `json:"witness,omitempty"`
	HeartbeatMS int            `json:"heartbeat_ms,omitempty"`
	TimeoutMS   int            `json:"timeout_ms,omitempty"`
	Rejected    map[string]int `json:"rejected"` // messages dropped: bad_tag, replay, unknown_sender, join
	Events      []Event        `json:"events"`   // switchovers and pairing, newest last
}

// Event is one line of a part's history.
type Event struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
}

// Pair is the two-unit failover.
type Pair interface {
	Pair() PairStatus
	// Invite issues a one-time pairing code (valid 15 minutes) for the unit that will join.
	Invite(ctx context.Context, s PairSettings) (code string, err error)
	// Join pairs with the unit at peer (its LAN address) that issued code.
	Join(ctx context.Context, peer, code string) error
	// Unpair forgets the peer; this unit becomes single and drops the service address.
	Unpair(ctx context.Context) error
	// SetRole is the admin's switchover: "active" (force: the peer cannot be reached and may still serve)
	// or "standby".
	SetRole(ctx context.Context, role string, force bool) error
	// SetMaintenance makes a standby whose peer is unreachable answer on the service address with its
	// read-only mirror (maintenance mode), or ends it.
	SetMaintenance(ctx context.Context, on bool) error
	// WitnessKey is the key the witness program needs (hex), derived from the pair key.
	WitnessKey() (string, error)
}
