package qemutests

import (
	"fmt"
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
	backupJob(t, b, u, base)
	replaceGuide(t, b, u, base)
}

// backupJob: "Back up now" pressed on the backups page is a job: the Jobs page, reloaded while it runs,
// still lists it, and then shows its result by itself.
func backupJob(t *testing.T, b *browsertest.Browser, u *unit, base string) {
	tok := u.login()
	u.waitDatabase(tok)
	if code, body := u.call("POST", "/api/v1/backups/identity", tok, ""); code != 201 {
		t.Fatalf("set backups up = %d %s", code, body)
	}
	b.Run("back up now", chromedp.Navigate(base+"/backups"), chromedp.Click(`form[action="/backups/run"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#jobs`, chromedp.ByQuery), chromedp.Reload(), chromedp.WaitVisible(`#jobs`, chromedp.ByQuery))
	if jobs := b.Text(`#jobs`); !strings.Contains(jobs, "Back up now") {
		t.Errorf("the Jobs page after a reload: %q", jobs)
	}
	b.Run("the backup's result", chromedp.Poll(`document.querySelector('#jobs p.notice') && document.querySelector('#jobs p.notice').innerText.includes('Backup taken.')`,
		nil, chromedp.WithPollingTimeout(3*time.Minute)))
	b.Shot("jobs-backup-taken")
}

// replaceGuide: SMART says to replace NVME-B2, then the other member is pulled. The storage page, reloaded
// in the browser, never says to pull NVME-B2 while it holds the only complete copy: alone, it says to insert
// a new disk first; feeding the rebuild onto that disk, to wait for its end; once the rebuild has ended, to
// replace it.
func replaceGuide(t *testing.T, b *browsertest.Browser, u *unit, base string) {
	tok := u.login()
	if err := u.SetNVMeCriticalWarning("d2", 5); err != nil {
		t.Fatal(err)
	}
	if code, body := u.call("POST", "/api/v1/disks/NVME-B2/smart/refresh", tok, ""); code != 204 {
		t.Fatalf("refresh NVME-B2's SMART = %d %s", code, body)
	}
	guide := func(what string) string {
		b.Run(what, chromedp.Navigate(base+"/storage"))
		return b.Text(`#pull-NVME-B2`)
	}
	if g := guide("NVME-B2 to replace, the other disk sound"); !strings.Contains(g, "pull it out now") {
		t.Errorf("NVME-B2 to replace beside a sound member: the page says %q", g)
	}
	if err := u.PullDisk("d1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the page keeps NVME-B2, the last complete copy", func() error {
		if g := guide("NVME-B2 the last copy"); !strings.Contains(g, "do NOT pull it: it holds the last complete copy") {
			return fmt.Errorf("the page says %q", g)
		}
		return nil
	})
	b.Shot("storage-last-copy")
	if err := u.InsertDisk(Disk{ID: "d3", Kind: Virtio, Serial: "VIRTIO-C3", SizeMiB: 2048}); err != nil {
		t.Fatal(err)
	}
	waited := false
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Second) {
		g := guide("NVME-B2 during the rebuild")
		if strings.Contains(g, "while the rebuild runs it is the only complete copy") && !waited {
			waited = true
			b.Shot("storage-rebuilding")
		}
		if strings.Contains(g, "pull it out now") {
			if st := u.storage(tok); st.arrayStates() != "system=clean data=clean" {
				t.Fatalf("the page says to pull NVME-B2 while the arrays are %s", st.arrayStates())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the rebuild the page says %q", g)
		}
	}
	if !waited {
		t.Error("the page never said to wait for the rebuild onto the new disk")
	}
}
