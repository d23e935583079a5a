package webui

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/auth"
	"github.com/lawbox/appliance/appliance/shares"
	"github.com/lawbox/appliance/appliance/state"
)

type env struct {
	db      *fakeDB
	health  *fakeHealth
	srv     *Server
	h       http.Handler
	auth    *auth.Auth
	sys     *fakeSystem
	storage *fakeStorage
	pair    *fakePair
	net     *fakeNetwork
	backups *fakeBackups
	notify  *fakeNotify
	certs   *fakeCerts
	fw      *fakeFirmware
	clock   *fakeClock
}

func newEnv(t testing.TB) *env {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := auth.New(st, log, time.Now)
	sys := &fakeSystem{}
	p := 0.375
	eta := int64(90)
	sto := &fakeStorage{st: appliance.StorageStatus{
		Arrays: []appliance.Array{{Name: "data", Level: "raid1", State: appliance.ArrayRebuilding, RebuildProgress: &p, ETASeconds: &eta,
			Members: []appliance.Member{{Serial: "SN-A", State: "in_sync"}, {Serial: "SN-B", State: "rebuilding"}}}},
		Disks: []appliance.StorageDisk{{Serial: "SN-A", Role: "member", State: "ok"}, {Serial: "SN-B", Role: "member", State: "rebuilding"},
			{Serial: "SN-OLD", Role: "unused", State: "needs_adopt", Reason: "holds an ext2/3/4 filesystem"}},
		Alerts: []appliance.Alert{appliance.NewAlert("warning", "the %s array is rebuilding", "data")},
		Space: []appliance.Space{{Name: "data", SizeBytes: 100e9, UsedBytes: 87e9, FreeBytes: 12e9, Percent: 87.9,
			Parts:   []appliance.SpacePart{{Name: "database", UsedBytes: 40e9}, {Name: "backups", UsedBytes: 45e9}},
			History: []appliance.SpacePoint{{Day: time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC), UsedBytes: 80e9}, {Day: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC), UsedBytes: 87e9}}}},
	}}
	hl := &fakeHealth{disks: []appliance.DiskHealth{{Serial: "SN-A", Model: "QEMU NVMe Ctrl", Device: "nvme0n1", SMART: appliance.SMARTStatus{
		Supported: true, Health: "replace", TemperatureC: 44, HotC: 70,
		Findings: []appliance.Finding{{Key: "nvme-warning-4", Level: "replace", Message: "NVMe critical warning: degraded reliability", Value: 5}}}}}}
	db := &fakeDB{}
	pr := &fakePair{st: appliance.PairStatus{Name: "unit-a", Role: "single", Rejected: map[string]int{}}}
	nw := &fakeNetwork{}
	bk := &fakeBackups{}
	nt := &fakeNotify{}
	ct := &fakeCerts{info: appliance.CertInfo{Subject: "CN=unit-a", Issuer: "CN=unit-a", SelfSigned: true, Names: []string{"unit-a"}, Fingerprint: "AB:CD"}}
	fw := &fakeFirmware{}
	clk := &fakeClock{st: appliance.ClockStatus{Servers: []string{"pool.ntp.org"}, Checked: time.Now().Add(-time.Minute), Server: "pool.ntp.org", OffsetS: 0.004}}
	// The file server's settings are the real ones (it serves nothing here: it is not run).
	sh := &shares.Server{Log: log, Store: st, Dir: "/data/documents"}
	srv, err := New(Parts{Auth: a, System: sys, Storage: sto, Health: hl, Database: db, Pair: pr, Network: nw, Backups: bk, Notify: nt, Certs: ct, Firmware: fw, Shares: sh, Clock: clk}, log)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, h: srv.Handler(), auth: a, sys: sys, storage: sto, health: hl, db: db, pair: pr, net: nw, backups: bk, notify: nt, certs: ct, fw: fw, clock: clk}
}

type req struct {
	method, path, body string
	hdr                map[string]string
	running            bool // a form that starts a job: answer while it runs (by default, once jobs ended)
}

