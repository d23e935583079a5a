package static

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
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

// A bond: created, its members lose the addresses they had (DHCP's) and join it; then its own address.
func TestDiffBond(t *testing.T) {
	p := netip.MustParsePrefix
	bond := []Port{{Name: "bond0", Members: []string{"eth0", "52:54:00:00:00:02"}, Addresses: []netip.Prefix{p("192.0.2.11/24")}}}
	cur := map[string]Current{
		"eth0":              {Exists: true, Up: true, Addresses: []netip.Prefix{p("192.0.2.50/24"), p("fe80::1/64")}},
		"52:54:00:00:00:02": {Exists: true},
	}
	want := []Change{
		{Op: "bond", Port: "bond0"},
		{Op: "del", Port: "eth0", Prefix: p("192.0.2.50/24")},
		{Op: "enslave", Port: "eth0", Bond: "bond0"},
		{Op: "enslave", Port: "52:54:00:00:00:02", Bond: "bond0"},
		{Op: "up", Port: "bond0"},
		{Op: "add", Port: "bond0", Prefix: p("192.0.2.11/24")},
	}
	if got := Diff(cur, bond, nil); !reflect.DeepEqual(got, want) {
		t.Errorf("Diff = %v, want %v", got, want)
	}
	cur = map[string]Current{
		"bond0":             {Exists: true, Up: true, Addresses: []netip.Prefix{p("192.0.2.11/24")}},
		"eth0":              {Exists: true, Up: true, Master: "bond0"},
		"52:54:00:00:00:02": {Exists: true, Up: true, Master: "bond0"},
	}
	if got := Diff(cur, bond, nil); len(got) != 0 {
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
		{[]Port{{Name: "eth1", Addresses: []netip.Prefix{p("192.0.2.11/24")}, DNS: addrs("192.0.2.53", "2001:db8::53")}}, true},
		{[]Port{{Name: "bond0", Members: []string{"eth0", "52:54:00:00:00:02"}, Addresses: []netip.Prefix{p("192.0.2.11/24")}}}, true},
		{[]Port{{Name: "bond0", Members: []string{"eth0"}, Addresses: []netip.Prefix{p("192.0.2.11/24")}}}, false},
		{[]Port{{Name: "52:54:00:00:00:09", Members: []string{"eth0", "eth1"}, Addresses: []netip.Prefix{p("192.0.2.11/24")}}}, false},
		{[]Port{{Name: "bond0", Members: []string{"eth0", "eth1"}, Addresses: []netip.Prefix{p("192.0.2.11/24")}},
			{Name: "eth1", Addresses: []netip.Prefix{p("198.51.100.1/24")}}}, false},
		{[]Port{{Name: "eth1", Addresses: []netip.Prefix{p("192.0.2.11/24")}, DNS: addrs("0.0.0.0")}}, false},
		{[]Port{{Name: "eth1", Addresses: []netip.Prefix{p("192.0.2.11/24")}, DNS: addrs("127.0.0.1")}}, false},
		{[]Port{{Name: "eth1", Addresses: []netip.Prefix{p("192.0.2.11/24")}, DNS: addrs("192.0.2.1", "192.0.2.2")},
			{Name: "eth2", Addresses: []netip.Prefix{p("198.51.100.1/24")}, DNS: addrs("192.0.2.2", "192.0.2.3", "192.0.2.4")}}, false},
	} {
		if err := Validate(tc.ports); (err == nil) != tc.ok {
			t.Errorf("Validate(%v) = %v, want ok=%v", tc.ports, err, tc.ok)
		}
	}
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// The static name servers replace the lease's, survive a renewal (the DHCP client rewrites the file) and,
// once removed, give the resolver back to the last lease.
func TestResolver(t *testing.T) {
	dir := t.TempDir()
	r := Resolver{Conf: filepath.Join(dir, "resolv.conf"), DHCPConf: filepath.Join(dir, "run/resolv.dhcp"), Marker: filepath.Join(dir, "run/static-dns")}
	lease := func(ns string) {
		if err := os.WriteFile(r.Conf, []byte("nameserver "+ns+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := r.Leased(); err != nil {
			t.Fatal(err)
		}
	}
	lease("198.18.0.3")
	if got := r.Servers(); !slices.Equal(got, []string{"198.18.0.3"}) {
		t.Fatalf("without static servers the lease's stand: %v", got)
	}
	ports := []Port{{Name: "eth1", DNS: addrs("192.0.2.53")}, {Name: "eth2", DNS: addrs("192.0.2.53", "2001:db8::53")}}
	if err := r.Set(Nameservers(ports)); err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.53", "2001:db8::53"}
	if got := r.Servers(); !slices.Equal(got, want) {
		t.Fatalf("static servers = %v, want %v", got, want)
	}
	lease("198.18.0.9")
	if got := r.Servers(); !slices.Equal(got, want) {
		t.Errorf("after a renewal = %v, want the static %v", got, want)
	}
	if err := r.Set(Nameservers(ports)); err != nil { // the periodic re-apply
		t.Fatal(err)
	}
	if err := r.Set(nil); err != nil {
		t.Fatal(err)
	}
	if got := r.Servers(); !slices.Equal(got, []string{"198.18.0.9"}) {
		t.Errorf("static servers removed: %v, want the last lease's", got)
	}
	if _, err := os.Stat(r.Marker); !os.IsNotExist(err) {
		t.Errorf("marker left: %v", err)
	}
	if err := r.Set(nil); err != nil {
		t.Errorf("nothing to remove: %v", err)
	}
}
