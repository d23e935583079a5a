package pair

import (
	"fmt"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance/witness"
)

// sim runs two units and a witness on one fake clock, with links that can be cut. Every tick each running
// unit sends heartbeats over the paths that are up, steps its machine, and asks the witness for the lease
// when it wants it and can reach it. check fails the test the instant both units are active.
type sim struct {
	t       *testing.T
	now     time.Time
	w       witness.Witness
	units   [2]*simUnit
	lan     bool // A-B over the office LAN
	cable   bool // A-B over the direct cable
	witness [2]bool
	lease   time.Duration
	margin  time.Duration
}

type simUnit struct {
	name        string
	m           *Machine
	down        bool
	peerSeen    time.Time
	peerRole    string
	peerHearsUs bool
	peerYields  bool
	peerClaims  bool
	peerEpoch   uint64
	peerClaimID uint64
	peerAck     uint64
	leaseUntil  time.Time
}

const (
	tick    = 100 * time.Millisecond
	timeout = 300 * time.Millisecond
)

func newSim(t *testing.T, mode string) *sim {
	s := &sim{t: t, now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), lan: true, cable: true, witness: [2]bool{true, true},
		lease: time.Second, margin: 200 * time.Millisecond}
	s.units[0] = &simUnit{name: "A", m: NewMachine(mode, timeout, true)}
	s.units[1] = &simUnit{name: "B", m: NewMachine(mode, timeout, false)}
	return s
}

func (s *sim) run(d time.Duration) {
	s.t.Helper()
	for end := s.now.Add(d); s.now.Before(end); s.now = s.now.Add(tick) {
		// Heartbeats first (they carry the role of the previous step).
		if s.lan || s.cable {
			for i, u := range s.units {
				p := s.units[1-i]
				if u.down || p.down {
					continue
				}
				p.peerSeen, p.peerRole = s.now, u.m.Role()
				p.peerHearsUs = u.m.HearsPeer(s.now, u.peerSeen)
				p.peerYields, p.peerClaims, p.peerEpoch = u.m.Yielding(), u.m.Claiming(), u.m.Epoch
				p.peerClaimID, p.peerAck = u.m.ClaimID(), u.m.Ack(u.inputs(s.now))
			}
		}
		for i, u := range s.units {
			if u.down {
				continue
			}
			was := u.m.Role()
			_, want := u.m.Step(u.inputs(s.now))
			if was == Active && u.m.Role() != Active && s.witness[i] {
				s.w.Release(u.name) // as the node does when it stands down
			}
			if want && s.witness[i] {
				s.ask(u, false)
			}
		}
		if a, b := s.units[0], s.units[1]; !a.down && !b.down && a.m.Role() == Active && b.m.Role() == Active {
			s.t.Fatalf("at %s both units are active", s.now.Format("15:04:05.000"))
		}
	}
}

// ask requests the lease as the node does.
func (s *sim) ask(u *simUnit, force bool) witness.Grant {
	bump := u.m.Bump(u.inputs(s.now))
	g := s.w.Request(u.name, u.m.Epoch, force, bump, s.now, s.lease)
	if g.Granted {
		u.leaseUntil = s.now.Add(s.lease - s.margin) // the unit's view ends before the witness's
		u.m.Granted(s.w.State.Epoch, bump)
	}
	return g
}

func (u *simUnit) inputs(now time.Time) Inputs {
	return Inputs{Now: now, PeerSeen: u.peerSeen, PeerRole: u.peerRole, PeerHearsUs: u.peerHearsUs,
		PeerYields: u.peerYields, PeerClaims: u.peerClaims, LeaseUntil: u.leaseUntil, PeerEpoch: u.peerEpoch,
		PeerClaimID: u.peerClaimID, PeerAck: u.peerAck, WinsTie: u.name == "A"}
}

func (s *sim) roles() string {
	var out string
	for _, u := range s.units {
		r := u.m.Role()
		if u.down {
			r = "down"
		}
		out += fmt.Sprintf("%s=%s ", u.name, r)
	}
	return out[:len(out)-1]
}

func (s *sim) want(roles string) {
	s.t.Helper()
	if got := s.roles(); got != roles {
		s.t.Fatalf("at %s: %s, want %s", s.now.Format("15:04:05.000"), got, roles)
	}
}

