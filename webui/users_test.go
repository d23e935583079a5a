package webui

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
)

func (e *env) login(t *testing.T, user, password string) string {
	t.Helper()
	w := e.do(req{method: "POST", path: "/api/v1/login", body: `{"user":"` + user + `","password":"` + password + `"}`})
	var out struct{ Token string }
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &out) != nil || out.Token == "" {
		t.Fatalf("login %s = %d %s", user, w.Code, w.Body)
	}
	return out.Token
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// A viewer is refused every admin route (read from the route table, so a new one cannot be forgotten) and
// nothing happens; the refusals are in the audit log.
func TestViewerCannotAct(t *testing.T) {
	e := newEnv(t)
	admin := e.setUpAndLogin(t)
	if w := e.do(req{method: "POST", path: "/api/v1/users", body: `{"name":"clerk","password":"` + pw + `","role":"viewer"}`, hdr: bearer(admin)}); w.Code != 201 {
		t.Fatalf("add viewer = %d %s", w.Code, w.Body)
	}
	viewer := e.login(t, "clerk", pw)
	param := regexp.MustCompile(`\{[a-z$]*\}`)
	n := 0
	for _, rt := range e.srv.Routes() {
		if rt.Access != Admin {
			continue
		}
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = param.ReplaceAllString(path, "reboot")
		if w := e.do(req{method: method, path: path, body: "{}", hdr: bearer(viewer)}); w.Code != 403 {
			t.Errorf("viewer %s %s = %d, want 403", method, path, w.Code)
		}
		n++
	}
	if len(e.sys.shutdowns) != 0 {
		t.Errorf("a viewer shut the unit down: %v", e.sys.shutdowns)
	}
	// Viewers still see: the dashboard and the status API.
	if w := e.do(req{method: "GET", path: "/api/v1/status", hdr: bearer(viewer)}); w.Code != 200 {
		t.Errorf("viewer status = %d", w.Code)
	}
	log, err := e.auth.Audit(1000, appliance.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, a := range log {
		if a.User == "clerk" && a.Status == 403 {
			refused++
		}
	}
	if refused != n {
		t.Errorf("%d refused admin requests by the viewer in the audit log, want %d", refused, n)
	}
}

// Users through the API, the audit log of it all, and its CSV export.
func TestUsersAndAudit(t *testing.T) {
	e := newEnv(t)
	admin := e.setUpAndLogin(t)
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"name":"Clerk","password":"` + pw + `","role":"viewer"}`, 400},
		{`{"name":"clerk","password":"short","role":"viewer"}`, 400},
		{`{"name":"clerk","password":"` + pw + `","role":"root"}`, 400},
		{`{"name":"clerk","password":"` + pw + `","role":"viewer","admin":true}`, 400},
		{`{"name":"clerk","password":"` + pw + `","role":"viewer"}`, 201},
		{`{"name":"clerk","password":"` + pw + `","role":"viewer"}`, 409},
	} {
		if w := e.do(req{method: "POST", path: "/api/v1/users", body: tc.body, hdr: bearer(admin)}); w.Code != tc.want {
			t.Errorf("add user %s = %d %s, want %d", tc.body, w.Code, w.Body, tc.want)
		}
	}
	var users []appliance.User
	if w := e.do(req{method: "GET", path: "/api/v1/users", hdr: bearer(admin)}); w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &users) != nil || len(users) != 2 {
		t.Errorf("users = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "GET", path: "/users", hdr: map[string]string{"Cookie": CookieName + "=" + admin}}); w.Code != 200 || !strings.Contains(w.Body.String(), `action="/users/clerk/delete"`) {
		t.Errorf("users page = %d, want the clerk with a remove form", w.Code)
	}
	if w := e.do(req{method: "DELETE", path: "/api/v1/users/admin", hdr: bearer(admin)}); w.Code != 409 {
		t.Errorf("delete the last admin = %d %s, want 409", w.Code, w.Body)
	}
	viewer := e.login(t, "clerk", pw)
	// A viewer changes their own password, not someone else's.
	if w := e.do(req{method: "PUT", path: "/api/v1/users/admin/password", body: `{"password":"taken over by the clerk"}`, hdr: bearer(viewer)}); w.Code != 403 {
		t.Errorf("viewer sets the admin's password = %d", w.Code)
	}
	// Their own needs the current password: a session left open is not enough.
	for body, want := range map[string]string{`{"password":"the clerk's new password"}`: "give the current password",
		`{"password":"the clerk's new password","current":"not the password"}`: "the current password is wrong"} {
		if w := e.do(req{method: "PUT", path: "/api/v1/users/clerk/password", body: body, hdr: bearer(viewer)}); w.Code != 400 || !strings.Contains(w.Body.String(), want) {
			t.Errorf("own password with %s = %d %s", body, w.Code, w.Body)
		}
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/users/clerk/password", body: `{"password":"the clerk's new password","current":"` + pw + `"}`, hdr: bearer(viewer)}); w.Code != 204 {
		t.Errorf("viewer sets own password = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/login", body: `{"user":"clerk","password":"` + pw + `"}`}); w.Code != 401 {
		t.Errorf("old password = %d", w.Code)
	}
	other := e.login(t, "clerk", "the clerk's new password")
	if w := e.do(req{method: "POST", path: "/api/v1/sessions/end", hdr: bearer(viewer)}); w.Code != 200 || !strings.Contains(w.Body.String(), `"ended":1`) {
		t.Errorf("log out everywhere else = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "GET", path: "/api/v1/status", hdr: bearer(other)}); w.Code != 401 {
		t.Errorf("a session ended elsewhere still works: %d", w.Code)
	}
	if w := e.do(req{method: "DELETE", path: "/api/v1/users/clerk", hdr: bearer(admin)}); w.Code != 204 {
		t.Errorf("delete clerk = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "GET", path: "/api/v1/status", hdr: bearer(viewer)}); w.Code != 401 {
		t.Errorf("a removed user's session still works: %d", w.Code)
	}
	auditHoldsIt(t, e, admin)
}

func TestCSVSafe(t *testing.T) {
	for in, want := range map[string]string{"=cmd()": "'=cmd()", "@x": "'@x", "+1": "'+1", "-2+3": "'-2+3", "\t=1": "'\t=1", "\r=1": "'\r=1", "alice": "alice", "": "", "192.0.2.1": "192.0.2.1"} {
		if got := csvSafe(in); got != want {
			t.Errorf("csvSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// The alerts page lists what the dashboard says; admins set where alerts go and send a test.
func TestAlertsAndNotifications(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	var alerts []appliance.Alert
	if w := e.do(req{method: "GET", path: "/api/v1/alerts", hdr: bearer(tok)}); w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &alerts) != nil || len(alerts) != 3 {
		t.Errorf("alerts = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/notifications", body: `{"smtp":"mail.example.com:587","from":"a@b.example","to":[]}`, hdr: bearer(tok)}); w.Code != 400 {
		t.Errorf("no recipients = %d", w.Code)
	}
	body := `{"smtp":"mail.example.com:587","from":"a@b.example","to":["it@office.example"],"user":"u","password":"secret","plain_smtp":false,"syslog":"192.0.2.5:514"}`
	if w := e.do(req{method: "PUT", path: "/api/v1/notifications", body: body, hdr: bearer(tok)}); w.Code != 204 {
		t.Errorf("set = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "GET", path: "/api/v1/notifications", hdr: bearer(tok)}); w.Code != 200 || strings.Contains(w.Body.String(), "secret") ||
		!strings.Contains(w.Body.String(), `"password_set":true`) {
		t.Errorf("get = %d %s", w.Code, w.Body)
	}
	e.notify.testErr = fmt.Errorf("%w: The mail server offers no working encryption: nothing was sent.", appliance.ErrUnavailable)
	if w := e.do(req{method: "POST", path: "/api/v1/notifications/test", hdr: bearer(tok)}); w.Code != 503 || !strings.Contains(w.Body.String(), "no working encryption") {
		t.Errorf("failing test = %d %s", w.Code, w.Body)
	}
	w := e.do(req{method: "GET", path: "/alerts", hdr: map[string]string{"Cookie": CookieName + "=" + tok}})
	if b := w.Body.String(); w.Code != 200 || !strings.Contains(b, "the data array is rebuilding") || !strings.Contains(b, `value="mail.example.com:587"`) || strings.Contains(b, "secret") {
		t.Errorf("alerts page = %d", w.Code)
	}
}

// An admin acknowledges an alert (API and form): it is marked with who did it, an acknowledged warning no
// longer turns the dashboard amber, and withdrawing it brings the amber back.
func TestAlertAcknowledgement(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	e.health.disks[0].SMART.Findings[0].Acknowledged = true
	e.storage.st.Alerts = nil
	var alerts []appliance.Alert
	if w := e.do(req{method: "GET", path: "/api/v1/alerts", hdr: bearer(tok)}); w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &alerts) != nil ||
		len(alerts) != 1 || alerts[0].Key == "" || alerts[0].Acknowledged != nil {
		t.Fatalf("alerts = %d %s", w.Code, w.Body)
	}
	if s := e.srv.dashboard(t.Context()); s.Level != "amber" {
		t.Errorf("before: %s", s.Level)
	}
	for body, code := range map[string]int{`{"key":""}`: 400, `{"key":"` + alerts[0].Key + `","mute_hours":721}`: 400, `{"key":1}`: 400} {
		if w := e.do(req{method: "POST", path: "/api/v1/alerts/ack", body: body, hdr: bearer(tok)}); w.Code != code {
			t.Errorf("ack %s = %d, want %d", body, w.Code, code)
		}
	}
	if w := e.do(req{method: "POST", path: "/api/v1/alerts/ack", body: `{"key":"` + alerts[0].Key + `","mute_hours":24}`, hdr: bearer(tok)}); w.Code != 204 {
		t.Fatalf("ack = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "GET", path: "/api/v1/alerts", hdr: bearer(tok)}); json.Unmarshal(w.Body.Bytes(), &alerts) != nil ||
		alerts[0].Acknowledged == nil || alerts[0].Acknowledged.By != "admin" || alerts[0].Acknowledged.Until == nil {
		t.Errorf("after the ack: %s", w.Body)
	}
	if s := e.srv.dashboard(t.Context()); s.Level != "green" {
		t.Errorf("an acknowledged warning: %s", s.Level)
	}
	cookie := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	w := e.do(req{method: "GET", path: "/alerts", hdr: cookie})
	if b := w.Body.String(); !strings.Contains(b, "muted until") || !strings.Contains(b, `action="/alerts/unack"`) {
		t.Errorf("alerts page after the ack:\n%s", b)
	}
	w = e.do(req{method: "POST", path: "/alerts/unack", body: "key=" + url.QueryEscape(alerts[0].Key), hdr: cookie})
	if b := w.Body.String(); w.Code != 200 || !strings.Contains(b, "The acknowledgement is withdrawn.") || !strings.Contains(b, `action="/alerts/ack"`) {
		t.Errorf("unack form = %d", w.Code)
	}
	if s := e.srv.dashboard(t.Context()); s.Level != "amber" {
		t.Errorf("withdrawn: %s", s.Level)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/alerts/unack", body: `{"key":"` + alerts[0].Key + `"}`, hdr: bearer(tok)}); w.Code != 404 {
		t.Errorf("withdraw again = %d", w.Code)
	}
	// A critical alert keeps the dashboard red, acknowledged or not.
	e.health.disks[0].SMART.Findings[0].Acknowledged = false
	sum := e.srv.summarize(t.Context())
	for _, a := range sum.Alerts {
		e.notify.acks[a.Key] = appliance.AlertAck{By: "admin"}
	}
	sum.Alerts = appliance.MarkAlerts(sum.Alerts, e.notify.acks, time.Now())
	if sum.grade(); sum.Level != "red" {
		t.Errorf("acknowledged critical alert: %s", sum.Level)
	}
}

// Second factor through the API: for oneself (or by an admin), a wrong first code refused.
func TestTOTPAPI(t *testing.T) {
	e := newEnv(t)
	admin := e.setUpAndLogin(t)
	if w := e.do(req{method: "POST", path: "/api/v1/users", body: `{"name":"clerk","password":"` + pw + `","role":"viewer"}`, hdr: bearer(admin)}); w.Code != 201 {
		t.Fatal(w.Code)
	}
	viewer := e.login(t, "clerk", pw)
	if w := e.do(req{method: "POST", path: "/api/v1/users/admin/totp", hdr: bearer(viewer)}); w.Code != 403 {
		t.Errorf("viewer sets up the admin's second factor: %d", w.Code)
	}
	w := e.do(req{method: "POST", path: "/api/v1/users/clerk/totp", hdr: bearer(viewer)})
	if w.Code != 201 || !strings.Contains(w.Body.String(), `"uri":"otpauth://totp/Lawbox:clerk?`) {
		t.Errorf("begin = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/users/clerk/totp", body: `{"code":"12345"}`, hdr: bearer(viewer)}); w.Code != 400 {
		t.Errorf("confirm with a malformed code = %d %s", w.Code, w.Body)
	}
	// Turning it off needs the caller's own current password (a session left open is not enough).
	for _, body := range []string{``, `{}`, `{"current":"not the password"}`} {
		if w := e.do(req{method: "DELETE", path: "/api/v1/users/clerk/totp", body: body, hdr: bearer(admin)}); w.Code != 400 {
			t.Errorf("turn it off with %q = %d, want 400", body, w.Code)
		}
	}
	if w := e.do(req{method: "DELETE", path: "/api/v1/users/clerk/totp", body: `{"current":"` + pw + `"}`, hdr: bearer(admin)}); w.Code != 204 {
		t.Errorf("admin turns it off = %d %s", w.Code, w.Body)
	}
	// The dashboard offers the setup; the form shows the key once.
	w = e.do(req{method: "POST", path: "/account/totp", hdr: map[string]string{"Cookie": CookieName + "=" + viewer, "Content-Type": "application/x-www-form-urlencoded"}})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `id="totp-secret"`) {
		t.Errorf("begin form = %d", w.Code)
	}
	// The key also comes as a QR code: an inline SVG whose corners carry the three finder patterns.
	b := w.Body.String()
	svg := b[strings.Index(b, `<svg class="qr"`):]
	svg = svg[:strings.Index(svg, "</svg>")]
	var n int
	if _, err := fmt.Sscanf(svg[strings.Index(svg, "viewBox="):], `viewBox="0 0 %d`, &n); err != nil || n < 29 {
		t.Fatalf("QR size %d (%v): %s", n, err, svg)
	}
	for _, corner := range [][2]int{{4, 4}, {n - 5, 4}, {4, n - 5}} {
		if m := fmt.Sprintf("M%d %dh1v1h-1z", corner[0], corner[1]); !strings.Contains(svg, m) {
			t.Errorf("no finder pattern corner %s in the QR code", m)
		}
	}
}

