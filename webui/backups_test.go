package webui

import (
	"strings"
	"testing"
)

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
