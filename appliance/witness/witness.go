// Package witness is the third vote of a pair (cmd/witness): it grants a short lease to one unit at a
// time and remembers who held it last, over the pair's wire format.
package witness

import "time"

// Witness grants the lease to one unit at a time. It runs in cmd/witness; the pair's role tests run it on
// their fake clock.
//
// It also remembers which unit held the lease last and an epoch that rises each time the lease goes to
// another unit. A unit learns the epoch from the witness while it is active and from the active unit's
// heartbeats while it follows it; a unit whose epoch is older than the witness's missed a period in which
// the other unit was active (and wrote), so its copy is stale: it is refused the lease, lest it serve old
// data and the newer unit later rewind its own writes away to follow it. An admin may force it (the other
// unit is lost for good).
type Witness struct {
	holder  string
	expires time.Time
	State   WitnessState
}

// WitnessState is what the witness keeps across restarts.
type WitnessState struct {
	Epoch uint64 `json:"epoch"`
	Last  string `json:"last"` // the unit that held the lease last: its data is the newest
}

// Grant is the witness's answer to a lease request.
type Grant struct {
	Granted bool
	Holder  string // who holds the lease now
	Stale   bool   // refused: the requester's epoch is older than the last holder's
	Changed bool   // the lease went to another unit: State changed (save it)
}

// Request asks for (or renews) the lease for d from now. It is granted if nobody holds it, the requester
// holds it, or the holder's lease has expired — and the requester is not stale (or forces). bump raises
// the epoch for the holder itself: its peer is gone, so from now on only the holder has the latest data
// (the peer that left must not come back alone and serve its older copy).
func (w *Witness) Request(unit string, epoch uint64, force, bump bool, now time.Time, d time.Duration) Grant {
	if w.holder != "" && w.holder != unit && now.Before(w.expires) {
		return Grant{Holder: w.holder}
	}
	if unit != w.State.Last && epoch < w.State.Epoch && !force {
		return Grant{Stale: true}
	}
	g := Grant{Granted: true, Holder: unit}
	if unit != w.State.Last || bump {
		w.State.Epoch, w.State.Last, g.Changed = max(w.State.Epoch, epoch)+1, unit, true
	}
	w.holder, w.expires = unit, now.Add(d)
	return g
}

// Release gives the lease up early (a unit standing down).
func (w *Witness) Release(unit string) {
	if w.holder == unit {
		w.holder = ""
	}
}

// Holder is who holds an unexpired lease ("" for nobody).
func (w *Witness) Holder(now time.Time) string {
	if !now.Before(w.expires) {
		return ""
	}
	return w.holder
}
