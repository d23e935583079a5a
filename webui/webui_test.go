package webui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/auth"
	"github.com/lawbox/appliance/appliance/state"
)

// fakeSystem stands in for the unit's hardware; auth is the real one on a temporary store.
type fakeSystem struct{ shutdowns []bool }

func (f *fakeSystem) Status(context.Context) (appliance.Status, error) {
	return appliance.Status{Version: "test", Hostname: "unit-a", UptimeS: 42,
		Disks: []appliance.Disk{{Name: "vda", Serial: "SN-A", SizeBytes: 1 << 30}}}, nil
}

func (f *fakeSystem) Shutdown(_ context.Context, reboot bool) error {
	f.shutdowns = append(f.shutdowns, reboot)
	return nil
}

// fakeStorage records the storage actions the UI asks for.
type fakeStorage struct {
	st       appliance.StorageStatus
	scrubs   int
	adopted  []string
	scrubErr error
}

func (f *fakeStorage) Storage(context.Context) (appliance.StorageStatus, error) { return f.st, nil }

func (f *fakeStorage) Scrub(context.Context) error {
	if f.scrubErr != nil {
		return f.scrubErr
	}
	f.scrubs++
	return nil
}

func (f *fakeStorage) Adopt(_ context.Context, serial string) error {
	for _, d := range f.st.Disks {
		if d.Serial == serial {
			f.adopted = append(f.adopted, serial)
			return nil
		}
	}
	return fmt.Errorf("adopt %s: %w", serial, appliance.ErrNotFound)
}

func (f *fakeStorage) SetPolicy(_ context.Context, p appliance.StoragePolicyChange) error {
	if p.AutoAdd != nil {
		f.st.AutoAdd = *p.AutoAdd
	}
	if p.ProactiveReplace != nil {
		f.st.ProactiveReplace = *p.ProactiveReplace
	}
	return nil
}

// fakeHealth holds one NVMe disk with a warning.
type fakeHealth struct {
	disks []appliance.DiskHealth
	acked []string
	tests []string
	poll  int
}

func (f *fakeHealth) Disks(context.Context) ([]appliance.DiskHealth, error) { return f.disks, nil }

func (f *fakeHealth) find(serial string) error {
	for _, d := range f.disks {
		if d.Serial == serial {
			return nil
		}
	}
	return fmt.Errorf("disk %s: %w", serial, appliance.ErrNotFound)
}

func (f *fakeHealth) Refresh(_ context.Context, serial string) error { return f.find(serial) }

func (f *fakeHealth) SelfTest(_ context.Context, serial, kind string) error {
	if err := f.find(serial); err != nil {
		return err
	}
	if kind != "short" && kind != "long" {
		return fmt.Errorf("kind %q: %w", kind, appliance.ErrBadInput)
	}
	f.tests = append(f.tests, kind)
	return nil
}

func (f *fakeHealth) Acknowledge(_ context.Context, serial, key string) error {
	if err := f.find(serial); err != nil {
		return err
	}
	f.acked = append(f.acked, key)
	return nil
}

func (f *fakeHealth) SetPollMinutes(_ context.Context, n int) error {
	if n < 1 {
		return fmt.Errorf("%d: %w", n, appliance.ErrBadInput)
	}
	f.poll = n
	return nil
}

func (f *fakeHealth) History(context.Context, string) ([]appliance.HistoryPoint, error) {
	t0 := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	return []appliance.HistoryPoint{{Time: t0, TemperatureC: 38}, {Time: t0.Add(time.Hour), TemperatureC: 44}}, nil
}

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
}

