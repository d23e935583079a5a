package dhcp

import "testing"

func TestReleased(t *testing.T) {
	for _, c := range []struct {
		before, now map[string]bool
		want        bool
	}{
		{nil, nil, false},
		{nil, map[string]bool{"eth0": true}, false}, // made static: nothing to ask
		{map[string]bool{"eth0": true}, map[string]bool{"eth0": true}, false},
		{map[string]bool{"eth0": true}, nil, true}, // back on DHCP: ask now
		{map[string]bool{"eth0": true, "eth1": true}, map[string]bool{"eth1": true}, true},
	} {
		if got := released(c.before, c.now); got != c.want {
			t.Errorf("released(%v, %v) = %v", c.before, c.now, got)
		}
	}
}
