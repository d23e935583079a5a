package static

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestDiff(t *testing.T) {
	p := netip.MustParsePrefix
	vip := p("192.0.2.100/24")
	cur := map[string]Current{
		"eth1": {Up: true, Addresses: []netip.Prefix{p("192.0.2.9/24"), vip, p("fe80::1/64")}},
	}
	desired := []Port{
		{Name: "eth1", Addresses: []netip.Prefix{p("192.0.2.11/24")}, Gateway: netip.MustParseAddr("192.0.2.1")},
		{Name: "eth2", Addresses: []netip.Prefix{p("198.51.100.1/30")}},
	}
	got := Diff(cur, desired, []netip.Prefix{vip})
	want := []Change{
		{Op: "add", Port: "eth1", Prefix: p("192.0.2.11/24")},
		{Op: "del", Port: "eth1", Prefix: p("192.0.2.9/24")},
		{Op: "route", Port: "eth1", Via: netip.MustParseAddr("192.0.2.1")},
		{Op: "up", Port: "eth2"},
		{Op: "add", Port: "eth2", Prefix: p("198.51.100.1/30")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Diff = %v, want %v", got, want)
	}
	// Applied: nothing left to do.
	cur["eth1"] = Current{Up: true, Addresses: []netip.Prefix{p("192.0.2.11/24"), vip}, Gateway: netip.MustParseAddr("192.0.2.1")}
	cur["eth2"] = Current{Up: true, Addresses: []netip.Prefix{p("198.51.100.1/30")}}
	if got := Diff(cur, desired, []netip.Prefix{vip}); len(got) != 0 {
		t.Errorf("Diff after apply = %v, want nothing", got)
	}
}

func TestValidate(t *testing.T) {
	p := netip.MustParsePrefix
	for _, tc := range []struct {
		ports []Port
		ok    bool
	}{
		{[]Port{{Name: "eth1", Addresses: []netip.Prefix{p("192.0.2.11/24")}}}, true},
		{[]Port{{Name: "eth1"}}, false},
		{[]Port{{Name: "52:54:00:01:00:03", Addresses: []netip.Prefix{p("192.0.2.11/24")}}}, true},
		{[]Port{{Name: "52:54:00", Addresses: []netip.Prefix{p("192.0.2.11/24")}}}, false},
		{[]Port{{Name: "eth1", Addresses: []netip.Prefix{p("0.0.0.0/0")}}}, false},
		{[]Port{{Name: "../x", Addresses: []netip.Prefix{p("192.0.2.11/24")}}}, false},
		{[]Port{{Name: "eth1", Addresses: []netip.Prefix{p("192.0.2.11/24")}, Gateway: netip.MustParseAddr("198.51.100.1")}}, false},
		{[]Port{{Name: "eth1", Addresses: []netip.Prefix{p("192.0.2.11/24")}}, {Name: "eth1", Addresses: []netip.Prefix{p("192.0.2.12/24")}}}, false},
	} {
		if err := Validate(tc.ports); (err == nil) != tc.ok {
			t.Errorf("Validate(%v) = %v, want ok=%v", tc.ports, err, tc.ok)
		}
	}
}
