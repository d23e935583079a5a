package main

import (
	"net/netip"
	"slices"
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
