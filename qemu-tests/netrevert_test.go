package qemutests

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/webui/browsertest"
)

// A wrong fixed address, set in a browser on the port the admin reaches the unit through, takes the unit off
// that network: not confirmed, the change is put back by itself when its window ends (the port back on DHCP),
// and the web UI answers again, saying what happened. A change that leaves the unit reachable, confirmed, stays.
func TestNetworkChangeReverts(t *testing.T) {
	parallel(t)
	b := browsertest.New(t)
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

	// Wrong: an address on another network, set from the network page in a browser. The page's answer may never
	// come back (the address it would go from is gone); the unit is unreachable, then back after the page's
	// one-minute window, and the page says what happened.
	base := strings.TrimSuffix(u.URL("/"), "/")
	b.Login(base, "admin", adminPW)
	start := time.Now()
	b.Run("a wrong fixed address", chromedp.Navigate(base+"/network"),
		chromedp.SendKeys(`form[action="/network"] input[name=name]`, mgmt, chromedp.ByQuery),
		chromedp.SendKeys(`form[action="/network"] input[name=address]`, "198.51.100.77/24", chromedp.ByQuery),
		chromedp.Click(`form[action="/network"] button`, chromedp.ByQuery))
	time.Sleep(3 * time.Second)
	if code, _, err := try("GET", "/api/v1/network", ""); err == nil {
		t.Fatalf("the unit still answers on its old address after the change (%d): the change was not applied", code)
	}
	eventually(t, 3*time.Minute, "the network page back after the window", func() error {
		return b.Try(10*time.Second, chromedp.Navigate(base+"/network"), chromedp.WaitVisible(`#network-reverted`, chromedp.ByQuery))
	})
	back := time.Since(start)
	b.Shot("network-reverted")
	if said := b.Text(`#network-reverted`); !strings.Contains(said, "was not confirmed and was put back") {
		t.Errorf("the network page after the window says %q", said)
	}
	u.get("/api/v1/network", tok, &got)
	t.Logf("back %v after the wrong change (window 60 s): %+v", back.Round(time.Second), got.Trial)
	if len(got.Ports) != 0 || got.Trial == nil || !got.Trial.Reverted || got.Trial.Why != "it was not confirmed in time" {
		t.Errorf("after the window: ports %+v, trial %+v", got.Ports, got.Trial)
	}
	if back < time.Minute {
		t.Errorf("back after %v, before the window ended", back)
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