// Prometheus reads /metrics with a viewer's password (basic auth, that route only); the figures come from
// the parts.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	admin := e.setUpAndLogin(t)
	if w := e.do(req{method: "POST", path: "/api/v1/users", body: `{"name":"prometheus","password":"` + pw + `","role":"viewer"}`, hdr: bearer(admin)}); w.Code != 201 {
		t.Fatal(w.Code)
	}
	basic := func(user, pass string) map[string]string {
		r := httptest.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, pass)
		return map[string]string{"Authorization": r.Header.Get("Authorization")}
	}
	if w := e.do(req{method: "GET", path: "/metrics", hdr: basic("prometheus", "wrong password!")}); w.Code != 401 {
		t.Errorf("wrong password = %d", w.Code)
	}
	if w := e.do(req{method: "GET", path: "/api/v1/status", hdr: basic("prometheus", pw)}); w.Code != 401 {
		t.Errorf("basic auth on another route = %d", w.Code)
	}
	w := e.do(req{method: "GET", path: "/metrics", hdr: basic("prometheus", pw)})
	body := w.Body.String()
	for _, want := range []string{`lawbox_alerts{level="critical"} 1`, `lawbox_array_state{array="data",level="raid1",state="rebuilding"} 1`,
		`lawbox_array_sync_progress{array="data"} 0.375`, `lawbox_disk_health{health="replace",serial="SN-A"} 1`,
		`lawbox_database_size_bytes{database="practice"} 8.388608e+06`, "# TYPE lawbox_database_connections gauge",
		`lawbox_filesystem_free_bytes{filesystem="data"} 1.2e+10`, `lawbox_volume_used_bytes{filesystem="data",volume="backups"} 4.5e+10`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("metrics = %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	if w := e.do(req{method: "GET", path: "/metrics", hdr: bearer(admin)}); w.Code != 200 {
		t.Errorf("metrics with a session = %d", w.Code)
	}
}