// restart brings a unit back (up) as a fresh process: standby, no lease, no memory of its peer; only its
// epoch is kept (the node saves it).
func (s *sim) restart(i int) {
	u := s.units[i]
	epoch := u.m.Epoch
	*u = simUnit{name: u.name, m: NewMachine(u.m.Mode, timeout, u.m.Preferred)}
	u.m.Epoch = epoch
}

func TestStartFailoverNoFailback(t *testing.T) {
	s := newSim(t, Auto)
	s.run(time.Second)
	s.want("A=active B=standby")

	s.units[0].down = true // kill -9 of the active unit
	start := s.now
	for s.units[1].m.Role() != Active {
		s.run(tick)
		if s.now.Sub(start) > 5*time.Second {
			t.Fatalf("no failover in 5 s: %s", s.roles())
		}
	}
	t.Logf("failover took %v (heartbeat timeout %v, lease %v)", s.now.Sub(start), timeout, s.lease)

	s.restart(0) // A comes back: it must not take the role back
	s.run(3 * time.Second)
	s.want("A=standby B=active")
}

func TestCableCutOnly(t *testing.T) {
	s := newSim(t, Auto)
	s.run(time.Second)
	s.cable = false // the LAN still carries heartbeats
	s.run(5 * time.Second)
	s.want("A=active B=standby")
}

func TestActiveIsolatedFromPeerAndWitness(t *testing.T) {
	s := newSim(t, Auto)
	s.run(time.Second)
	s.lan, s.cable, s.witness[0] = false, false, false // A alone on its side
	s.run(5 * time.Second)
	s.want("A=fenced B=active")
	s.lan, s.cable, s.witness[0] = true, true, true // the network heals: A stays out
	s.run(3 * time.Second)
	s.want("A=standby B=active")
}

func TestWitnessGoneWhilePeerAlive(t *testing.T) {
	s := newSim(t, Auto)
	s.run(time.Second)
	s.witness = [2]bool{false, false} // the office PC is switched off for the night
	s.run(10 * time.Second)
	s.want("A=active B=standby") // the peer vouches: service goes on
}

func TestPartitionWithWitnessUnreachable(t *testing.T) {
	s := newSim(t, Auto)
	s.run(time.Second)
	s.witness = [2]bool{false, false}
	s.lan, s.cable = false, false // and then the units lose each other too
	s.run(10 * time.Second)
	s.want("A=fenced B=standby") // nobody serves rather than two
	s.witness = [2]bool{true, true}
	s.run(3 * time.Second)
	if r := s.roles(); r != "A=fenced B=active" && r != "A=active B=standby" {
		t.Errorf("after the witness returned: %s, want exactly one active", r)
	}
}

func TestAsymmetricLink(t *testing.T) {
	// B stops hearing A while A still hears B (a one-way fault): B must not start while A still believes B
	// vouches for it.
	s := newSim(t, Auto)
	s.run(time.Second)
	s.witness[0] = false // A cannot renew: after a while only B's confirmation keeps it active
	s.run(3 * time.Second)
	s.want("A=active B=standby")
	for range 30 {
		// Deliver B->A only.
		s.now = s.now.Add(tick)
		a, b := s.units[0], s.units[1]
		a.peerSeen, a.peerRole, a.peerHearsUs = s.now, b.m.Role(), b.m.HearsPeer(s.now, b.peerSeen)
		for i, u := range s.units {
			_, want := u.m.Step(Inputs{Now: s.now, PeerSeen: u.peerSeen, PeerRole: u.peerRole, PeerHearsUs: u.peerHearsUs, LeaseUntil: u.leaseUntil})
			if want && s.witness[i] {
				s.ask(u, false)
			}
		}
		if a.m.Role() == Active && b.m.Role() == Active {
			t.Fatalf("both active at %s", s.now.Format("15:04:05.000"))
		}
	}
	if s.units[1].m.Role() != Active || s.units[0].m.Role() == Active {
		t.Errorf("after a one-way fault: %s, want B active and A not", s.roles())
	}
}

