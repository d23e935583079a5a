package main

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestReplicationPaths(t *testing.T) {
	lan := []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")}
	for _, c := range []struct{ peer, want []string }{
		{[]string{"192.0.2.12", "198.51.100.2"}, []string{"198.51.100.2", "192.0.2.12"}}, // the direct cable first
		{[]string{"192.0.2.12"}, []string{"192.0.2.12"}},                                 // only the LAN
		{nil, nil}, // not paired
	} {
		if got := replicationPaths(c.peer, lan); !slices.Equal(got, c.want) {
			t.Errorf("%v: %q, want %q", c.peer, got, c.want)
		}
	}
}

// The DRBD module runs the firmware as "PROGRAM EVENT minor-N" or "PROGRAM fence-peer RESOURCE" (DRBD 8.4,
// no DRBD_* variable but the peer's address); the services PID 1 starts are never taken for one.
func TestDRBDEvent(t *testing.T) {
	for args, want := range map[string]bool{
		"/bin/appliance fence-peer documents":         true,
		"/bin/appliance before-resync-target minor-0": true,
		"/bin/appliance split-brain minor-0":          true,
		"/bin/appliance daemon -listen :443":          false,
		"/bin/appliance netd":                         false,
		"/bin/appliance daemon minor-0 extra":         false,
	} {
		if got := drbdEvent(strings.Fields(args)); got != want {
			t.Errorf("%q: %v, want %v", args, got, want)
		}
	}
}
