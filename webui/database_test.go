package webui

import (
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
)

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
	if !strings.Contains(body, "Mirror lag, last hour") || !strings.Contains(body, "<polyline") || !strings.Contains(body, "2.0 s") {
		t.Error("database page lacks the lag graph")
	}
	if !strings.Contains(body, "Mirror lag, last day") || strings.Count(body, "<polyline") != 2 || !strings.Contains(body, "13.0 s") {
		t.Error("database page lacks the day's lag graph (the 5-minute highs)")
	}
	if !strings.Contains(body, "lawbox_mirror") || !strings.Contains(body, "50.3 MB") {
		t.Error("database page lacks the WAL kept for the mirror")
	}
	if !strings.Contains(body, "practice_app") || !strings.Contains(body, `action="/database/databases"`) || !strings.Contains(body, `action="/database/upstream"`) {
		t.Error("database page lacks the database list or the create form")
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
		{appliance.DatabaseStatus{Role: "production", State: "running", Mirror: "streaming from 192.0.2.12", Sync: "catching up"}, true, "catching up"},
		{appliance.DatabaseStatus{Role: "production", State: "running", Mirror: "streaming from 192.0.2.12", Sync: "async",
			Slots: []appliance.ReplicationSlot{{Name: "lawbox_mirror", WALStatus: "lost"}}}, true, "WAL kept for the mirror was dropped"},
		{appliance.DatabaseStatus{Role: "production", State: "running"}, false, ""},
		{appliance.DatabaseStatus{Role: "production", State: "running", Mirror: "streaming from 192.0.2.12", Sync: "sync"}, true, ""},
	} {
		got := appliance.DatabaseAlerts(c.db, c.paired)
		if c.want == "" && len(got) != 0 || c.want != "" && (len(got) != 1 || !strings.Contains(got[0].Message, c.want)) {
			t.Errorf("%+v paired=%v: %+v, want %q", c.db, c.paired, got, c.want)
		}
	}
}

// Clusters set aside are listed; deleting one needs the box ticked (form) and names one the status lists.
func TestSetAsideCopies(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	name := "main.previous-20261120-101010"
	e.db.aside = []appliance.SetAside{{Name: name, Created: time.Date(2026, 11, 20, 10, 10, 10, 0, time.UTC), SizeBytes: 3 << 30}}
	form := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	body := e.do(req{method: "GET", path: "/database", hdr: form}).Body.String()
	if !strings.Contains(body, "2026-11-20 10:10") || !strings.Contains(body, `value="`+name+`"`) {
		t.Errorf("database page lacks the set-aside copy")
	}
	if w := e.do(req{method: "POST", path: "/database/set-aside/delete", hdr: form, body: "name=" + name}); len(e.db.aside) != 1 || !strings.Contains(w.Body.String(), "tick the box") {
		t.Errorf("deleted without the confirmation: %d left", len(e.db.aside))
	}
	if w := e.do(req{method: "DELETE", path: "/api/v1/database/set-aside/main.previous-20000101-000000", hdr: bearer(tok)}); w.Code != 404 {
		t.Errorf("delete an unknown one = %d", w.Code)
	}
	if w := e.do(req{method: "POST", path: "/database/set-aside/delete", hdr: form, body: "confirm=delete&name=" + name}); len(e.db.aside) != 0 || !strings.Contains(w.Body.String(), "is deleted") {
		t.Errorf("form delete: %d left", len(e.db.aside))
	}

	// A stranded cluster: the page offers to set it aside; the form needs the box ticked; the API refuses
	// once there is nothing to set aside.
	e.db.stranded = true
	if body := e.do(req{method: "GET", path: "/database", hdr: form}).Body.String(); !strings.Contains(body, `action="/database/start-afresh"`) {
		t.Errorf("database page does not offer to start afresh")
	}
	if e.do(req{method: "POST", path: "/database/start-afresh", hdr: form, body: ""}); !e.db.stranded {
		t.Errorf("started afresh without the confirmation")
	}
	if w := e.do(req{method: "POST", path: "/database/start-afresh", hdr: form, body: "confirm=afresh"}); e.db.stranded || !strings.Contains(w.Body.String(), "set aside") {
		t.Errorf("form start afresh: stranded %v", e.db.stranded)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/database/start-afresh", hdr: bearer(tok)}); w.Code != 409 {
		t.Errorf("start afresh with a sound cluster = %d", w.Code)
	}
}

// Opening a database to connections without TLS: admins only, the named database, a clear answer.
func TestPlainConnections(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	for _, c := range []struct {
		path, body string
		want       int
	}{
		{"/api/v1/database/databases/practice/plain", `{"allow":true}`, 204},
		{"/api/v1/database/databases/nope/plain", `{"allow":true}`, 404},
		{"/api/v1/database/databases/practice/plain", `{"allow":"yes"}`, 400},
	} {
		if w := e.do(req{method: "PUT", path: c.path, body: c.body, hdr: bearer(tok)}); w.Code != c.want {
			t.Errorf("PUT %s %s = %d %s, want %d", c.path, c.body, w.Code, w.Body, c.want)
		}
	}
	if !e.db.plain {
		t.Error("the database was not opened")
	}
	w := e.do(req{method: "POST", path: "/database/databases/practice/plain", body: "allow=no", hdr: map[string]string{"Cookie": CookieName + "=" + tok,
		"Content-Type": "application/x-www-form-urlencoded"}})
	if w.Code != 200 || e.db.plain || !strings.Contains(w.Body.String(), "TLS connections only again") {
		t.Errorf("form back to TLS only = %d, plain %v", w.Code, e.db.plain)
	}
}
