package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The witness runs on an office PC: it links no netlink, no store and no hardware package of the unit.
func TestLinksNoUnitPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "netlink") || strings.Contains(p, "bbolt") || strings.Contains(p, "/appliance/hw/") ||
			strings.HasSuffix(p, "/appliance/appliance/state") || strings.HasSuffix(p, "/netcfg/vip") {
			t.Errorf("cmd/witness links %s", p)
		}
	}
}
