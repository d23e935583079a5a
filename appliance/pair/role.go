// Package pair decides which of two units is active: the one that holds the service address and the
// writable database. Two units cannot tell "peer dead" from "link cut", so in automatic mode a unit is
// active only while it holds a lease from a third party, the witness (cmd/witness, a small program for any
// office PC). The witness grants the lease to one unit at a time; a unit's own idea of when its lease ends is
// always earlier than the witness's (it counts from when it asked, the witness from when it answered), so
// the two never overlap. An active unit that loses the witness stays active only while its peer confirms it
// hears it (the peer then never takes over); one that loses both fences itself. Failback is never automatic.
//
// Timing: a unit announces "I hear you" only while it heard the peer within PeerTimeout/2; an active unit
// trusts that for PeerTimeout; a standby takes over only after 2×PeerTimeout of silence. So the active unit's
// last confirmation runs out at least PeerTimeout/2 before the standby may start.
//
// This file is the role state machine, pure and clock-free: the network and the witness feed it Inputs.
package pair

import "time"

// Roles.
const (
	Single  = "single"  // not paired
	Active  = "active"  // holds the service address
	Standby = "standby" // follows; takes over only with the witness's lease
	Fenced  = "fenced"  // was active, lost the lease: holds nothing until it gets the lease back
)

// Modes.
const (
	Auto   = "auto"   // failover by itself, with the witness
	Manual = "manual" // an admin decides; no witness
)

// Inputs is what a unit knows at one instant.
type Inputs struct {
	Now         time.Time
	PeerSeen    time.Time // last authenticated heartbeat from the peer, over any path
	PeerRole    string    // the role it announced then
	PeerHearsUs bool      // that heartbeat said the peer heard us within PeerTimeout/2
	PeerYields  bool      // that heartbeat said the peer stood down for us (a switchover)
	PeerClaims  bool      // that heartbeat said an admin asked the peer to become active
	PeerClaimID uint64    // and which request that was
	PeerAck     uint64    // manual mode: the claim of this unit that heartbeat agreed to
	WinsTie     bool      // manual mode: of two claims at the same moment, this unit's stands
	LeaseUntil  time.Time // end of the witness lease this unit holds, by its own (conservative) clock
	PeerEpoch   uint64    // the witness epoch the peer announced (witness.go)
	Unfit       bool      // this unit's data cannot serve (its database or documents copy is incomplete): never ask
}

// HearsPeer is what a unit puts in its heartbeats: whether it heard the peer recently enough to vouch.
func (m *Machine) HearsPeer(now, peerSeen time.Time) bool {
	return !peerSeen.IsZero() && now.Sub(peerSeen) < m.PeerTimeout/2
}

// Machine is one unit's role.
type Machine struct {
	Mode        string
	PeerTimeout time.Duration // heartbeats missed for this long: the peer is gone
	Preferred   bool          // when neither unit is active (both just started), this one asks first
	// Epoch is the witness epoch this unit's data is from (witness.go): learnt from the witness while
	// active, from the active peer while following it. The node keeps it across restarts.
	Epoch uint64

	role       string
	bumped     bool      // the witness raised the epoch for this active unit since its peer went away
	yieldSince time.Time // set while this unit stands aside for its peer (a switchover), zero otherwise
	claimSince time.Time // set while an admin's "make this unit active" is pending
	claimLost  error     // why the last claim ended without this unit becoming active
	// when this unit first saw the peer's current yield
	peerYieldSeen time.Time
}

// yieldFor bounds a switchover: if the peer has not taken over by then, this unit may be active again.
const yieldFor = 10 * time.Second

// Yielding is what a unit puts in its heartbeats: it stepped down so the peer may take over.
func (m *Machine) Yielding() bool { return !m.yieldSince.IsZero() }

// Claiming is what a unit puts in its heartbeats: an admin asked for it to become active.
func (m *Machine) Claiming() bool { return !m.claimSince.IsZero() }

