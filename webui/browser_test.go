package webui

import (
	"fmt"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/webui/browsertest"
)

// The office IT person's first visit and daily use, in a real browser against the web UI (appliance parts
// faked): first-boot setup, login, the dashboard with its alerts and live updates, adding a viewer, the
// replace-disk and promote confirmations, and a viewer who sees but cannot act.
func TestBrowser(t *testing.T) {
	e := newEnv(t)
	e.db.role = "mirror" // so that the database page offers the promotion
	srv := httptest.NewTLSServer(e.h)
	t.Cleanup(srv.Close) // after the browser's cleanup: its open event stream would hold Close
	b := browsertest.New(t)
	u := srv.URL

	setUpInBrowser(t, b, e, u)

	b.Login(u, "admin", pw)
	dash := b.Live()
	b.Shot("03-dashboard")
	for _, want := range []string{"Attention needed", "disk SN-A: NVMe critical warning", "37.5 %", "SN-OLD", "mirror, running"} {
		if !strings.Contains(dash, want) {
			t.Errorf("dashboard lacks %q:\n%s", want, dash)
		}
	}
	// The rebuild moves on: the page shows it without a reload.
	e.storage.change(func(st *appliance.StorageStatus) {
		p := 0.8
		st.Arrays = append([]appliance.Array(nil), st.Arrays...)
		st.Arrays[0].RebuildProgress = &p
	})
	b.Run("live update", chromedp.Poll(`document.getElementById('live').innerText.includes('80.0 %')`, nil, chromedp.WithPollingTimeout(30*time.Second)))
	b.Shot("04-dashboard-live")

	// Switch to French and back: the page (and the live dashboard) follow.
	b.Run("français", chromedp.Click(`form.lang button[value=fr]`, chromedp.ByQuery), chromedp.WaitVisible(`html[lang=fr] #live`, chromedp.ByQuery))
	if fr := b.Live(); !strings.Contains(fr, "Stockage") || !strings.Contains(fr, "en reconstruction") || !strings.Contains(fr, "80,0 %") {
		t.Errorf("French dashboard:\n%s", fr)
	}
	b.Shot("04b-francais")
	b.Run("english", chromedp.Click(`form.lang button[value=en]`, chromedp.ByQuery), chromedp.WaitVisible(`html[lang=en] #live`, chromedp.ByQuery))

	confirmationsInBrowser(t, b, e, u)

	backupJobInBrowser(t, b, e, u)
	if e.db.promoted != 1 {
		t.Errorf("promoted %d times, want 1", e.db.promoted)
	}

	// A viewer account, added from the users page; the viewer sees the dashboard but no admin forms.
	b.Run("add a viewer", chromedp.Navigate(u+"/users"),
		chromedp.SendKeys(`form[action="/users"] input[name=name]`, "clerk", chromedp.ByQuery),
		chromedp.SendKeys(`form[action="/users"] input[name=password]`, pw, chromedp.ByQuery),
		chromedp.SendKeys(`form[action="/users"] input[name=confirm]`, pw, chromedp.ByQuery),
		chromedp.Click(`form[action="/users"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`form[action="/users/clerk/delete"]`, chromedp.ByQuery))
	b.Shot("07-users")
	sharesInBrowser(t, b, e, u)
	everyPage(t, b, u)
	b.Run("log out", chromedp.Click(`header form button`, chromedp.ByQuery), chromedp.WaitVisible(`input[name=user]`, chromedp.ByQuery))
	b.Login(u, "clerk", pw)
	var forms int
	b.Run("viewer's pages", chromedp.Navigate(u+"/database"), chromedp.WaitVisible(`h1`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('form[action="/database/promote"]').length`, &forms))
	if forms != 0 {
		t.Error("the viewer is shown the promote form")
	}
	b.Shot("08-viewer")

	// On a phone: the dashboard fits the width (nothing to scroll sideways).
	var fits bool
	b.Run("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Navigate(u+"/"), chromedp.WaitVisible(`#live`, chromedp.ByQuery),
		chromedp.Evaluate(`document.documentElement.scrollWidth <= window.innerWidth`, &fits))
	b.Shot("09-phone")
	if !fits {
		t.Error("the dashboard is wider than a phone screen")
	}
	// Its table cells, stacked, each say what they are; the header row is not shown.
	var labelled struct {
		Before string
		Head   string
	}
	b.Run("phone: labelled cells", chromedp.Evaluate(`({before: getComputedStyle(document.querySelector('#live td[data-label]'), '::before').content,
		head: getComputedStyle(document.querySelector('#live th[data-head]')).display})`, &labelled))
	if !strings.HasPrefix(labelled.Before, `"`) || labelled.Head != "none" {
		t.Errorf("a stacked cell on a phone: label %q, header row display %q", labelled.Before, labelled.Head)
	}

	// The admin's audit log has it all.
	entries, _ := e.auth.Audit(100, appliance.AuditLog)
	var seen []string
	for _, a := range entries {
		seen = append(seen, a.User+" "+a.Action)
	}
	for _, want := range []string{"admin POST /storage/disks/{serial}/adopt", "admin POST /database/promote", "admin POST /users", "clerk POST /login"} {
		if !strings.Contains(strings.Join(seen, "\n"), want) {
			t.Errorf("audit log lacks %q", want)
		}
	}
}

