package qemutests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// A wrong fixed address on the port the admin reaches the unit through takes the unit off that network: not
// confirmed, the change is put back by itself when its window ends (the port back on DHCP), and the web UI
// answers again, saying what happened. A change that leaves the unit reachable, confirmed, stays.
func TestNetworkChangeReverts(t *testing.T) {
	parallel(t)
	u := boot(t, Config{})
	tok := u.setupAndLogin()
	// The management port is QEMU's first NIC (user networking, DHCP 198.18.0.15): its MAC is QEMU's default.
	const mgmt = "52:54:00:12:34:56"
	quick := *u.http
	quick.Timeout = 5 * time.Second
	try := func(method, path, body string) (int, string, error) {
		req, _ := http.NewRequest(method, u.URL(path), strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := quick.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	var got struct {
		Ports []appliance.NetworkPort `json:"ports"`
		Trial *appliance.NetworkTrial `json:"trial"`
	}

	// Wrong: an address on another network. The answer may never come back (the address it would go from
	// is gone); the unit is unreachable, then back within the window and a little more.
	start := time.Now()
	code, body, err := try("PUT", "/api/v1/network", fmt.Sprintf(`{"ports":[{"name":%q,"addresses":["198.51.100.77/24"]}],"revert_after_s":20}`, mgmt))
	t.Logf("the wrong change: %d %s %v", code, body, err)
	if err == nil && code != 200 {
		t.Fatalf("the wrong change was refused: %d %s", code, body)
	}
	time.Sleep(3 * time.Second)
	if code, _, err := try("GET", "/api/v1/network", ""); err == nil {
		t.Fatalf("the unit still answers on its old address after the change (%d): the change was not applied", code)
	}
	eventually(t, 2*time.Minute, "the web UI back after the window", func() error {
		code, body, err := try("GET", "/api/v1/network", "")
		if err != nil {
			return err
		}
		if code != 200 || json.Unmarshal([]byte(body), &got) != nil {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	back := time.Since(start)
	t.Logf("back %v after the wrong change (window 20 s): %+v", back.Round(time.Second), got.Trial)
	if len(got.Ports) != 0 || got.Trial == nil || !got.Trial.Reverted || got.Trial.Why != "it was not confirmed in time" {
		t.Errorf("after the window: ports %+v, trial %+v", got.Ports, got.Trial)
	}
	if back < 20*time.Second {
		t.Errorf("back after %v, before the window ended", back)
	}
	if code, page := u.call("GET", "/network", tok, ""); code != 200 || !strings.Contains(page, `id="network-reverted"`) {
		t.Errorf("the pair page does not say the change was put back: %d", code)
	}

	// Right: the address DHCP gave it, fixed; confirmed, it outlives its window.
	if code, body := u.call("PUT", "/api/v1/network", tok, fmt.Sprintf(`{"ports":[{"name":%q,"addresses":["198.18.0.15/24"],"gateway":"198.18.0.2"}],"revert_after_s":10}`, mgmt)); code != 200 {
		t.Fatalf("the right change = %d %s", code, body)
	}
	if code, body := u.call("POST", "/api/v1/network/confirm", tok, ""); code != 204 {
		t.Fatalf("confirm = %d %s", code, body)
	}
	time.Sleep(15 * time.Second)
	got.Ports, got.Trial = nil, nil // a field the answer leaves out keeps its value in Unmarshal
	u.get("/api/v1/network", tok, &got)
	if len(got.Ports) != 1 || got.Ports[0].Addresses[0] != "198.18.0.15/24" || got.Trial != nil {
		t.Errorf("a confirmed change after its window: ports %+v, trial %+v", got.Ports, got.Trial)
	}
}