// ClaimID tells this claim from an earlier one (0: none), so that an agreement is never taken for a newer
// claim than the one it answered.
func (m *Machine) ClaimID() uint64 {
	if !m.Claiming() {
		return 0
	}
	return uint64(m.claimSince.UnixNano())
}

// ClaimLost is why the last claim ended without this unit becoming active (nil if it did, or is pending).
func (m *Machine) ClaimLost() error { return m.claimLost }

// Ack is what a unit puts in its heartbeats in manual mode: the peer's claim it agrees to, since it is
// neither active nor claiming itself (and then refuses to claim until that claim ended); 0 for none.
func (m *Machine) Ack(in Inputs) uint64 {
	alive := !in.PeerSeen.IsZero() && in.Now.Sub(in.PeerSeen) < m.PeerTimeout
	if m.Mode != Manual || m.role == Active || m.Claiming() || !alive || !in.PeerClaims {
		return 0
	}
	return in.PeerClaimID
}

// NewMachine starts as standby (or keeps what it was: a unit that restarts never assumes it is active).
func NewMachine(mode string, peerTimeout time.Duration, preferred bool) *Machine {
	return &Machine{Mode: mode, PeerTimeout: peerTimeout, Preferred: preferred, role: Standby}
}

// Role is the current role.
func (m *Machine) Role() string { return m.role }

// Step takes the inputs and returns the new role and whether the unit should ask the witness for the lease
// (or renew it).
func (m *Machine) Step(in Inputs) (role string, wantLease bool) {
	silence := in.Now.Sub(in.PeerSeen)
	peerAlive := !in.PeerSeen.IsZero() && silence < m.PeerTimeout
	peerGone := in.PeerSeen.IsZero() || silence >= 2*m.PeerTimeout
	peerActive := peerAlive && in.PeerRole == Active
	leased := in.Now.Before(in.LeaseUntil)
	if peerAlive {
		m.bumped = false
	}
	if (peerActive || peerAlive && in.PeerYields) && in.PeerEpoch > m.Epoch {
		// Following the active unit, or taken over from it in a switchover (the database waits for
		// the last of its stream): this unit's copy becomes its.
		m.Epoch = in.PeerEpoch
	}

	// A yield ends when the peer took over, when the peer yielded back after this unit did (the latest
	// stand-down wins), or after yieldFor.
	if peerAlive && in.PeerYields {
		if m.peerYieldSeen.IsZero() {
			m.peerYieldSeen = in.Now
		}
	} else {
		m.peerYieldSeen = time.Time{}
	}
	if m.Yielding() && (peerActive || m.peerYieldSeen.After(m.yieldSince) || in.Now.Sub(m.yieldSince) > yieldFor) {
		m.yieldSince = time.Time{}
	}
	if m.Claiming() && m.role != Active && in.Now.Sub(m.claimSince) > yieldFor {
		m.claimSince, m.claimLost = time.Time{}, ErrNoAnswer
	}
	if m.role == Active {
		m.claimSince = time.Time{}
	}
	if m.Mode == Manual {
		// Only an admin changes roles (Activate / StepDown); an active unit never stands down by itself,
		// and a standby never takes over by itself. With the peer alive, "make active" is a claim that
		// becomes the role only once the peer agreed to that very claim while neither active nor claiming
		// (Ack): two admins pressing at once on both units never make both active; one claim gives way.
		if m.Claiming() {
			switch {
			case peerAlive && in.PeerAck == m.ClaimID():
				m.role, m.claimSince = Active, time.Time{}
			case peerActive:
				m.claimSince, m.claimLost = time.Time{}, ErrPeerActive
			case peerAlive && in.PeerClaims && !in.WinsTie:
				m.claimSince, m.claimLost = time.Time{}, ErrPeerClaims
			}
		}
		return m.role, false
	}
	switch m.role {
	case Active:
		vouched := peerAlive && in.PeerHearsUs && in.PeerRole != Active
		if peerAlive && in.PeerClaims {
			m.role, m.yieldSince = Standby, in.Now // a switchover asked from the other unit
			return m.role, false
		}
		if !leased && !vouched {
			m.role = Fenced // lost the witness and the peer: stop serving before anyone else may start
		}
		return m.role, true
	case Fenced, Standby:
		mayAsk := false
		switch {
		case peerActive:
			m.role = Standby // never compete with a live active peer (and never fail back)
			return m.role, false
		case peerGone:
			mayAsk = true // silent for 2×PeerTimeout: the peer is down or cut off
		case !peerAlive:
			mayAsk = false // silent, but not long enough yet
		default:
			// Both alive, neither active (first start, both fenced, or a switchover): the one with the newer
			// data asks (the witness would refuse the other); at equal epochs the preferred, the fenced or
			// the claiming one, or the one its peer stood down for; never one that yields.
			if m.Epoch != in.PeerEpoch {
				mayAsk = !m.Yielding() && m.Epoch > in.PeerEpoch
			} else {
				mayAsk = !m.Yielding() && (m.Preferred || m.role == Fenced || m.Claiming() || in.PeerYields)
			}
		}
		if in.Unfit && !m.Claiming() {
			mayAsk = false
		}
		if mayAsk && leased {
			m.role = Active
		}
		return m.role, mayAsk
	}
	return m.role, false
}