func (e *env) do(r req) *httptest.ResponseRecorder {
	hr := httptest.NewRequest(r.method, "https://unit.test"+r.path, strings.NewReader(r.body))
	if r.body != "" && strings.HasPrefix(r.path, "/api/") {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.hdr {
		hr.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, hr)
	if loc := w.Header().Get("Location"); r.method == "POST" && w.Code == http.StatusSeeOther && r.hdr["Cookie"] != "" && !strings.HasPrefix(r.path, "/api/") {
		// a form's outcome is on the page its redirect loads, as in a browser
		if !r.running {
			e.jobsEnded()
		}
		return e.do(req{method: "GET", path: loc, hdr: map[string]string{"Cookie": r.hdr["Cookie"]}})
	}
	return w
}

// jobsEnded waits until no job runs.
func (e *env) jobsEnded() {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if !slices.ContainsFunc(e.srv.jobs.snapshot(), Job.Running) {
			return
		}
	}
	panic("a job still runs after 10 s")
}

const pw = "a long enough password"

func (e *env) setUpAndLogin(t testing.TB) string {
	t.Helper()
	if w := e.do(req{method: "POST", path: "/api/v1/setup", body: `{"code":"` + e.auth.SetupCode() + `","password":"` + pw + `"}`}); w.Code != 204 {
		t.Fatalf("setup = %d %s", w.Code, w.Body)
	}
	w := e.do(req{method: "POST", path: "/api/v1/login", body: `{"user":"admin","password":"` + pw + `"}`})
	var out struct{ Token string }
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &out) != nil || out.Token == "" {
		t.Fatalf("login = %d %s", w.Code, w.Body)
	}
	return out.Token
}

