// Package browsertest drives Debian's Chromium (headless, through chromedp) for the web UI's browser tests,
// on the host against fakes and against a unit booted in QEMU.
package browsertest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// root is the repository's top directory (screenshots go to its build/).
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Chromium is the path of Debian's browser, which the browser tests drive. Outside CI they are skipped without it;
// in CI (make deps installs it) its absence is a failure.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (make deps installs it)")
	}
	t.Skip("chromium is not installed")
	return ""
}

// Browser is a headless Chromium for one test; Shot saves a screenshot under build/screenshots/.
type Browser struct {
	t   testing.TB
	ctx context.Context
	dir string
}

// New starts Chromium; the self-signed certificate of a unit is accepted.
func New(t testing.TB) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(Chromium(t)), chromedp.NoSandbox,
		chromedp.Flag("ignore-certificate-errors", true), chromedp.WindowSize(1280, 1000))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel2)
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	dir, _ := filepath.Abs(filepath.Join(root(), "build", "screenshots", strings.ReplaceAll(t.Name(), "/", "_")))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &Browser{t: t, ctx: ctx, dir: dir}
}

// Run runs browser actions, failing the test (with a screenshot) when they fail or take over a minute.
func (b *Browser) Run(what string, actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.Shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v", what, err)
	}
}

// Try runs actions for at most timeout and returns their error: for a page that may not answer yet.
func (b *Browser) Try(timeout time.Duration, actions ...chromedp.Action) error {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	return chromedp.Run(ctx, actions...)
}

// Shot saves a full-page screenshot as name.png (quality 100 is PNG; less would be JPEG), and checks the
// page's accessibility (Accessible).
func (b *Browser) Shot(name string) {
	b.t.Helper()
	if !strings.HasPrefix(name, "failed-") {
		b.Accessible(name)
	}
	var png []byte
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
}

// Text is the visible text of the first element matching sel.
//
// The element is found and read in one evaluation, once it exists: a live section's update replaces its nodes,
// so a node found by one call may be gone by the next ("No node with given id found").
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	var s struct{ Text string }
	b.Run("read "+sel, chromedp.Poll(`(function(){var e=document.querySelector(`+string(q)+`); return e && {Text: e.innerText}})()`,
		&s, chromedp.WithPollingTimeout(30*time.Second)))
	return s.Text
}

// Setup fills the first-boot form at base (the UI's https://host:port) and waits for the login page.
func (b *Browser) Setup(base, code, password string) {
	b.t.Helper()
	b.Run("first-boot setup", chromedp.Navigate(base+"/"), chromedp.WaitVisible(`input[name=code]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=code]`, code, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=password]`, password, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=confirm]`, password, chromedp.ByQuery),
		chromedp.Click(`main button`, chromedp.ByQuery),
		chromedp.WaitVisible(`input[name=user]`, chromedp.ByQuery))
}

// Login logs in at base and waits for the dashboard.
func (b *Browser) Login(base, user, password string) {
	b.t.Helper()
	b.Run("log in as "+user, chromedp.Navigate(base+"/login"),
		chromedp.SetValue(`input[name=user]`, user, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=password]`, password, chromedp.ByQuery),
		chromedp.Click(`main button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#live`, chromedp.ByQuery))
}

// Live waits until the dashboard has been updated over its event stream and returns its text.
func (b *Browser) Live() string {
	b.t.Helper()
	b.Run("live dashboard", chromedp.Poll(`!!document.getElementById('live').dataset.updated`, nil, chromedp.WithPollingTimeout(50*time.Second)))
	return b.Text(`#live`)
}