func TestCertificateUpload(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	if w := e.do(req{method: "PUT", path: "/api/v1/tls", body: `{"cert":"nothing","key":"x"}`, hdr: bearer(tok)}); w.Code != 400 || e.certs.set != 0 {
		t.Errorf("bad upload = %d %s", w.Code, w.Body)
	}
	w := e.do(req{method: "PUT", path: "/api/v1/tls", body: `{"cert":"-----BEGIN CERTIFICATE-----\n...","key":"k"}`, hdr: bearer(tok)})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"self_signed":false`) {
		t.Errorf("upload = %d %s", w.Code, w.Body)
	}
	page := e.do(req{method: "GET", path: "/users", hdr: map[string]string{"Cookie": CookieName + "=" + tok}}).Body.String()
	if !strings.Contains(page, "Issued by CN=Office CA") || !strings.Contains(page, `action="/users/tls/reset"`) {
		t.Errorf("users page lacks the certificate section")
	}
	if w := e.do(req{method: "DELETE", path: "/api/v1/tls", hdr: bearer(tok)}); w.Code != 200 || !strings.Contains(w.Body.String(), `"self_signed":true`) {
		t.Errorf("reset = %d %s", w.Code, w.Body)
	}
}

// Service logs carry what PostgreSQL logs (statements, passwords in ALTER ROLE), a failed part what a tool
// said: admins see them, a viewer sees each service's and part's state only in the API, and no service
// table on the dashboard.
func TestServiceLogsAdminOnly(t *testing.T) {
	e := newEnv(t)
	admin := e.setUpAndLogin(t)
	if w := e.do(req{method: "POST", path: "/api/v1/users", body: `{"name":"clerk","password":"` + pw + `","role":"viewer"}`, hdr: bearer(admin)}); w.Code != 201 {
		t.Fatal(w.Code)
	}
	viewer := e.login(t, "clerk", pw)
	for _, c := range []struct {
		who, tok string
		shown    bool
	}{{"admin", admin, true}, {"viewer", viewer, false}, {"admin again", admin, true}} {
		for _, path := range []string{"/api/v1/status", "/"} {
			hdr := bearer(c.tok)
			if path == "/" {
				hdr = map[string]string{"Cookie": CookieName + "=" + c.tok}
			}
			w := e.do(req{method: "GET", path: path, hdr: hdr})
			// the dashboard shows a viewer no service table at all (technical details are an admin's)
			if w.Code != 200 || (c.shown || path != "/") && !strings.Contains(w.Body.String(), "daemon") {
				t.Fatalf("%s GET %s = %d", c.who, path, w.Code)
			}
			if got := strings.Contains(w.Body.String(), "client secret"); got != c.shown {
				t.Errorf("%s GET %s: log line shown = %v, want %v", c.who, path, got, c.shown)
			}
			if got := strings.Contains(w.Body.String(), "address already in use"); got != c.shown {
				t.Errorf("%s GET %s: a failed part's error shown = %v, want %v", c.who, path, got, c.shown)
			}
		}
	}
}

// The office's time zone: chosen at setup (a wrong one sets nothing up), then pages show local times and a
// point-in-time moment typed in the form is local time; the API stays UTC.
func TestTimeZone(t *testing.T) {
	e := newEnv(t)
	if w := e.do(req{method: "GET", path: "/setup", hdr: map[string]string{"Accept-Language": "fr-FR"}}); !strings.Contains(w.Body.String(), `value="Europe/Paris"`) {
		t.Errorf("a French browser is not proposed Europe/Paris: %s", w.Body)
	}
	code := e.auth.SetupCode()
	if w := e.do(req{method: "POST", path: "/api/v1/setup", body: `{"code":"` + code + `","password":"` + pw + `","time_zone":"Mars/Olympus"}`}); w.Code != 400 || !e.auth.NeedsSetup() {
		t.Fatalf("setup with a wrong zone = %d %s (set up: %v)", w.Code, w.Body, !e.auth.NeedsSetup())
	}
	if w := e.do(req{method: "POST", path: "/api/v1/setup", body: `{"code":"` + code + `","password":"` + pw + `","time_zone":"Europe/Paris"}`}); w.Code != 204 {
		t.Fatalf("setup = %d %s", w.Code, w.Body)
	}
	if e.sys.TimeZone().String() != "Europe/Paris" {
		t.Fatalf("zone %v", e.sys.TimeZone())
	}
	tok := e.login(t, "admin", pw)
	cookie := map[string]string{"Cookie": CookieName + "=" + tok}
	entries, _ := e.auth.Audit(1, appliance.AuditLog)
	local := entries[0].Time.In(e.sys.TimeZone()).Format("2006-01-02 15:04:05")
	utc := entries[0].Time.UTC().Format("2006-01-02 15:04:05")
	if body := e.do(req{method: "GET", path: "/audit", hdr: cookie}).Body.String(); !strings.Contains(body, local) || local == utc || strings.Contains(body, ">"+utc+"</td>") {
		t.Errorf("the audit page does not show %s (Paris) for %s UTC", local, utc)
	}
	form := map[string]string{"Cookie": cookie["Cookie"], "Content-Type": "application/x-www-form-urlencoded"}
	e.do(req{method: "POST", path: "/backups/point-in-time", hdr: form, body: "at=2026-12-04T10:30:00&database=practice&into=practice_then"})
	if m := e.backups.moments; len(m) != 1 || !m[0].Equal(time.Date(2026, 12, 4, 9, 30, 0, 0, time.UTC)) {
		t.Errorf("10:30 in Paris restored as %v, want 09:30 UTC", m)
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/system/time-zone", hdr: bearer(tok), body: `{"time_zone":"America/Martinique"}`}); w.Code != 204 || e.sys.TimeZone().String() != "America/Martinique" {
		t.Errorf("set zone = %d %s", w.Code, w.Body)
	}
}

// A user's own settings (password, sessions, second factor) are on the account page the header's name
// links to; the dashboard is what the unit does: a viewer gets sentences and no technical tables.
func TestAccountPageAndViewerDashboard(t *testing.T) {
	e := newEnv(t)
	admin := e.setUpAndLogin(t)
	if w := e.do(req{method: "POST", path: "/api/v1/users", body: `{"name":"clerk","password":"` + pw + `","role":"viewer"}`, hdr: bearer(admin)}); w.Code != 201 {
		t.Fatal(w.Code)
	}
	viewer := map[string]string{"Cookie": CookieName + "=" + e.login(t, "clerk", pw)}
	body := e.do(req{method: "GET", path: "/account", hdr: viewer}).Body.String()
	for _, want := range []string{`action="/users/clerk/password"`, `action="/sessions/end"`, `action="/account/totp"`, `<a href="/account" aria-current="page">clerk</a>`, "Logged in as clerk (viewer)."} {
		if !strings.Contains(body, want) {
			t.Errorf("account page lacks %q", want)
		}
	}
	dash := e.do(req{method: "GET", path: "/", hdr: viewer}).Body.String()
	if strings.Contains(dash, `action="/users/clerk/password"`) || strings.Contains(dash, "Technical details") || !strings.Contains(dash, `class="summary summary-`) {
		t.Errorf("viewer's dashboard: account forms or technical tables shown, or no sentence:\n%s", dash)
	}
	if dash := e.do(req{method: "GET", path: "/", hdr: map[string]string{"Cookie": CookieName + "=" + admin}}).Body.String(); !strings.Contains(dash, `<details id="technical">`) {
		t.Error("the admin's dashboard lacks the technical details")
	}
	form := map[string]string{"Cookie": viewer["Cookie"], "Content-Type": "application/x-www-form-urlencoded"}
	if body := e.do(req{method: "POST", path: "/sessions/end", hdr: form}).Body.String(); !strings.Contains(body, "your other sessions have ended") || !strings.Contains(body, "<h1>Your account</h1>") {
		t.Errorf("after ending the other sessions:\n%s", body)
	}
}