func newEnv(t *testing.T) *env {
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
		Alerts: []appliance.Alert{{Level: "warning", Message: "the data array is rebuilding"}},
	}}
	hl := &fakeHealth{disks: []appliance.DiskHealth{{Serial: "SN-A", Model: "QEMU NVMe Ctrl", Device: "nvme0n1", SMART: appliance.SMARTStatus{
		Supported: true, Health: "replace", TemperatureC: 44,
		Findings: []appliance.Finding{{Key: "nvme-warning-4", Level: "replace", Message: "NVMe critical warning: degraded reliability", Value: 5}}}}}}
	db := &fakeDB{}
	pr := &fakePair{st: appliance.PairStatus{Name: "unit-a", Role: "single", Rejected: map[string]int{}}}
	nw := &fakeNetwork{}
	bk := &fakeBackups{}
	srv, err := New(Parts{Auth: a, System: sys, Storage: sto, Health: hl, Database: db, Pair: pr, Network: nw, Backups: bk}, log)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, h: srv.Handler(), auth: a, sys: sys, storage: sto, health: hl, db: db, pair: pr, net: nw, backups: bk}
}

type req struct {
	method, path, body string
	hdr                map[string]string
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
	return w
}

const pw = "a long enough password"

func (e *env) setUpAndLogin(t *testing.T) string {
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
	if b := w.Body.String(); !strings.Contains(b, "summary-red") || !strings.Contains(b, "disk SN-A: NVMe critical warning") {
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
		"POST /login": true, "POST /api/v1/setup": true, "POST /api/v1/login": true}
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

func TestStorageAPIAndPage(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	w := e.do(req{method: "GET", path: "/api/v1/storage", hdr: bearer})
	var st struct {
		Arrays []struct {
			Name, Level, State string
			RebuildProgress    *float64 `json:"rebuild_progress"`
			Members            []struct{ Serial, State string }
		}
		Disks []struct{ Serial, Role, State string }
	}
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &st) != nil || len(st.Arrays) != 1 || st.Arrays[0].State != "rebuilding" ||
		st.Arrays[0].RebuildProgress == nil || *st.Arrays[0].RebuildProgress != 0.375 || st.Arrays[0].Members[1].State != "rebuilding" || len(st.Disks) != 3 {
		t.Fatalf("storage = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/storage/scrub", hdr: bearer}); w.Code != 202 || e.storage.scrubs != 1 {
		t.Errorf("scrub = %d (%d scrubs)", w.Code, e.storage.scrubs)
	}
	e.storage.scrubErr = fmt.Errorf("scrub the data array: it is rebuilding: %w", appliance.ErrConflict)
	if w := e.do(req{method: "POST", path: "/api/v1/storage/scrub", hdr: bearer}); w.Code != 409 || !strings.Contains(w.Body.String(), "rebuilding") {
		t.Errorf("scrub while rebuilding = %d %s, want 409", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/storage/disks/NOPE/adopt", hdr: bearer}); w.Code != 404 {
		t.Errorf("adopt an unknown disk = %d, want 404", w.Code)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/storage/disks/SN-OLD/adopt", hdr: bearer}); w.Code != 202 || len(e.storage.adopted) != 1 {
		t.Errorf("adopt = %d, adopted %v", w.Code, e.storage.adopted)
	}
	for _, body := range []string{`{}`, `{"auto_add":"yes"}`, `{"auto_add":false,"x":1}`, `{"proactive_replace":1}`} {
		if w := e.do(req{method: "PUT", path: "/api/v1/storage/policy", hdr: bearer, body: body}); w.Code != 400 {
			t.Errorf("policy %s = %d, want 400", body, w.Code)
		}
	}
	e.storage.st.ProactiveReplace = true
	if w := e.do(req{method: "PUT", path: "/api/v1/storage/policy", hdr: bearer, body: `{"auto_add":false}`}); w.Code != 204 || e.storage.st.AutoAdd || !e.storage.st.ProactiveReplace {
		t.Errorf("policy = %d, %+v", w.Code, e.storage.st.StoragePolicy)
	}
	// The page: a progress bar, the reason a disk is not used, and an adopt form that demands confirmation.
	cookie := map[string]string{"Cookie": CookieName + "=" + tok}
	w = e.do(req{method: "GET", path: "/storage", hdr: cookie})
	body := w.Body.String()
	for _, want := range []string{`<progress max="100" value="37.5">`, "holds an ext2/3/4 filesystem", `action="/storage/disks/SN-OLD/adopt"`, `http-equiv="refresh"`} {
		if !strings.Contains(body, want) {
			t.Errorf("storage page lacks %q", want)
		}
	}
	form := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	if w := e.do(req{method: "POST", path: "/storage/disks/SN-OLD/adopt", hdr: form, body: "confirm=no"}); len(e.storage.adopted) != 1 || !strings.Contains(w.Body.String(), "malformed") {
		t.Errorf("adopt without confirmation went through: %v", e.storage.adopted)
	}
	if e.do(req{method: "POST", path: "/storage/disks/SN-OLD/adopt", hdr: form, body: "confirm=erase"}); len(e.storage.adopted) != 2 {
		t.Errorf("confirmed adopt: %v", e.storage.adopted)
	}
}

func TestDisksAPIAndPage(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	w := e.do(req{method: "GET", path: "/api/v1/disks", hdr: bearer})
	var ds []struct {
		Serial string
		SMART  struct {
			Supported bool
			Health    string
			Findings  []struct{ Key string }
		}
	}
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &ds) != nil || len(ds) != 1 || ds[0].SMART.Health != "replace" || ds[0].SMART.Findings[0].Key != "nvme-warning-4" {
		t.Fatalf("disks = %d %s", w.Code, w.Body)
	}
	for _, c := range []struct {
		path, body string
		want       int
	}{
		{"/api/v1/disks/SN-A/smart/refresh", "", 204},
		{"/api/v1/disks/NOPE/smart/refresh", "", 404},
		{"/api/v1/disks/SN-A/smart/selftest", `{"kind":"short"}`, 202},
		{"/api/v1/disks/SN-A/smart/selftest", `{"kind":"forever"}`, 400},
		{"/api/v1/disks/SN-A/smart/selftest", `{"kind":"short","x":1}`, 400},
		{"/api/v1/disks/SN-A/alerts/nvme-warning-4/ack", "", 204},
		{"/api/v1/disks/NOPE/alerts/nvme-warning-4/ack", "", 404},
	} {
		if w := e.do(req{method: "POST", path: c.path, body: c.body, hdr: bearer}); w.Code != c.want {
			t.Errorf("POST %s %s = %d %s, want %d", c.path, c.body, w.Code, w.Body, c.want)
		}
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/disks/policy", body: `{"poll_minutes":0}`, hdr: bearer}); w.Code != 400 {
		t.Errorf("poll every 0 minutes = %d", w.Code)
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/disks/policy", body: `{"poll_minutes":10}`, hdr: bearer}); w.Code != 204 || e.health.poll != 10 {
		t.Errorf("poll every 10 minutes = %d (%d)", w.Code, e.health.poll)
	}
	if len(e.health.tests) != 1 || len(e.health.acked) != 1 {
		t.Errorf("self-tests %v, acknowledgements %v", e.health.tests, e.health.acked)
	}
	cookie := map[string]string{"Cookie": CookieName + "=" + tok}
	body := e.do(req{method: "GET", path: "/disks/SN-A", hdr: cookie}).Body.String()
	for _, want := range []string{"<svg", "<polyline", "44 °C", "degraded reliability", `action="/disks/SN-A/alerts/nvme-warning-4/ack"`} {
		if !strings.Contains(body, want) {
			t.Errorf("disk page lacks %q", want)
		}
	}
	if w := e.do(req{method: "GET", path: "/disks/NOPE", hdr: cookie}); w.Code != 404 {
		t.Errorf("page of an unknown disk = %d", w.Code)
	}
	if body := e.do(req{method: "GET", path: "/storage", hdr: cookie}).Body.String(); !strings.Contains(body, "replace this disk") {
		t.Error("the storage page does not flag the disk to replace")
	}
}