func TestManualMode(t *testing.T) {
	s := newSim(t, Manual)
	s.run(time.Second)
	s.want("A=standby B=standby") // nothing happens by itself
	if err := s.units[0].m.Activate(s.units[0].inputs(s.now), false); err != nil {
		t.Fatal(err)
	}
	s.want("A=standby B=standby") // B has not agreed yet
	s.run(300 * time.Millisecond)
	s.want("A=active B=standby")
	in := Inputs{Now: s.now, PeerSeen: s.units[1].peerSeen, PeerRole: s.units[1].peerRole}
	if err := s.units[1].m.Activate(in, false); err != ErrPeerActive {
		t.Errorf("activating B while A is active: %v", err)
	}
	// B's copy is still being made from A's: a switchover to it is refused, even forced, while A is there.
	unfit := in
	unfit.Unfit = true
	for _, force := range []bool{false, true} {
		if err := s.units[1].m.Activate(unfit, force); err != ErrUnfit {
			t.Errorf("activating B with an incomplete copy (force %v): %v", force, err)
		}
	}
	s.units[0].down = true
	s.run(2 * time.Second)
	s.want("A=down B=standby") // no automatic failover in manual mode
	in = Inputs{Now: s.now, PeerSeen: s.units[1].peerSeen, PeerRole: s.units[1].peerRole}
	if err := s.units[1].m.Activate(in, false); err != ErrPeerUnknown {
		t.Errorf("activating B with A unreachable, unforced: %v", err)
	}
	if err := s.units[1].m.Activate(in, true); err != nil {
		t.Errorf("forced: %v", err)
	}
	s.want("A=down B=active")
}

// Two admins press "make this unit active" on both units within one heartbeat (each unit sees the other
// standby): one claim gives way, never both active (sim.run fails the instant they are). One pressing while
// the other unit's claim is pending is refused; a claim the peer never answers ends with nothing changed.
func TestManualModeRace(t *testing.T) {
	s := newSim(t, Manual)
	s.run(time.Second)
	for _, u := range s.units {
		if err := u.m.Activate(u.inputs(s.now), false); err != nil {
			t.Fatal(err)
		}
	}
	s.run(time.Second)
	s.want("A=active B=standby")
	if err := s.units[1].m.ClaimLost(); err != ErrPeerClaims {
		t.Errorf("B's claim ended with %v", err)
	}

	s = newSim(t, Manual)
	s.run(time.Second)
	if err := s.units[1].m.Activate(s.units[1].inputs(s.now), false); err != nil {
		t.Fatal(err)
	}
	s.run(tick) // A hears B's claim
	if err := s.units[0].m.Activate(s.units[0].inputs(s.now), false); err != ErrPeerClaims {
		t.Errorf("A pressed while B's claim was pending: %v", err)
	}
	s.run(time.Second)
	s.want("A=standby B=active")

	// B's heartbeats stop reaching A while A claims (a one-way loss): A never takes an old agreement for it.
	s.units[1].m.StepDown(s.now)
	s.run(time.Second)
	old := s.units[0].peerAck
	if err := s.units[0].m.Activate(s.units[0].inputs(s.now), false); err != nil {
		t.Fatal(err)
	}
	s.units[0].peerAck = s.units[0].m.ClaimID() - 1 // an agreement to some other claim
	s.units[0].m.Step(s.units[0].inputs(s.now))
	s.want("A=standby B=standby")
	s.units[0].peerAck = old
	s.run(300 * time.Millisecond)
	s.want("A=active B=standby")

	s.units[0].m.StepDown(s.now)
	s.run(time.Second)
	s.units[1].down = true // gone before it could answer, and back up (not heard) only later
	if err := s.units[0].m.Activate(s.units[0].inputs(s.now), false); err != nil {
		t.Fatal(err)
	}
	s.run(11 * time.Second)
	s.want("A=standby B=down")
	if err := s.units[0].m.ClaimLost(); err != ErrNoAnswer {
		t.Errorf("an unanswered claim ended with %v", err)
	}
}

// In automatic mode a switchover can be asked from either unit: "make this unit active" on the standby, or
// "stand down" on the active one. The witness still decides, and the units are never both active.
func TestAutoSwitchoverBothWays(t *testing.T) {
	s := newSim(t, Auto)
	s.run(time.Second)
	s.want("A=active B=standby")
	if err := s.units[1].m.Activate(s.units[1].inputs(s.now), false); err != nil {
		t.Fatal(err)
	}
	s.run(2 * time.Second)
	s.want("A=standby B=active")
	s.units[1].m.StepDown(s.now) // and back, from the active side
	s.run(2 * time.Second)
	s.want("A=active B=standby")
	s.run(15 * time.Second) // B's yield runs out; nothing changes while A is active
	s.want("A=active B=standby")
}