// everyPage opens every page an admin opens, in English and in French, on a desktop and on a phone: each is
// shown (build/screenshots/), checked for accessibility (Shot), and on a phone fits the screen's width.
func everyPage(t *testing.T, b *browsertest.Browser, u string) {
	pages := []string{"/", "/storage", "/disks/SN-A", "/database", "/shares", "/pair", "/network", "/backups", "/alerts", "/audit", "/jobs", "/users", "/account"}
	for _, lang := range []string{"fr", "en"} {
		b.Run("in "+lang, chromedp.Navigate(u+"/account"), chromedp.Click(`form.lang button[value=`+lang+`]`, chromedp.ByQuery),
			chromedp.WaitVisible(`html[lang=`+lang+`] main h1`, chromedp.ByQuery))
		for _, phone := range []bool{false, true} {
			device, view := "desktop", chromedp.EmulateViewport(1280, 1000)
			if phone {
				device, view = "phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2))
			}
			b.Run(device, view)
			for _, p := range pages {
				var fits bool
				b.Run("open "+p, chromedp.Navigate(u+p), chromedp.WaitVisible(`main h1`, chromedp.ByQuery),
					chromedp.Evaluate(`document.documentElement.scrollWidth <= window.innerWidth`, &fits))
				b.Shot(fmt.Sprintf("07-%s-%s%s", lang, device, strings.TrimSuffix(strings.ReplaceAll(p, "/", "-"), "-")))
				if phone && !fits {
					t.Errorf("%s in %s is wider than a phone's screen", p, lang)
				}
			}
		}
	}
	b.Run("desktop again", chromedp.EmulateViewport(1280, 1000))
}

// Chromium can be started at all: a clear message rather than a browser test's timeout.
func TestChromiumStarts(t *testing.T) {
	out, err := exec.Command(browsertest.Chromium(t), "--headless", "--no-sandbox", "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Chromium") {
		t.Fatalf("chromium --version: %v %s", err, out)
	}
}