// fakeDB is a running server with one database.
type fakeDB struct {
	created  []string
	upstream string
	promoted int
	policy   appliance.DatabasePolicy
}

func (f *fakeDB) Database(context.Context) (appliance.DatabaseStatus, error) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	return appliance.DatabaseStatus{Role: "production", State: "running", Version: "15.14", Mirror: "streaming from 192.0.2.12",
		LagHistory: []appliance.LagPoint{{Time: t0, Seconds: 0.2}, {Time: t0.Add(10 * time.Second), Seconds: 1.5}},
		Databases:  []appliance.DatabaseInfo{{Name: "practice", Owner: "practice_app", SizeBytes: 8 << 20}}}, nil
}

func (f *fakeDB) CreateDatabase(_ context.Context, name, owner string) (appliance.NewDatabase, error) {
	if name == "" || strings.ContainsAny(name+owner, "'\\ ;") {
		return appliance.NewDatabase{}, fmt.Errorf("name %q: %w", name, appliance.ErrBadInput)
	}
	f.created = append(f.created, name)
	return appliance.NewDatabase{Name: name, Owner: owner, Password: "pw", URL: "postgresql://" + owner + ":pw@unit:5432/" + name}, nil
}

func (f *fakeDB) SetUpstream(_ context.Context, u appliance.Upstream) error {
	if u.Host == "" {
		return fmt.Errorf("upstream: %w", appliance.ErrBadInput)
	}
	f.upstream = u.Host
	return nil
}