func TestWitnessLease(t *testing.T) {
	var w witness.Witness
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	if g := w.Request("A", 0, false, false, t0, time.Second); !g.Granted || !g.Changed || w.State.Epoch != 1 {
		t.Fatalf("first request: %+v, epoch %d", g, w.State.Epoch)
	}
	if g := w.Request("B", 1, false, false, t0.Add(900*time.Millisecond), time.Second); g.Granted || g.Holder != "A" {
		t.Errorf("B got A's live lease (%+v)", g)
	}
	if g := w.Request("A", 1, false, false, t0.Add(900*time.Millisecond), time.Second); !g.Granted || g.Changed {
		t.Errorf("renewal: %+v", g)
	}
	if g := w.Request("B", 1, false, false, t0.Add(1850*time.Millisecond), time.Second); g.Granted {
		t.Error("B got the lease before A's renewal ran out")
	}
	if g := w.Request("B", 1, false, false, t0.Add(1900*time.Millisecond), time.Second); !g.Granted || w.State != (witness.WitnessState{Epoch: 2, Last: "B"}) {
		t.Errorf("B after A's lease expired: %+v, state %+v", g, w.State)
	}
	// A was not there while B was active: its data is older. Refused, unless forced.
	w.Release("B")
	if g := w.Request("A", 1, false, false, t0.Add(5*time.Second), time.Second); g.Granted || !g.Stale {
		t.Errorf("stale A: %+v", g)
	}
	if g := w.Request("A", 1, true, false, t0.Add(5*time.Second), time.Second); !g.Granted || w.State != (witness.WitnessState{Epoch: 3, Last: "A"}) {
		t.Errorf("forced A: %+v, state %+v", g, w.State)
	}
	// A witness that lost its memory adopts the epoch of the first unit it grants.
	w = witness.Witness{}
	if g := w.Request("B", 7, false, false, t0, time.Second); !g.Granted || w.State.Epoch != 8 {
		t.Errorf("new witness: %+v, state %+v", g, w.State)
	}
}

// staleA plays A active, B following; A dies, B takes over; B dies; A comes back alone and waits d.
func staleA(t *testing.T, d time.Duration) *sim {
	s := newSim(t, Auto)
	s.run(time.Second)
	s.want("A=active B=standby")
	s.units[0].down = true
	s.run(2 * time.Second)
	s.want("A=down B=active")
	s.units[1].down = true
	s.restart(0)
	s.run(d)
	s.want("A=standby B=down")
	return s
}

// TestStaleUnitStaysOut is the rejoin that used to lose data: A active, B follows; A dies, B takes over and
// writes; B dies; A comes back alone. A must not become active (its copy misses B's writes, and B's later
// rejoin would rewind them away). When B returns, B (the newer) becomes active and A follows it.
func TestStaleUnitStaysOut(t *testing.T) {
	s := staleA(t, 10*time.Second)
	if g := s.ask(s.units[0], false); !g.Stale {
		t.Fatalf("the witness did not say why: %+v", g)
	}
	s.restart(1)
	s.run(2 * time.Second)
	s.want("A=standby B=active") // B is not preferred, but it has the newer data
	if a, b := s.units[0].m.Epoch, s.units[1].m.Epoch; a != b {
		t.Fatalf("A follows B but its epoch is %d, B's %d", a, b)
	}
	// Now A is current again: B dies, A takes over.
	s.units[1].down = true
	s.run(2 * time.Second)
	s.want("A=active B=down")
}

// TestForceStaleUnit: B is lost for good; an admin forces A active anyway.
func TestForceStaleUnit(t *testing.T) {
	s := staleA(t, 3*time.Second)
	a := s.units[0]
	if err := a.m.Activate(a.inputs(s.now), true); err != nil {
		t.Fatal(err)
	}
	if g := s.ask(a, true); !g.Granted {
		t.Fatalf("forced request: %+v", g)
	}
	s.run(time.Second)
	s.want("A=active B=down")
}

