package network

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/netcfg/vipconn"
)

// kernel records what the holder asked of one address, and refuses when told to.
type kernel struct {
	prefix netip.Prefix
	calls  *[]string
	refuse *error
	conns  []vipconn.Conn
}

func (k *kernel) do(what string) error {
	*k.calls = append(*k.calls, what+" "+k.prefix.String())
	return *k.refuse
}
func (k *kernel) Hold() error                    { return k.do("hold") }
func (k *kernel) Announce() error                { return k.do("announce") }
func (k *kernel) Drop() error                    { return k.do("drop") }
func (k *kernel) Conns() ([]vipconn.Conn, error) { return k.conns, nil }
func (k *kernel) Tickle(c []vipconn.Conn) error {
	return k.do(fmt.Sprintf("tickle %d", len(c)))
}

// The service address's holder, pass by pass on a clock of its own: an address left by a previous run is
// dropped at first sight; taken, it is announced four times over two seconds and the previous holder's
// clients are tickled with each; a refused change is tried again at the next heartbeat and told once as
// an event; a new address drops the old one first; the clients' connections are listed while held.
func TestServiceAddressHolder(t *testing.T) {
	var calls, events []string
	var refuse error
	client := vipconn.Conn{Port: 5432, Client: netip.MustParseAddrPort("192.0.2.30:40000")}
	s := &ServiceAddress{Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		New: func(p netip.Prefix) Holder {
			return &kernel{prefix: p, calls: &calls, refuse: &refuse, conns: []vipconn.Conn{client}}
		},
		Event: func(level, msg string) { events = append(events, level) }}
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	var st holding
	step := func(d time.Duration) time.Duration { now = now.Add(d); return s.pass(&st, now) }
	expect := func(what string, want ...string) {
		t.Helper()
		if !slices.Equal(calls, want) {
			t.Fatalf("%s: calls %q, want %q", what, calls, want)
		}
		calls = nil
	}
	a, b := netip.MustParsePrefix("192.0.2.100/24"), netip.MustParsePrefix("192.0.2.101/24")

	if w := step(0); w != idle || len(calls) != 0 || s.Keep() != nil {
		t.Fatalf("nothing asked: wait %v, calls %q, keep %v", w, calls, s.Keep())
	}
	s.Want(appliance.AddressRequest{Prefix: a})
	step(0)
	expect("an address not held at start", "drop 192.0.2.100/24")
	if k := s.Keep(); !slices.Equal(k, []netip.Prefix{a}) {
		t.Errorf("keep = %v, want the service address even while not held", k)
	}
	step(time.Second)
	expect("nothing changed")

	s.Want(appliance.AddressRequest{Prefix: a, Hold: true, Tickle: []vipconn.Conn{client}})
	if w := step(0); w != announceAfter[0] || !s.Held() {
		t.Fatalf("taken: next pass in %v (want %v), held %v", w, announceAfter[0], s.Held())
	}
	expect("taken", "hold 192.0.2.100/24", "tickle 1 192.0.2.100/24")
	if c := s.Conns(); !slices.Equal(c, []vipconn.Conn{client}) {
		t.Errorf("conns = %v", c)
	}
	for _, d := range []time.Duration{200 * time.Millisecond, 300 * time.Millisecond, 500 * time.Millisecond, time.Second} {
		step(d) // to 0.2, 0.5, 1 and 2 s
	}
	expect("announced", "announce 192.0.2.100/24", "tickle 1 192.0.2.100/24", "announce 192.0.2.100/24", "tickle 1 192.0.2.100/24",
		"announce 192.0.2.100/24", "tickle 1 192.0.2.100/24", "announce 192.0.2.100/24", "tickle 1 192.0.2.100/24")
	if w := step(10 * time.Second); w != connsEvery {
		t.Errorf("held, nothing due: next pass in %v, want %v (the connections)", w, connsEvery)
	}
	expect("after the announcements")

	refuse = errors.New("operation not permitted")
	s.Want(appliance.AddressRequest{Prefix: a})
	for range 3 {
		if w := step(retryEvery); w != retryEvery || !s.Held() {
			t.Fatalf("a refused drop: next pass in %v, held %v", w, s.Held())
		}
	}
	expect("drop refused", "drop 192.0.2.100/24", "drop 192.0.2.100/24", "drop 192.0.2.100/24")
	refuse = nil
	step(retryEvery)
	expect("dropped", "drop 192.0.2.100/24")
	if s.Held() || s.Conns() != nil {
		t.Errorf("dropped: held %v, conns %v", s.Held(), s.Conns())
	}
	if !slices.Equal(events, []string{"critical", "critical", "critical"}) {
		t.Errorf("events %q: each refusal is told (the pair's log keeps one of a repeated message)", events)
	}

	s.Want(appliance.AddressRequest{Prefix: a, Hold: true})
	step(0)
	expect("taken again, nobody to tickle", "hold 192.0.2.100/24")
	s.Want(appliance.AddressRequest{Prefix: b, Hold: true})
	step(0)
	expect("another address", "drop 192.0.2.100/24", "hold 192.0.2.101/24")
	s.Want(appliance.AddressRequest{})
	if w := step(0); w != idle || s.Held() || s.Keep() != nil {
		t.Errorf("unpaired: wait %v, held %v, keep %v", w, s.Held(), s.Keep())
	}
	expect("unpaired", "drop 192.0.2.101/24")
}