// Bump is whether this active unit's next lease request must raise the witness epoch: its peer is gone
// (and may come back alone later with a copy that misses what this unit writes from now on).
func (m *Machine) Bump(in Inputs) bool {
	return m.role == Active && !m.bumped && (in.PeerSeen.IsZero() || in.Now.Sub(in.PeerSeen) >= 2*m.PeerTimeout)
}

// Alone reports whether this active unit may write without its peer: the peer cannot come back and serve
// a copy older than this unit's. With a witness, once the witness raised the epoch for this unit after the
// peer went away (the peer's lease requests are refused from then on); in manual mode, once the peer is
// not heard (only an admin makes it active then, warned that this unit may still be serving).
func (m *Machine) Alone(in Inputs) bool {
	if m.role != Active {
		return false
	}
	if m.Mode == Manual {
		return in.PeerSeen.IsZero() || in.Now.Sub(in.PeerSeen) >= m.PeerTimeout
	}
	return m.bumped
}

// Granted records the witness's grant: its epoch, and that a bump asked for is done.
func (m *Machine) Granted(epoch uint64, bumped bool) {
	m.Epoch = max(m.Epoch, epoch)
	m.bumped = m.bumped || bumped
}

// Activate is "make this unit active". In automatic mode it asks the active peer to hand over (the
// witness still decides). In manual mode it refuses while the peer is alive and active; when the peer is
// unreachable, force must be set (the admin has been warned that the peer may still be serving); when it
// is alive, this unit claims the role and becomes active once the peer agreed (see Step).
func (m *Machine) Activate(in Inputs, force bool) error {
	peerAlive := !in.PeerSeen.IsZero() && in.Now.Sub(in.PeerSeen) < m.PeerTimeout
	if in.Unfit && m.role != Active && peerAlive {
		return ErrUnfit // the other unit holds the complete copy and is there to serve it
	}
	if m.Mode == Auto {
		if m.role != Active {
			m.claimSince, m.yieldSince = in.Now, time.Time{}
		}
		return nil
	}
	if peerAlive && in.PeerRole == Active {
		return ErrPeerActive
	}
	if peerAlive && in.PeerClaims {
		return ErrPeerClaims
	}
	if !peerAlive && !force {
		return ErrPeerUnknown
	}
	m.claimLost = nil
	if peerAlive && m.role != Active {
		m.claimSince = in.Now // the peer's agreement makes it active (Step)
		return nil
	}
	m.role = Active
	return nil
}

// StepDown makes an active unit standby: in manual mode the first half of a switchover, in automatic
// mode a hand-over (the peer takes over, this unit does not ask again for a while).
func (m *Machine) StepDown(now time.Time) {
	if m.role == Active {
		m.role, m.yieldSince = Standby, now
	}
	m.claimSince = time.Time{}
}
