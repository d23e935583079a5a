package pair

// The admin's side of the node: appliance.Pair's status, switchover and unpairing.

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/pair/wire"
	"github.com/lawbox/appliance/appliance/state"
)

// Unpair implements appliance.Pair.
func (n *Node) Unpair(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg == nil {
		return fmt.Errorf("%w: not paired", appliance.ErrConflict)
	}
	peer := n.cfg.Peer
	n.write(func() { // after any queued save of the old configuration
		if err := n.Store.Delete(state.BucketConfig, configKey); err != nil {
			n.Log.Error("forget pair", "err", err)
		}
	})
	n.setConfig(nil)
	n.invite = nil
	n.event("warning", "unpaired from "+peer)
	return nil
}

// SetRole implements appliance.Pair.
func (n *Node) SetRole(_ context.Context, role string, force bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg == nil {
		return fmt.Errorf("%w: not paired", appliance.ErrConflict)
	}
	switch role {
	case Active:
		if err := n.m.Activate(n.inputs(n.Now()), force); err != nil {
			return fmt.Errorf("%w: %v", appliance.ErrConflict, err)
		}
		n.witness.force = force // lets the witness hand the lease to a stale unit (auto mode)
		n.event("warning", "an admin asked for this unit to become active")
		if n.cfg.Mode == Manual {
			n.tick()
			// The other unit agrees within a few heartbeats, or the claim ends (at most yieldFor).
			for n.m.Claiming() {
				n.mu.Unlock()
				time.Sleep(20 * time.Millisecond)
				n.mu.Lock()
			}
			if n.m.Role() == Active {
				return nil
			}
			err := n.m.ClaimLost()
			if err == nil {
				err = ErrNoAnswer
			}
			return fmt.Errorf("%w: %v", appliance.ErrConflict, err)
		}
	case Standby:
		n.m.StepDown(n.Now())
		n.event("warning", "an admin asked this unit to stand down")
	default:
		return fmt.Errorf("%w: role %q: active or standby", appliance.ErrBadInput, role)
	}
	n.tick() // act now, not at the next heartbeat
	return nil
}

// SetMaintenance implements appliance.Pair: a standby whose peer cannot be reached answers on the service
// address with its read-only mirror until the peer is back, this unit changes role, or an admin ends it.
func (n *Node) SetMaintenance(_ context.Context, on bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg == nil {
		return fmt.Errorf("%w: not paired", appliance.ErrConflict)
	}
	if on {
		now := n.Now()
		if n.m.Role() != Standby {
			return fmt.Errorf("%w: maintenance mode is for a standby unit (this one is %s)", appliance.ErrConflict, n.m.Role())
		}
		if !n.peer.seen.IsZero() && now.Sub(n.peer.seen) < n.cfg.timeout() {
			return fmt.Errorf("%w: the other unit answers: switch over instead", appliance.ErrConflict)
		}
		n.event("warning", "maintenance mode: this standby answers on the service address, read-only, until the other unit is back")
	} else if n.maintenance {
		n.event("info", "maintenance mode ended by an admin")
	}
	n.maintenance = on
	n.tick()
	return nil
}

// WitnessKey implements appliance.Pair.
func (n *Node) WitnessKey() (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg == nil {
		return "", fmt.Errorf("%w: not paired", appliance.ErrConflict)
	}
	return hex.EncodeToString(wire.WitnessKey(n.cfg.Key)), nil
}

// Secret is a key both units derive from the pair key for one purpose (the database's replication
// password); nil when unpaired.
func (n *Node) Secret(label string) []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg == nil {
		return nil
	}
	return wire.Derive(n.cfg.Key, "lawbox secret v1: "+label)
}

// PeerAddrs are the peer's addresses as it last announced them (none when unpaired).
func (n *Node) PeerAddrs() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg == nil {
		return nil
	}
	return slices.Clone(n.cfg.PeerAddrs)
}

// Names are this unit's and its partner's names in the pair (both "" when unpaired).
func (n *Node) Names() (self, peer string) {
	_, self, peer, _ = n.pairKey()
	return self, peer
}

// PeerTunnels reports whether the partner runs the pair link (netcfg/tunnel), as its last heartbeat said;
// a partner not heard since this unit started is taken to (the firmware of both units is the same but for
// the time of an update).
func (n *Node) PeerTunnels() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.peer.seen.IsZero() || wire.Tunnels(n.peer.proto)
}

// Role is the current role (single when unpaired).
func (n *Node) Role() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg == nil {
		return Single
	}
	return n.m.Role()
}

// Alone reports whether this unit may write its data without its partner: it is unpaired, or active and
// its partner cannot come back and serve an older copy (Machine.Alone). The documents volume asks it: its
// fence when the partner cannot be told to mark its copy outdated, its takeover when DRBD still sees the
// partner.
func (n *Node) Alone() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg == nil {
		return true
	}
	return n.m.Alone(n.inputs(n.Now()))
}

// Pair implements appliance.Pair.
func (n *Node) Pair() appliance.PairStatus {
	events, _ := n.Store.Events("pair", 50)
	n.mu.Lock()
	defer n.mu.Unlock()
	st := appliance.PairStatus{Name: n.Name, Role: Single, Rejected: map[string]int{}}
	for k, v := range n.rejected {
		st.Rejected[k] = v
	}
	for _, e := range events {
		st.Events = append(st.Events, appliance.Event{Time: e.Time, Level: e.Level, Message: e.Message})
	}
	c := n.cfg
	if c == nil {
		return st
	}
	now := n.Now()
	// Paired, the unit is known by the name it paired under, whatever its host name became since.
	st.Name, st.Paired, st.Role, st.Mode, st.VIP, st.VIPHeld, st.Maintenance = c.Name, true, n.m.Role(), c.Mode, c.VIP, n.vipHeld(), n.maintenance
	st.HeartbeatMS, st.TimeoutMS = c.HeartbeatMS, c.TimeoutMS
	alive := func(t time.Time) bool { return !t.IsZero() && now.Sub(t) < c.timeout() }
	p := &appliance.PairPeer{Name: c.Peer, Reachable: alive(n.peer.seen), LastSeen: n.peer.seen, Role: n.peer.role, Firmware: n.peer.firmware}
	if len(c.PeerAddrs) > 0 {
		p.Address = c.PeerAddrs[0]
	}
	for _, a := range c.PeerAddrs {
		seen := n.peer.paths[a]
		p.Paths = append(p.Paths, appliance.PairPath{Address: a, Reachable: alive(seen), LastSeen: seen})
	}
	if !p.Reachable {
		p.Role = ""
	}
	st.Peer = p
	if c.Witness != "" {
		st.Witness = &appliance.PairWitness{Address: c.Witness, Reachable: !n.witness.seen.IsZero() && now.Sub(n.witness.seen) < c.lease()+10*c.heartbeat(),
			LastSeen: n.witness.seen, Holder: n.witness.holder, LeaseUntil: n.witness.leaseUntil, Stale: n.witness.stale}
	}
	return st
}