// TestUnfitUnitNeverAsks: a standby whose database copy is incomplete (a rewind cut short) does not take
// over when the active unit dies; it does when an admin claims the role.
func TestUnfitUnitNeverAsks(t *testing.T) {
	s := newSim(t, Auto)
	s.run(time.Second)
	s.want("A=active B=standby")
	s.units[0].down = true
	b := s.units[1]
	for range 30 {
		s.now = s.now.Add(tick)
		in := b.inputs(s.now)
		in.Unfit = true
		if _, want := b.m.Step(in); want {
			t.Fatal("an unfit unit asked for the lease")
		}
	}
	s.want("A=down B=standby")
	if err := b.m.Activate(b.inputs(s.now), false); err != nil {
		t.Fatal(err)
	}
	in := b.inputs(s.now)
	in.Unfit = true
	if _, want := b.m.Step(in); !want {
		t.Fatal("an admin's claim did not ask for the lease")
	}
}

// TestLeftStandbyIsStale: the standby dies, the active unit goes on writing alone, then dies; the standby
// comes back alone. It followed the active unit's epoch, but the active unit raised it when its peer went
// away, so the returning standby is refused; when A returns, A (the newer) becomes active and B follows.
func TestLeftStandbyIsStale(t *testing.T) {
	s := newSim(t, Auto)
	s.run(time.Second)
	s.want("A=active B=standby")
	s.units[1].down = true
	s.run(2 * time.Second) // A alone: it raises the epoch
	s.want("A=active B=down")
	if a, b := s.units[0].m.Epoch, s.units[1].m.Epoch; a <= b {
		t.Fatalf("A alone did not raise the epoch: A %d, B %d", a, b)
	}
	s.units[0].down = true
	s.restart(1)
	s.run(5 * time.Second)
	s.want("A=down B=standby")
	s.restart(0)
	s.run(2 * time.Second)
	s.want("A=active B=standby")
	// A blip of the peer raises the epoch once, and the standby takes it up again.
	s.lan, s.cable = false, false
	s.run(2 * time.Second)
	s.lan, s.cable = true, true
	s.run(time.Second)
	s.want("A=active B=standby")
	if a, b := s.units[0].m.Epoch, s.units[1].m.Epoch; a != b {
		t.Fatalf("after the link came back: A %d, B %d", a, b)
	}
}

// The documents' fencing lets the active unit write without its peer only once the peer cannot come back
// and serve an older copy: the witness raised the epoch for it. A unit cut off from the witness too never is.
func TestAloneOnceTheWitnessRaisedTheEpoch(t *testing.T) {
	s := newSim(t, Auto)
	s.run(time.Second)
	a, b := s.units[0], s.units[1]
	if a.m.Alone(a.inputs(s.now)) || b.m.Alone(b.inputs(s.now)) {
		t.Fatal("alone while both units hear each other")
	}
	s.lan, s.cable = false, false // the units lose each other; both reach the witness
	s.run(timeout / 2)
	if a.m.Alone(a.inputs(s.now)) {
		t.Error("A alone before the witness raised the epoch")
	}
	s.run(5 * time.Second)
	s.want("A=active B=standby")
	if !a.m.Alone(a.inputs(s.now)) || b.m.Alone(b.inputs(s.now)) {
		t.Errorf("after the witness raised A's epoch: A alone %v, B alone %v; want A only",
			a.m.Alone(a.inputs(s.now)), b.m.Alone(b.inputs(s.now)))
	}

	s = newSim(t, Auto)
	s.run(time.Second)
	a = s.units[0]
	s.lan, s.cable, s.witness[0] = false, false, false // A alone on its side
	for range 50 {
		s.run(100 * time.Millisecond)
		if a.m.Alone(a.inputs(s.now)) {
			t.Fatalf("A, cut off from its peer and the witness, alone at %s (%s)", s.now.Format("15:04:05.000"), s.roles())
		}
	}
	s.want("A=fenced B=active")
}

func TestAloneInManualModeOnceThePeerIsNotHeard(t *testing.T) {
	m := NewMachine(Manual, timeout, true)
	m.role = Active
	now := time.Now()
	if m.Alone(Inputs{Now: now, PeerSeen: now.Add(-timeout / 2)}) {
		t.Error("alone while the peer is heard")
	}
	if !m.Alone(Inputs{Now: now, PeerSeen: now.Add(-timeout)}) {
		t.Error("not alone with the peer unheard for the timeout")
	}
	m.role = Standby
	if m.Alone(Inputs{Now: now}) {
		t.Error("a standby alone")
	}
}
