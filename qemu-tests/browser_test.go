package qemutests

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lawbox/appliance/webui/browsertest"
)

// The web UI of a real unit in a real browser: first-boot setup with the console's code, login, and the
// dashboard filled from the unit's own disks, arrays and database, kept live over its event stream (HTTP/2
// over TLS from the daemon) while the data array's first resync runs to its end.
func TestBrowserOnUnit(t *testing.T) {
	parallel(t)
	b := browsertest.New(t)
	u := boot(t, Config{Disks: []Disk{
		{ID: "d1", Kind: Virtio, Serial: "VIRTIO-A1", SizeMiB: 2048},
		{ID: "d2", Kind: NVMe, Serial: "NVME-B2", SizeMiB: 2048},
	}})
	base := strings.TrimSuffix(u.URL("/"), "/")
	b.Setup(base, u.code, adminPW)
	b.Login(base, "admin", adminPW)
	dash := b.Live()
	b.Shot("dashboard")
	for _, want := range []string{"data (raid1)", "system (raid1)", "VIRTIO-A1", "NVME-B2", "Not paired", "backups are not set up"} {
		if !strings.Contains(dash, want) {
			t.Errorf("dashboard lacks %q:\n%s", want, dash)
		}
	}
	// The data array's first resync runs on: the page follows it to the end without a reload.
	b.Run("resync seen to its end", chromedp.Poll(`document.getElementById('live').innerText.includes('data (raid1): clean')`, nil,
		chromedp.WithPollingTimeout(50*time.Second)))
	b.Shot("dashboard-clean")
	var proto string
	b.Run("protocol", chromedp.Evaluate(`performance.getEntriesByType('navigation')[0].nextHopProtocol`, &proto))
	t.Logf("dashboard over %s", proto)
}