// auditHoldsIt: the audit log holds all of it, newest first; reads by viewers are not in it; the failed login is
// in the noise log, apart; the chain verifies; CSV export; admin-only reads are audited too.
func auditHoldsIt(t *testing.T, e *env, admin string) {
	var log []appliance.AuditEntry
	if w := e.do(req{method: "GET", path: "/api/v1/audit?n=100", hdr: bearer(admin)}); w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &log) != nil {
		t.Fatalf("audit = %d %s", w.Code, w.Body)
	}
	var lines []string
	for _, a := range log {
		lines = append(lines, a.User+" "+a.Action+" "+a.Path+" "+strconv.Itoa(a.Status))
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{
		"admin DELETE /api/v1/users/{name} /api/v1/users/clerk 204",
		"clerk PUT /api/v1/users/{name}/password /api/v1/users/admin/password 403",
		"admin POST /api/v1/users /api/v1/users 409",
		"admin POST /api/v1/setup /api/v1/setup 204",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("audit log lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "GET /api/v1/status") {
		t.Errorf("viewer reads are in the audit log:\n%s", got)
	}
	// The failed login is in the noise log, apart; the audit log's chain verifies.
	var noise []appliance.AuditEntry
	if w := e.do(req{method: "GET", path: "/api/v1/audit?n=100&log=noise", hdr: bearer(admin)}); w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &noise) != nil ||
		len(noise) == 0 || noise[0].User != "clerk" || noise[0].Status != 401 || strings.Contains(got, " 401") {
		t.Errorf("noise log = %d %s; audit log:\n%s", w.Code, w.Body, got)
	}
	if w := e.do(req{method: "GET", path: "/api/v1/audit?log=partner", hdr: bearer(admin)}); w.Code != 200 || strings.TrimSpace(w.Body.String()) != "[]" {
		t.Errorf("the partner's log on an unpaired unit = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "GET", path: "/api/v1/audit?log=other", hdr: bearer(admin)}); w.Code != 400 {
		t.Errorf("an unknown log = %d %s", w.Code, w.Body)
	}
	var check appliance.AuditCheck
	if w := e.do(req{method: "GET", path: "/api/v1/audit/verify", hdr: bearer(admin)}); w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &check) != nil || !check.OK || check.Entries < len(log) {
		t.Errorf("verify = %d %s", w.Code, w.Body)
	}
	if log[0].Action != "DELETE /api/v1/users/{name}" || log[0].Remote == "" || log[0].Time.IsZero() {
		t.Errorf("newest entry %+v, want the deletion with time and remote", log[0])
	}
	if w := e.do(req{method: "GET", path: "/api/v1/audit?n=0", hdr: bearer(admin)}); w.Code != 400 {
		t.Errorf("audit n=0 = %d", w.Code)
	}
	w := e.do(req{method: "GET", path: "/api/v1/audit?format=csv", hdr: bearer(admin)})
	rows, err := csv.NewReader(w.Body).ReadAll()
	if w.Code != 200 || err != nil || len(rows) < len(log) || rows[0][0] != "time" || !strings.Contains(w.Header().Get("Content-Disposition"), "audit.csv") {
		t.Errorf("csv export = %d, %d rows, %v", w.Code, len(rows), err)
	}
	// Admin-only reads are audited too: the reads above are now in it, and the page shows them.
	if w := e.do(req{method: "GET", path: "/audit", hdr: map[string]string{"Cookie": CookieName + "=" + admin}}); w.Code != 200 || !strings.Contains(w.Body.String(), "/api/v1/users/clerk") || !strings.Contains(w.Body.String(), "GET /api/v1/audit") {
		t.Errorf("audit page = %d", w.Code)
	}
}
