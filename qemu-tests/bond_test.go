package qemutests

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A unit with two LAN ports bonded (active-backup) on one switch and an office PC: the PC reaches the
// unit through whichever port is left when one loses its link, and the unit reports the link lost.
func TestBondedLAN(t *testing.T) {
	parallel(t)
	lan := NewHub(t.TempDir())
	t.Cleanup(lan.Close)
	us := bootAll(t, unitConfig("unit-a", keep(t, Disk{ID: "a1", Kind: Virtio, Serial: "UNIT-A-1", SizeMiB: 1200}), lan, lan),
		unitConfig("office-pc", nil, lan))
	u, pc := newPairUnit(us[0], us[0].setupAndLogin()), newPairUnit(us[1], "")
	pc.console("addr "+pc.MACs[0]+" 192.0.2.30/24", reAddrOK)
	// No bond before one is asked for (the bonding module's default made an unused bond0 with no link).
	if code, got := u.call("GET", "/api/v1/network", u.tok, ""); code != 200 || !strings.Contains(got, `"carrier":true`) || strings.Contains(got, `"bond0"`) {
		t.Errorf("the network before any bond = %d %s", code, got)
	}
	body := fmt.Sprintf(`{"ports":[{"name":"bond0","members":[%q,%q],"addresses":["192.0.2.11/24"]}]}`, u.MACs[0], u.MACs[1])
	if code, got := u.call("PUT", "/api/v1/network", u.tok, fmt.Sprintf(`{"ports":[{"name":"bond0","members":[%q],"addresses":["192.0.2.11/24"]}]}`, u.MACs[0])); code != 400 {
		t.Errorf("a bond of one port = %d %s", code, got)
	}
	if code, got := u.call("PUT", "/api/v1/network", u.tok, body); code != 200 {
		t.Fatalf("bond = %d %s", code, got)
	}
	reach := func(what string) {
		t.Helper()
		ok := regexp.MustCompile(`debug: reach 192\.0\.2\.11:443: (.*)`)
		eventually(t, 20*time.Second, what, func() error {
			if m := pc.console("reach 192.0.2.11:443", ok); strings.TrimSpace(m[1]) != "<nil>" {
				return fmt.Errorf("%s", m[1])
			}
			return nil
		})
	}
	reach("the PC reaches the unit through the bond")
	// Each port in turn loses its link: the other carries on.
	for i, id := range []string{"lan0", "lan1"} {
		if err := u.SetLink(id, false); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, id+" reported without link", func() error {
			if c, links := u.carrier(u.MACs[i]); c {
				return fmt.Errorf("%s still has its link: %v", id, links)
			}
			return nil
		})
		reach("the PC reaches the unit with " + id + " down")
		if err := u.SetLink(id, true); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, id+" has its link back", func() error {
			if c, links := u.carrier(u.MACs[i]); !c {
				return fmt.Errorf("%s without link: %v", id, links)
			}
			return nil
		})
	}
	// A second write of the same configuration changes nothing, and the bond is listed as configured.
	if code, got := u.call("PUT", "/api/v1/network", u.tok, body); code != 200 || !regexp.MustCompile(`"members":\[`).MatchString(got) {
		t.Errorf("bond again = %d %s", code, got)
	}
	reach("the PC still reaches the unit")
}
