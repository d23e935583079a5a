package qemutests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	reReady       = regexp.MustCompile(`web UI ready on :443`)
	reSetupCode   = regexp.MustCompile(`setup code: ([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})`)
	reFingerprint = regexp.MustCompile(`TLS certificate SHA-256 fingerprint: ([0-9A-F:]{95})`)
)

func image(t testing.TB) Image {
	t.Helper()
	if os.Getenv("QEMU_TESTS") == "" {
		t.Skip("QEMU tests run with QEMU_TESTS=1 (make qemu-test)")
	}
	im, err := LoadImage("..")
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// unit is a booted appliance with its web UI client.
type unit struct {
	*VM
	t           testing.TB
	code        string
	fingerprint string
	http        *http.Client
}

// boot starts a VM with the debug console on and waits for the web UI. Its console log is kept in
// build/qemu-test-artifacts/<test>/ when the test fails (always with KEEP_CONSOLES=1).
func boot(t testing.TB, cfg Config) *unit {
	t.Helper()
	u := start(t, cfg)
	if !cfg.NoMgmtNet {
		u.ready()
	}
	return u
}

// bootAll starts the VMs together (they boot in parallel), then waits for each web UI.
func bootAll(t testing.TB, cfgs ...Config) []*unit {
	t.Helper()
	var us []*unit
	for _, c := range cfgs {
		us = append(us, start(t, c))
	}
	for _, u := range us {
		u.ready()
	}
	return us
}

func start(t testing.TB, cfg Config) *unit {
	t.Helper()
	im := image(t)
	cfg.Dir = t.TempDir()
	cfg.Cmdline = append(cfg.Cmdline, "appliance.debug=1")
	vm, err := Start(im, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vm.Close()
		if t.Failed() || os.Getenv("KEEP_CONSOLES") != "" {
			dst := filepath.Join("..", "build", "qemu-test-artifacts", strings.ReplaceAll(t.Name(), "/", "_"))
			os.MkdirAll(dst, 0o755)
			name := filepath.Join(dst, "console.log")
			for i := 2; ; i++ { // one log per boot of the test
				if _, err := os.Stat(name); err != nil {
					break
				}
				name = filepath.Join(dst, fmt.Sprintf("console-%d.log", i))
			}
			os.WriteFile(name, []byte(vm.Console()), 0o644)
			t.Logf("console log kept in %s", name)
		}
	})
	return &unit{VM: vm, t: t}
}

// ready waits for the web UI and reads the fingerprint and setup code from the console.
func (u *unit) ready() {
	u.t.Helper()
	m, err := u.Expect(reFingerprint, 3*time.Minute)
	if err != nil {
		u.t.Fatalf("%v\nconsole:\n%s", err, tail(u.Console()))
	}
	u.fingerprint = m[1]
	if _, err := u.Expect(reReady, time.Minute); err != nil {
		u.t.Fatalf("%v\nconsole:\n%s", err, tail(u.Console()))
	}
	if m := reSetupCode.FindStringSubmatch(u.Console()); m != nil { // none when the unit is set up already
		u.code = m[1]
	}
	u.http = u.HTTPClient(u.fingerprint)
}

func tail(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// call sends a request to the web UI and returns the status and body. token may be "".
func (u *unit) call(method, path, token, body string) (int, string) {
	u.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u.URL(path), r)
	if err != nil {
		u.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := u.http.Do(req)
	if err != nil {
		u.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const adminPW = "correct horse battery staple"

func (u *unit) setupAndLogin() string {
	u.t.Helper()
	if code, body := u.call("POST", "/api/v1/setup", "", fmt.Sprintf(`{"code":%q,"password":%q}`, u.code, adminPW)); code != 204 {
		u.t.Fatalf("setup = %d %s", code, body)
	}
	return u.login()
}

func (u *unit) login() string {
	u.t.Helper()
	code, body := u.call("POST", "/api/v1/login", "", fmt.Sprintf(`{"user":"admin","password":%q}`, adminPW))
	var out struct{ Token string }
	if code != 200 || json.Unmarshal([]byte(body), &out) != nil || out.Token == "" {
		u.t.Fatalf("login = %d %s", code, body)
	}
	return out.Token
}

type status struct {
	Hostname string `json:"hostname"`
	Version  string `json:"version"`
	UptimeS  int64  `json:"uptime_s"`
	Disks    []struct {
		Name      string `json:"name"`
		Serial    string `json:"serial"`
		Model     string `json:"model"`
		SizeBytes int64  `json:"size_bytes"`
	} `json:"disks"`
	Services []struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		Restarts int    `json:"restarts"`
		LastExit string `json:"last_exit"`
	} `json:"services"`
}

// get decodes the JSON answer of GET path into v; anything but 200 fails the test.
func (u *unit) get(path, token string, v any) {
	u.t.Helper()
	code, body := u.call("GET", path, token, "")
	if code != 200 || json.Unmarshal([]byte(body), v) != nil {
		u.t.Fatalf("GET %s = %d %s", path, code, body)
	}
}

func (u *unit) status(token string) status {
	u.t.Helper()
	var st status
	u.get("/api/v1/status", token, &st)
	return st
}

func serials(st status) map[string]int64 {
	out := map[string]int64{}
	for _, d := range st.Disks {
		out[d.Serial] = d.SizeBytes
	}
	return out
}

// eventually retries f until it returns nil or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// keep gives each disk an image file that outlives one boot (in the test's directory), so a test can boot
// the unit again on the same disks.
func keep(t testing.TB, disks ...Disk) []Disk {
	dir := t.TempDir()
	for i := range disks {
		if disks[i].Path == "" {
			disks[i].Path = filepath.Join(dir, disks[i].ID+".img")
		}
	}
	return disks
}

// shutdown asks the unit to power off or reboot and waits for QEMU to end (it runs with -no-reboot).
func (u *unit) shutdown(token, action string) {
	u.t.Helper()
	if code, body := u.call("POST", "/api/v1/system/"+action, token, ""); code != 202 {
		u.t.Fatalf("%s = %d %s", action, code, body)
	}
	if err := u.Wait(2 * time.Minute); err != nil {
		u.t.Fatal(err)
	}
}
