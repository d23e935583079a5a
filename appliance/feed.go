package appliance

import "sync"

// Feed is a value one part of the unit publishes and others follow: they read it at once (never waiting
// on the publisher's own work, such as the pair's heartbeats) or wait for its next change. The zero Feed
// holds T's zero value.
type Feed[T comparable] struct {
	mu      sync.Mutex
	v       T
	changed chan struct{} // closed at the next change, then replaced
}

// Get is the value now.
func (f *Feed[T]) Get() T {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.v
}

// Watch is the value now and a channel closed when it changes from that value.
func (f *Feed[T]) Watch() (T, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return f.v, f.changed
}

// Set publishes v; the watchers wake when it differs from the value they saw. It reports whether it did.
func (f *Feed[T]) Set(v T) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v == f.v {
		return false
	}
	f.v = v
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
	return true
}

// PairRole is this unit's role in its pair, as the pair's role machine decides it; the database, the
// documents, the file shares and the backups follow it (a Feed the pair publishes).
type PairRole string

// Pair roles.
const (
	PairSingle  PairRole = "single"  // not paired: the unit serves alone
	PairActive  PairRole = "active"  // holds the service address: production database, the documents' primary
	PairStandby PairRole = "standby" // follows the active unit; takes over only with the witness's lease
	PairFenced  PairRole = "fenced"  // was active, lost the lease: holds nothing until it gets it back
)

// Serves reports whether a unit in role r serves the office: alone, or as the pair's active unit. The zero
// role (a feed nobody published to yet) does not.
func (r PairRole) Serves() bool { return r == PairSingle || r == PairActive }

// Paired reports whether role r is a pair's (the zero role is not known to be).
func (r PairRole) Paired() bool { return r == PairActive || r == PairStandby || r == PairFenced }