// sharesInBrowser adds a file account and a share for it, from the shares page.
func sharesInBrowser(t *testing.T, b *browsertest.Browser, e *env, u string) {
	b.Run("add a file account and a share", chromedp.Navigate(u+"/shares"),
		chromedp.SendKeys(`form[action="/shares/accounts"] input[name=name]`, "marie", chromedp.ByQuery),
		chromedp.SendKeys(`form[action="/shares/accounts"] input[name=password]`, "a long password", chromedp.ByQuery),
		chromedp.SendKeys(`form[action="/shares/accounts"] input[name=confirm]`, "a long password", chromedp.ByQuery),
		chromedp.Click(`form[action="/shares/accounts"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`form[action="/shares/accounts/marie/delete"]`, chromedp.ByQuery),
		chromedp.SendKeys(`form[action="/shares"] input[name=name]`, "Clients", chromedp.ByQuery),
		chromedp.SetValue(`select[name="access.marie"]`, "write", chromedp.ByQuery),
		chromedp.Click(`form[action="/shares"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`form[action="/shares/Clients/delete"]`, chromedp.ByQuery))
	b.Shot("07-shares")
	if st := e.srv.shares.Shares(t.Context()); len(st.Shares) != 1 || len(st.Shares[0].ReadWrite) != 1 {
		t.Errorf("the share made in the browser: %+v", st)
	}
}

// backupJobInBrowser: a backup asked from the page is a job: it goes on through a reload of the Jobs page,
// whose list then shows its result by itself; a reload does not ask again.
func backupJobInBrowser(t *testing.T, b *browsertest.Browser, e *env, u string) {
	e.backups.identity = "AGE-SECRET-KEY-1SHEET"
	gate := make(chan struct{})
	e.backups.gate = gate
	b.Run("back up now", chromedp.Navigate(u+"/backups"), chromedp.Click(`form[action="/backups/run"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#jobs`, chromedp.ByQuery), chromedp.Reload(), chromedp.WaitVisible(`#jobs`, chromedp.ByQuery))
	running := b.Text(`#jobs`)
	if !strings.Contains(running, "Back up now") || !strings.Contains(running, "Running for") {
		t.Errorf("the Jobs page after a reload: %q", running)
	}
	b.Shot("06b-job-running")
	close(gate)
	b.Run("the job's result", chromedp.Poll(`document.querySelector('#jobs p.notice') && document.querySelector('#jobs p.notice').innerText.includes('Backup taken.')`, nil, chromedp.WithPollingTimeout(30*time.Second)))
	b.Shot("06c-job-done")
	if e.backups.runs != 1 {
		t.Errorf("%d backups taken, want 1 (a reload must not ask again)", e.backups.runs)
	}
}

// setUpInBrowser: the first visit's setup page refuses a short password, then sets the admin's.
func setUpInBrowser(t *testing.T, b *browsertest.Browser, e *env, u string) {
	b.Run("first visit", chromedp.Navigate(u+"/"), chromedp.WaitVisible(`input[name=code]`, chromedp.ByQuery))
	b.Shot("01-setup")
	b.Run("setup with a short password",
		chromedp.SendKeys(`input[name=code]`, e.auth.SetupCode(), chromedp.ByQuery),
		chromedp.SetValue(`input[name=password]`, "short", chromedp.ByQuery), // the browser's minlength would stop a typed one
		chromedp.SetValue(`input[name=confirm]`, "short", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('form').noValidate = true`, nil),
		chromedp.Click(`main button`, chromedp.ByQuery),
		chromedp.WaitVisible(`p.error`, chromedp.ByQuery))
	if msg := b.Text(`p.error`); !strings.Contains(msg, "at least 12") {
		t.Errorf("short password: %q", msg)
	}
	b.Run("setup",
		chromedp.SendKeys(`input[name=code]`, e.auth.SetupCode(), chromedp.ByQuery),
		chromedp.SendKeys(`input[name=password]`, pw, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=confirm]`, pw, chromedp.ByQuery),
		chromedp.Click(`main button`, chromedp.ByQuery),
		chromedp.WaitVisible(`p.notice`, chromedp.ByQuery))
	b.Shot("02-setup-done")
	if e.auth.NeedsSetup() {
		t.Fatal("setup through the browser did not set the password")
	}
}

// confirmationsInBrowser: adopting a replacement disk needs the erase box ticked; promoting, the same with its
// warning.
func confirmationsInBrowser(t *testing.T, b *browsertest.Browser, e *env, u string) {
	b.Run("storage page", chromedp.Navigate(u+"/storage"), chromedp.WaitVisible(`form[action="/storage/disks/SN-OLD/adopt"]`, chromedp.ByQuery))
	b.Run("adopt without the tick", chromedp.Click(`form[action="/storage/disks/SN-OLD/adopt"] button`, chromedp.ByQuery), chromedp.Sleep(500*time.Millisecond))
	if len(e.storage.adopted) != 0 {
		t.Errorf("a disk was adopted without the erase confirmation: %v", e.storage.adopted)
	}
	b.Run("adopt", chromedp.Click(`form[action="/storage/disks/SN-OLD/adopt"] input[name=confirm]`, chromedp.ByQuery),
		chromedp.Click(`form[action="/storage/disks/SN-OLD/adopt"] button`, chromedp.ByQuery), chromedp.WaitVisible(`p.notice`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById('live').innerText.includes('The disk is erased')`, nil, chromedp.WithPollingTimeout(30*time.Second)))
	b.Shot("05-adopt")
	if len(e.storage.adopted) != 1 || e.storage.adopted[0] != "SN-OLD" {
		t.Errorf("adopted %v, want SN-OLD", e.storage.adopted)
	}

	// Promote: the same, with its warning.
	b.Run("database page", chromedp.Navigate(u+"/database"), chromedp.WaitVisible(`form[action="/database/promote"]`, chromedp.ByQuery))
	b.Run("promote without the tick", chromedp.Click(`form[action="/database/promote"] button`, chromedp.ByQuery), chromedp.Sleep(500*time.Millisecond))
	if e.db.promoted != 0 {
		t.Error("promoted without the confirmation")
	}
	b.Run("promote", chromedp.Click(`form[action="/database/promote"] input[name=confirm]`, chromedp.ByQuery),
		chromedp.Click(`form[action="/database/promote"] button`, chromedp.ByQuery), chromedp.WaitVisible(`p.notice`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById('live').innerText.includes('now the production database')`, nil, chromedp.WithPollingTimeout(30*time.Second)))
	b.Shot("06-promoted")
}
