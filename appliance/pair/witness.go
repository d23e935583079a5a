package pair

import "time"

// Witness grants the lease to one unit at a time. It runs in cmd/witness; it is here so the role tests can
// run it on the same fake clock.
type Witness struct {
	holder  string
	expires time.Time
}

// Request asks for (or renews) the lease for d from now. It is granted if nobody holds it, the requester
// holds it, or the holder's lease has expired.
func (w *Witness) Request(unit string, now time.Time, d time.Duration) (granted bool, holder string) {
	if w.holder == "" || w.holder == unit || !now.Before(w.expires) {
		w.holder, w.expires = unit, now.Add(d)
		return true, unit
	}
	return false, w.holder
}

// Release gives the lease up early (a unit standing down).
func (w *Witness) Release(unit string) {
	if w.holder == unit {
		w.holder = ""
	}
}
