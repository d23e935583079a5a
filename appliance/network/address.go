package network

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/netcfg/vipconn"
)

// Holder does the kernel's side of holding one address (netcfg/vip.Address).
type Holder interface {
	Hold() error
	Announce() error
	Drop() error
	Conns() ([]vipconn.Conn, error) // the clients' connections to it here
	Tickle(c []vipconn.Conn) error  // make those clients of the previous holder see their connection is gone
}

// ServiceAddress holds the pair's service address as the pair asks (Want), on its own goroutine, as
// Talos's VIP operator does: the address added, announced again over two seconds (a switch or a client
// that missed one gets the next), the previous holder's clients tickled, the clients' connections listed
// every second for the partner; dropped when the pair says so. The pair never waits on netlink, and the
// network part's own configuration keeps the address (Keep).
type ServiceAddress struct {
	Log *slog.Logger
	New func(netip.Prefix) Holder
	// Event tells the admin of a failure (the pair's events); nil: the log only. Never called with mu held.
	Event func(level, msg string)
	Now   func() time.Time // time.Now

	mu    sync.Mutex
	want  appliance.AddressRequest
	wake  chan struct{}
	held  bool
	conns []vipconn.Conn
}

// announceAfter: when, after taking the address, it is announced again.
var announceAfter = []time.Duration{200 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}

const (
	connsEvery = time.Second            // how often the clients' connections are listed while held
	retryEvery = 100 * time.Millisecond // a refused change is tried again (a heartbeat)
	idle       = time.Minute
)

// Want asks for req. Only a change of address or of holding wakes the holder; the tickle list is read
// when the address is taken.
func (s *ServiceAddress) Want(req appliance.AddressRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := req.Prefix != s.want.Prefix || req.Hold != s.want.Hold
	s.want = req
	if changed && s.wake != nil {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Held reports whether this unit holds the address now.
func (s *ServiceAddress) Held() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// Conns lists the clients' connections to the address, as last listed (none while not held).
func (s *ServiceAddress) Conns() []vipconn.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Keep is the address the network part must not remove: the pair's, held or about to be.
func (s *ServiceAddress) Keep() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.want.Prefix.IsValid() {
		return nil
	}
	return []netip.Prefix{s.want.Prefix}
}

// holding is the Run goroutine's own state.
type holding struct {
	prefix netip.Prefix
	h      Holder
	held   bool
	dirty  bool        // a previous run of the unit's parts may have left the address: dropped unless held
	due    []time.Time // announcements still to make
	tickle []vipconn.Conn
	listed time.Time // when the connections were last listed
}

// Run carries out the requests until ctx ends, then drops the address.
func (s *ServiceAddress) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	s.mu.Lock()
	s.wake = wake
	s.mu.Unlock()
	var st holding
	defer func() {
		if st.h != nil && (st.held || st.dirty) {
			if err := st.h.Drop(); err != nil {
				s.Log.Error("drop the service address", "err", err)
			}
			s.set(false, nil)
		}
	}()
	for {
		wait := s.pass(&st, s.now())
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-time.After(wait):
		}
	}
}

func (s *ServiceAddress) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *ServiceAddress) set(held bool, conns []vipconn.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held, s.conns = held, conns
}

func (s *ServiceAddress) event(level, msg string, err error) {
	s.Log.Error(msg, "err", err)
	if s.Event != nil {
		s.Event(level, msg)
	}
}

// pass brings the address to what is wanted and says how long until the next pass is due.
func (s *ServiceAddress) pass(st *holding, now time.Time) time.Duration {
	s.mu.Lock()
	want := s.want
	s.mu.Unlock()
	if want.Prefix != st.prefix {
		if st.h != nil && (st.held || st.dirty) {
			if err := st.h.Drop(); err != nil {
				s.event("critical", "could not drop the previous service address: it tries again; restart this unit if this stays (the log says why)", err)
				return retryEvery
			}
		}
		*st = holding{prefix: want.Prefix, dirty: want.Prefix.IsValid()}
		if st.dirty {
			st.h = s.New(want.Prefix)
		}
		s.set(false, nil)
	}
	switch {
	case st.h == nil:
		return idle
	case want.Hold && !st.held:
		if err := st.h.Hold(); err != nil {
			s.event("critical", "could not take the service address: the unit's network refused it; it tries again at every heartbeat (the log says why)", err)
			return retryEvery
		}
		st.held, st.dirty, st.tickle, st.listed = true, false, want.Tickle, time.Time{}
		st.due = st.due[:0]
		for _, d := range announceAfter {
			st.due = append(st.due, now.Add(d))
		}
		s.set(true, nil) // held from the moment the kernel answers for it, before the tickles (slow under TCG)
		s.tickleClients(st)
	case !want.Hold && (st.held || st.dirty):
		if err := st.h.Drop(); err != nil {
			s.event("critical", "could not drop the service address: it tries again at every heartbeat; restart this unit if this stays (the log says why)", err)
			return retryEvery
		}
		st.held, st.dirty, st.due, st.tickle = false, false, nil, nil
		s.set(false, nil)
	}
	if !st.held {
		return idle
	}
	if len(st.due) > 0 && !now.Before(st.due[0]) {
		st.due = st.due[1:]
		if err := st.h.Announce(); err != nil {
			s.Log.Warn("announce the service address", "err", err)
		}
		s.tickleClients(st)
	}
	if now.Sub(st.listed) >= connsEvery {
		st.listed = now
		conns, _ := st.h.Conns() // best effort: without the kernel's tcp_diag the other unit cannot tickle
		s.set(true, conns)
	}
	wait := st.listed.Add(connsEvery).Sub(now)
	if len(st.due) > 0 {
		wait = min(wait, st.due[0].Sub(now))
	}
	return max(wait, time.Millisecond)
}

// tickleClients tickles the previous holder's clients (vip.Address.Tickle) when the address is taken and
// at each announcement; after the last, they are forgotten.
func (s *ServiceAddress) tickleClients(st *holding) {
	if len(st.tickle) == 0 {
		return
	}
	if err := st.h.Tickle(st.tickle); err != nil {
		s.Log.Warn("tickle the previous holder's clients", "err", err)
	}
	if len(st.due) == 0 {
		st.tickle = nil
	}
}
