package webui

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// Every form of a logged-in user answers with a redirect to its page, which shows the outcome once: a
// reload neither sends the form again nor shows the outcome again.
func TestFormsAnswerWithRedirect(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	cookie := map[string]string{"Cookie": CookieName + "=" + tok}
	post := func(path, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "https://unit.test"+path, strings.NewReader(body))
		r.Header.Set("Cookie", cookie["Cookie"])
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		return w
	}
	get := func(path string) string { return e.do(req{method: "GET", path: path, hdr: cookie}).Body.String() }

	w := post("/storage/policy", "auto_add=on")
	if w.Code != 303 || w.Header().Get("Location") != "/storage" {
		t.Fatalf("a form = %d to %q, want 303 to /storage", w.Code, w.Header().Get("Location"))
	}
	if body := get("/storage"); !strings.Contains(body, `<p class="notice" role="status">Settings saved.</p>`) {
		t.Errorf("the page after the form lacks its notice:\n%s", body)
	}
	if body := get("/storage"); strings.Contains(body, "Settings saved.") {
		t.Error("the notice is shown again on a reload")
	}
	w = post("/storage/disks/SN-OLD/adopt", "confirm=no")
	if w.Code != 303 {
		t.Fatalf("a refused form = %d, want 303", w.Code)
	}
	if body := get("/storage"); !strings.Contains(body, `<p class="error" role="alert">malformed request</p>`) {
		t.Errorf("the page after a refused form lacks its error:\n%s", body)
	}
	if w := post("/disks/SN-A/refresh", ""); w.Header().Get("Location") != "/disks/SN-A" {
		t.Errorf("a disk's form goes back to %q", w.Header().Get("Location"))
	}
	// Pages that show a secret once are that answer: the pairing code.
	if w := post("/pair/invite", "vip=192.0.2.10/24&witness=192.0.2.5&mode=auto"); w.Code != 200 || !strings.Contains(w.Body.String(), "Pairing code") {
		t.Errorf("pairing code form = %d", w.Code)
	}
}

// "Back up now" is a job: the form answers at once with the Jobs page, the job shown running there, in the
// API and on the dashboard; its result comes when it ends, a failed one in the error's colour.
func TestJobs(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	form := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	cookie := map[string]string{"Cookie": CookieName + "=" + tok}
	e.backups.identity = "AGE-SECRET-KEY-1SHEET"
	e.backups.gate = make(chan struct{})
	body := e.do(req{method: "POST", path: "/backups/run", hdr: form, running: true}).Body.String()
	for _, want := range []string{"Started. It runs on the unit", `<td data-label="Job">Back up now</td><td data-label="Asked by">admin</td>`, "Running for", `data-part="jobs"`} {
		if !strings.Contains(body, want) {
			t.Errorf("jobs page after the form lacks %q:\n%s", want, body)
		}
	}
	var api struct{ Jobs []Job }
	if w := e.do(req{method: "GET", path: "/api/v1/jobs", hdr: map[string]string{"Authorization": "Bearer " + tok}}); json.Unmarshal(w.Body.Bytes(), &api) != nil ||
		len(api.Jobs) != 1 || api.Jobs[0].Kind != "backup" || api.Jobs[0].State != "running" || api.Jobs[0].By != "admin" {
		t.Errorf("jobs API while it runs: %d %s", w.Code, w.Body)
	}
	if body := e.do(req{method: "GET", path: "/", hdr: cookie}).Body.String(); !strings.Contains(body, `<a href="/jobs">Back up now</a>: Running for`) {
		t.Errorf("the dashboard does not show the running job:\n%s", body)
	}
	close(e.backups.gate)
	e.jobsEnded()
	if body := e.do(req{method: "GET", path: "/jobs", hdr: cookie}).Body.String(); !strings.Contains(body, `<p class="notice">Backup taken.</p>`) || e.backups.runs != 1 {
		t.Errorf("the ended job's result (%d runs):\n%s", e.backups.runs, body)
	}

	e.backups.badVerify = true
	body = e.do(req{method: "POST", path: "/backups/20261123T020000Z-dump/verify", hdr: form}).Body.String()
	if !strings.Contains(body, `<p class="error">Failed: The backup did not restore as it should`) || !strings.Contains(body, "Verify backup 20261123T020000Z-dump") {
		t.Errorf("a failed verification is not shown as a failure:\n%s", body)
	}
	fr := map[string]string{"Cookie": CookieName + "=" + tok + "; " + LangCookie + "=fr"}
	if body := e.do(req{method: "GET", path: "/jobs", hdr: fr}).Body.String(); !strings.Contains(body, "Contrôler la sauvegarde 20261123T020000Z-dump") || !strings.Contains(body, "Sauvegarde faite.") {
		t.Errorf("the French jobs page:\n%s", body)
	}
}