func (f *fakeDB) Promote(context.Context) (appliance.Promotion, error) {
	f.promoted++
	return appliance.Promotion{Seconds: 1.5}, nil
}

func (f *fakeDB) SetPolicy(_ context.Context, p appliance.DatabasePolicy) error {
	if p.DegradeAfterS < 0 {
		return fmt.Errorf("degrade: %w", appliance.ErrBadInput)
	}
	f.policy = p
	return nil
}

func TestDatabaseAPI(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	if w := e.do(req{method: "GET", path: "/api/v1/database", hdr: bearer}); w.Code != 200 || !strings.Contains(w.Body.String(), `"role":"production"`) {
		t.Errorf("database = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/database/databases", hdr: bearer, body: `{"name":"x'; DROP","owner":"a"}`}); w.Code != 400 {
		t.Errorf("bad name = %d %s", w.Code, w.Body)
	}
	w := e.do(req{method: "POST", path: "/api/v1/database/databases", hdr: bearer, body: `{"name":"billing","owner":"billing_app"}`})
	if w.Code != 201 || !strings.Contains(w.Body.String(), "postgresql://billing_app:pw@") {
		t.Errorf("create = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/database/upstream", hdr: bearer, body: `{"host":"","port":5432}`}); w.Code != 400 {
		t.Errorf("upstream without a host = %d", w.Code)
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/database/upstream", hdr: bearer, body: `{"host":"192.0.2.10","port":5432,"user":"repl","password":"x"}`}); w.Code != 202 {
		t.Errorf("upstream = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/database/promote", hdr: bearer}); w.Code != 200 || !strings.Contains(w.Body.String(), `"seconds":1.5`) {
		t.Errorf("promote = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/database/policy", hdr: bearer, body: `{"sync":true,"degrade_after_s":-1}`}); w.Code != 400 {
		t.Errorf("negative degrade timeout = %d", w.Code)
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/database/policy", hdr: bearer, body: `{"sync":true,"degrade_after_s":30}`}); w.Code != 204 || e.db.policy != (appliance.DatabasePolicy{Sync: true, DegradeAfterS: 30}) {
		t.Errorf("policy = %d %+v", w.Code, e.db.policy)
	}
	form := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	if w := e.do(req{method: "POST", path: "/database/policy", hdr: form, body: "sync=async&degrade_after_s=5"}); !strings.Contains(w.Body.String(), "policy saved") || e.db.policy.Sync {
		t.Errorf("policy form: %+v", e.db.policy)
	}
	if e.do(req{method: "POST", path: "/database/promote", hdr: form, body: "confirm=no"}); e.db.promoted != 1 {
		t.Error("promoted without the confirmation")
	}
	body := e.do(req{method: "GET", path: "/database", hdr: map[string]string{"Cookie": CookieName + "=" + tok}}).Body.String()
	form2 := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	if w := e.do(req{method: "POST", path: "/database/upstream", hdr: form2, body: "host=192.0.2.20&port=5432&user=repl&password=pw&confirm=erase"}); e.db.upstream != "192.0.2.20" || !strings.Contains(w.Body.String(), "now copies") {
		t.Errorf("upstream form: %q", e.db.upstream)
	}
	if !strings.Contains(body, "Mirror lag") || !strings.Contains(body, "<polyline") || !strings.Contains(body, "2.0 s") {
		t.Error("database page lacks the lag graph")
	}
	if !strings.Contains(body, "practice_app") || !strings.Contains(body, `action="/database/databases"`) || !strings.Contains(body, `action="/database/upstream"`) {
		t.Error("database page lacks the database list or the create form")
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

type fakePair struct {
	st       appliance.PairStatus
	settings appliance.PairSettings
	roles    []string
}

func (f *fakePair) Pair() appliance.PairStatus { return f.st }
func (f *fakePair) Invite(_ context.Context, s appliance.PairSettings) (string, error) {
	if s.VIP == "" {
		return "", fmt.Errorf("%w: no service address", appliance.ErrBadInput)
	}
	f.settings = s
	return "ABCD-EFGH-IJKL-MNOP", nil
}
func (f *fakePair) Join(_ context.Context, peer, code string) error {
	if code != "ABCD-EFGH-IJKL-MNOP" {
		return fmt.Errorf("%w: no answer from %s", appliance.ErrUnavailable, peer)
	}
	f.st.Paired, f.st.Role, f.st.Peer = true, "standby", &appliance.PairPeer{Name: "unit-b", Address: peer}
	return nil
}
func (f *fakePair) Unpair(context.Context) error {
	f.st = appliance.PairStatus{Role: "single"}
	return nil
}
func (f *fakePair) SetMaintenance(_ context.Context, on bool) error {
	if on && f.st.Role != "standby" {
		return fmt.Errorf("%w: not a standby", appliance.ErrConflict)
	}
	f.st.Maintenance = on
	return nil
}

func (f *fakePair) SetRole(_ context.Context, role string, force bool) error {
	if role != "active" && role != "standby" {
		return fmt.Errorf("%w: role %q", appliance.ErrBadInput, role)
	}
	f.roles = append(f.roles, fmt.Sprint(role, force))
	return nil
}
func (f *fakePair) WitnessKey() (string, error) { return "00ff", nil }

type fakeNetwork struct{ ports []appliance.NetworkPort }

func (f *fakeNetwork) Ports() []appliance.NetworkPort { return f.ports }
func (f *fakeNetwork) SetPorts(_ context.Context, p []appliance.NetworkPort) error {
	for _, port := range p {
		if len(port.Addresses) == 0 {
			return fmt.Errorf("%w: port %s: no address", appliance.ErrBadInput, port.Name)
		}
	}
	f.ports = p
	return nil
}

func TestPairAPIAndPage(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	if w := e.do(req{method: "GET", path: "/api/v1/pair", hdr: bearer}); w.Code != 200 || !strings.Contains(w.Body.String(), `"role":"single"`) {
		t.Errorf("pair = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/pair/invite", hdr: bearer, body: `{"mode":"auto"}`}); w.Code != 400 {
		t.Errorf("invite without a service address = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/pair/invite", hdr: bearer, body: `{"vip":"192.0.2.100/24","mode":"auto","witness":"192.0.2.30:7947"}`}); w.Code != 201 || !strings.Contains(w.Body.String(), `"code":"ABCD-`) {
		t.Errorf("invite = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/pair/join", hdr: bearer, body: `{"peer":"192.0.2.11","code":"WRONG"}`}); w.Code != 503 {
		t.Errorf("join with a wrong code = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/pair/join", hdr: bearer, body: `{"peer":"192.0.2.11","code":"ABCD-EFGH-IJKL-MNOP"}`}); w.Code != 200 || !strings.Contains(w.Body.String(), `"paired":true`) {
		t.Errorf("join = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/pair/role", hdr: bearer, body: `{"role":"boss"}`}); w.Code != 400 {
		t.Errorf("bad role = %d", w.Code)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/pair/role", hdr: bearer, body: `{"role":"active","force":true}`}); w.Code != 202 || len(e.pair.roles) != 1 {
		t.Errorf("role = %d %v", w.Code, e.pair.roles)
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/network", hdr: bearer, body: `{"ports":[{"name":"eth1","addresses":["192.0.2.11/24"]}]}`}); w.Code != 200 || len(e.net.ports) != 1 {
		t.Errorf("network = %d %s", w.Code, w.Body)
	}
	cookie := map[string]string{"Cookie": CookieName + "=" + tok}
	body := e.do(req{method: "GET", path: "/pair", hdr: cookie}).Body.String()
	for _, want := range []string{"unit-b", "192.0.2.11/24", `action="/pair/role"`, `action="/pair/unpair"`, "witness -key-file"} {
		if !strings.Contains(body, want) {
			t.Errorf("pair page lacks %q", want)
		}
	}
	form := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	if e.do(req{method: "POST", path: "/pair/unpair", hdr: form, body: "confirm=no"}); !e.pair.st.Paired {
		t.Error("unpaired without the confirmation")
	}
	if w := e.do(req{method: "DELETE", path: "/api/v1/pair", hdr: bearer}); w.Code != 204 || e.pair.st.Paired {
		t.Errorf("unpair = %d", w.Code)
	}
	if w := e.do(req{method: "POST", path: "/pair/invite", hdr: form, body: "vip=192.0.2.100%2F24&mode=manual"}); !strings.Contains(w.Body.String(), "ABCD-EFGH-IJKL-MNOP") || e.pair.settings.Mode != "manual" {
		t.Errorf("invite form did not show the code")
	}
}

func TestDatabaseAlerts(t *testing.T) {
	lag := 90.0
	for _, c := range []struct {
		db     appliance.DatabaseStatus
		paired bool
		want   string
	}{
		{appliance.DatabaseStatus{Role: "none", State: "copying from the partner unit: 40 %"}, true, "copying from the partner unit: 40 %"},
		{appliance.DatabaseStatus{Role: "production", State: "running"}, true, "not mirroring"},
		{appliance.DatabaseStatus{Role: "production", State: "running", Mirror: "streaming from 192.0.2.12", Sync: "degraded"}, true, "synchronous mode is suspended"},
		{appliance.DatabaseStatus{Role: "mirror", State: "running", LagSeconds: &lag}, true, "90 s behind"},
		{appliance.DatabaseStatus{Role: "production", State: "running"}, false, ""},
		{appliance.DatabaseStatus{Role: "production", State: "running", Mirror: "streaming from 192.0.2.12", Sync: "sync"}, true, ""},
	} {
		got := dbAlerts(c.db, c.paired)
		if c.want == "" && len(got) != 0 || c.want != "" && (len(got) != 1 || !strings.Contains(got[0].Message, c.want)) {
			t.Errorf("%+v paired=%v: %+v, want %q", c.db, c.paired, got, c.want)
		}
	}
}

// fakeBackups has one verified backup once set up.
type fakeBackups struct {
	identity string
	targets  []appliance.BackupTarget
	runs     int
}

func (f *fakeBackups) Backups(context.Context) (appliance.BackupStatus, error) {
	st := appliance.BackupStatus{SetUp: f.identity != "", Backups: []appliance.Backup{}}
	if st.SetUp {
		v := &appliance.BackupVerification{ID: "20261123T020000Z-dump", Target: "s3://x/y/", OK: true, Time: time.Now().Add(-time.Hour)}
		st.Backups = append(st.Backups, appliance.Backup{ID: v.ID, Kind: "dump", SizeBytes: 1 << 20, Targets: []string{"this unit", v.Target}, Verified: v})
		st.LastVerified = v
	}
	return st, nil
}

func (f *fakeBackups) CreateIdentity(context.Context) (string, error) {
	if f.identity != "" {
		return "", fmt.Errorf("exists: %w", appliance.ErrConflict)
	}
	f.identity = "AGE-SECRET-KEY-1TEST"
	return f.identity, nil
}

func (f *fakeBackups) SetTargets(_ context.Context, ts []appliance.BackupTarget) error {
	for _, t := range ts {
		if t.Kind == "s3" && t.Bucket == "" {
			return fmt.Errorf("bucket: %w", appliance.ErrBadInput)
		}
	}
	f.targets = ts
	return nil
}

func (f *fakeBackups) RunBackup(_ context.Context, kind string) (appliance.Backup, error) {
	f.runs++
	return appliance.Backup{ID: "20261123T101500Z-" + kind, Kind: kind}, nil
}

func (f *fakeBackups) VerifyBackup(_ context.Context, id string) (appliance.BackupVerification, error) {
	if id != "20261123T020000Z-dump" {
		return appliance.BackupVerification{}, fmt.Errorf("backup %s: %w", id, appliance.ErrNotFound)
	}
	return appliance.BackupVerification{ID: id, OK: true, Detail: "restored"}, nil
}

func TestBackupsAPIAndPage(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	cookie := map[string]string{"Cookie": CookieName + "=" + tok}
	if body := e.do(req{method: "GET", path: "/backups", hdr: cookie}).Body.String(); !strings.Contains(body, `action="/backups/identity"`) {
		t.Error("the backups page does not offer to set backups up")
	}
	form := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	if body := e.do(req{method: "POST", path: "/backups/identity", hdr: form}).Body.String(); !strings.Contains(body, "AGE-SECRET-KEY-1TEST") || !strings.Contains(body, "shown only this once") {
		t.Error("the recovery identity is not shown when created")
	}
	if w := e.do(req{method: "POST", path: "/api/v1/backups/identity", hdr: bearer}); w.Code != 409 {
		t.Errorf("second identity = %d", w.Code)
	}
	body := e.do(req{method: "GET", path: "/backups", hdr: cookie}).Body.String()
	if strings.Contains(body, "AGE-SECRET-KEY") || !strings.Contains(body, "Last verified restore") {
		t.Error("the backups page shows the identity again or lacks the last verified restore")
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/backups/targets", hdr: bearer, body: `[{"kind":"s3","endpoint":"127.0.0.1:7070"}]`}); w.Code != 400 {
		t.Errorf("target without a bucket = %d", w.Code)
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/backups/targets", hdr: bearer, body: `[{"kind":"s3","endpoint":"127.0.0.1:7070","bucket":"office"}]`}); w.Code != 204 || len(e.backups.targets) != 1 {
		t.Errorf("targets = %d", w.Code)
	}
	if w := e.do(req{method: "POST", path: "/backups/targets", hdr: form, body: "kind=sftp&endpoint=nas.example:22&user=office&password=pw&host_key=SHA256:x&path=backups"}); !strings.Contains(w.Body.String(), "target saved") || e.backups.targets[0].Kind != "sftp" || e.backups.targets[0].User != "office" {
		t.Errorf("target form: %+v", e.backups.targets)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/backups/run", hdr: bearer, body: `{"kind":"increment"}`}); w.Code != 201 || !strings.Contains(w.Body.String(), "increment") {
		t.Errorf("run = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/backups/nope/verify", hdr: bearer}); w.Code != 404 {
		t.Errorf("verify unknown = %d", w.Code)
	}
	if w := e.do(req{method: "GET", path: "/api/v1/backups", hdr: bearer}); w.Code != 200 || !strings.Contains(w.Body.String(), `"verified":{`) {
		t.Errorf("list = %d %s", w.Code, w.Body)
	}
}