func TestSetupAPI(t *testing.T) {
	e := newEnv(t)
	code := e.auth.SetupCode()
	for _, tc := range []struct {
		body string
		want int
		msg  string
	}{
		{`{"code":"WRONG","password":"` + pw + `"}`, 403, "wrong setup code"},
		{`{"code":"` + code + `","password":"short"}`, 400, "at least 12"},
		{`{"code":"` + code + `","password":`, 400, "malformed request"},
		{`{"code":"` + code + `","password":"` + pw + `","admin":true}`, 400, "unknown field"},
		{`{"code":"` + code + `","password":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413, "larger than"},
		{`{"code":"` + code + `","password":"` + pw + `"}`, 204, ""},
		{`{"code":"` + code + `","password":"` + pw + `"}`, 409, "already set up"},
	} {
		w := e.do(req{method: "POST", path: "/api/v1/setup", body: tc.body})
		if w.Code != tc.want || !strings.Contains(w.Body.String(), tc.msg) {
			t.Errorf("setup %.40q = %d %q, want %d with %q", tc.body, w.Code, w.Body, tc.want, tc.msg)
		}
	}
}

func TestLoginAndStatus(t *testing.T) {
	e := newEnv(t)
	if w := e.do(req{method: "GET", path: "/api/v1/status"}); w.Code != 401 {
		t.Errorf("status without auth = %d, want 401", w.Code)
	}
	tok := e.setUpAndLogin(t)
	w := e.do(req{method: "POST", path: "/api/v1/login", body: `{"user":"admin","password":"` + pw + `"}`})
	c := w.Result().Cookies()
	if len(c) != 1 || !c[0].Secure || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("login cookie = %+v, want one Secure HttpOnly SameSite=Strict cookie", c)
	}
	w = e.do(req{method: "GET", path: "/api/v1/status", hdr: map[string]string{"Authorization": "Bearer " + tok}})
	var st appliance.Status
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &st) != nil || st.Hostname != "unit-a" || len(st.Disks) != 1 || st.Disks[0].Serial != "SN-A" {
		t.Errorf("status = %d %s", w.Code, w.Body)
	}
	// The cookie works as well as the bearer token, and the page shows the disk.
	w = e.do(req{method: "GET", path: "/", hdr: map[string]string{"Cookie": CookieName + "=" + c[0].Value}})
	if w.Code != 200 || !strings.Contains(w.Body.String(), "SN-A") {
		t.Errorf("status page = %d, want 200 with the disk serial", w.Code)
	}
	// The fakes hold a rebuilding array and a disk SMART rates "replace": the dashboard says so in red.
	if b := w.Body.String(); !strings.Contains(b, "summary-red") || !strings.Contains(b, "disk SN-A: NVMe critical warning") ||
		!strings.Contains(b, `value="87.9" aria-label="Used"></meter> 87.9 % used, 12.0 GB free`) {
		t.Errorf("dashboard summary missing or wrong:\n%s", b)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/login", body: `{"user":"admin","password":"nope nope nope"}`}); w.Code != 401 {
		t.Errorf("wrong password = %d, want 401", w.Code)
	}
}

func TestLoginRateLimited(t *testing.T) {
	e := newEnv(t)
	e.setUpAndLogin(t)
	var w *httptest.ResponseRecorder
	for range 6 {
		w = e.do(req{method: "POST", path: "/api/v1/login", body: `{"user":"admin","password":"nope nope nope"}`})
	}
	if w.Code != 429 || w.Header().Get("Retry-After") == "" {
		t.Errorf("6th wrong login = %d (Retry-After %q), want 429 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
}

// Every route that is not on the public list refuses an anonymous caller. The list is read from the route
// table, so a new route cannot be forgotten.
func TestEveryRouteNeedsAuth(t *testing.T) {
	e := newEnv(t)
	e.setUpAndLogin(t)
	public := map[string]bool{"GET /{$}": true, "GET /setup": true, "POST /setup": true, "GET /login": true,
		"POST /login": true, "POST /lang": true, "POST /api/v1/setup": true, "POST /api/v1/login": true}
	param := regexp.MustCompile(`\{[a-z$]*\}`)
	for _, rt := range e.srv.Routes() {
		if (rt.Access == Public) != public[rt.Pattern] {
			t.Errorf("route %s: access %d, public list says %v", rt.Pattern, rt.Access, public[rt.Pattern])
			continue
		}
		if rt.Access == Public {
			continue
		}
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = param.ReplaceAllString(path, "reboot")
		w := e.do(req{method: method, path: path, body: "{}"})
		if w.Code != 401 && !(w.Code == 303 && w.Header().Get("Location") == "/login") {
			t.Errorf("%s %s without auth = %d, want 401 or a redirect to /login", method, path, w.Code)
		}
	}
	if len(e.sys.shutdowns) != 0 {
		t.Errorf("an anonymous request shut the unit down: %v", e.sys.shutdowns)
	}
}

func TestCrossOriginRefused(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	w := e.do(req{method: "POST", path: "/system/poweroff", body: "confirm=yes", hdr: map[string]string{
		"Cookie": CookieName + "=" + tok, "Sec-Fetch-Site": "cross-site", "Content-Type": "application/x-www-form-urlencoded"}})
	if w.Code != 403 || len(e.sys.shutdowns) != 0 {
		t.Errorf("cross-site form POST = %d, shutdowns %v; want 403 and none", w.Code, e.sys.shutdowns)
	}
	w = e.do(req{method: "POST", path: "/api/v1/system/reboot", hdr: map[string]string{"Authorization": "Bearer " + tok}})
	if w.Code != 202 || len(e.sys.shutdowns) != 1 || !e.sys.shutdowns[0] {
		t.Errorf("reboot with bearer = %d, shutdowns %v; want 202 and one reboot", w.Code, e.sys.shutdowns)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	w := e.do(req{method: "GET", path: "/setup"})
	if w.Code != 200 || !strings.Contains(w.Body.String(), "setup code") {
		t.Fatalf("setup page = %d", w.Code)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"} {
		if w.Header().Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
}

func TestSummaryLevels(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if s := e.srv.summarize(ctx); s.Level != "red" {
		t.Errorf("with a disk to replace: %+v", s)
	}
	e.health.disks[0].SMART.Findings[0].Acknowledged = true
	if s := e.srv.summarize(ctx); s.Level != "amber" || len(s.Alerts) != 2 {
		t.Errorf("acknowledged, array rebuilding, no backups: %+v", s)
	}
	e.storage.st.Alerts = nil
	if s := e.srv.summarize(ctx); s.Level != "amber" || len(s.Alerts) != 1 || !strings.Contains(s.Alerts[0].Message, "backups are not set up") {
		t.Errorf("without backups: %+v", s)
	}
	e.backups.identity = "AGE-SECRET-KEY-1TEST"
	if s := e.srv.summarize(ctx); s.Level != "green" || !strings.Contains(s.Sentence, "Everything is working") {
		t.Errorf("all well: %+v", s)
	}
}
