package webui

import (
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
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
	if body := e.do(req{method: "POST", path: "/backups/identity", hdr: form}).Body.String(); !strings.Contains(body, "AGE-SECRET-KEY-1TEST") || !strings.Contains(body, "shown only this once") ||
		!strings.Contains(body, `<section class="sheet">`) || !strings.Contains(body, "age1fakerecipient") || !strings.Contains(body, "Recover from a recovery sheet") {
		t.Errorf("the recovery identity is not shown on a recovery sheet when created: %s", body)
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
	if w := e.do(req{method: "POST", path: "/backups/targets", hdr: form, body: "kind=sftp&endpoint=nas.example:22&user=office&password=pw&host_key=SHA256:x&path=backups&limit_kbps=fast"}); !strings.Contains(w.Body.String(), "a number of KB/s") {
		t.Errorf("target form with a bad limit: %s", w.Body)
	}
	if w := e.do(req{method: "POST", path: "/backups/targets", hdr: form, body: "kind=sftp&endpoint=nas.example:22&user=office&password=pw&host_key=SHA256:x&path=backups&limit_kbps=500"}); !strings.Contains(w.Body.String(), "target saved") || e.backups.targets[0].Kind != "sftp" || e.backups.targets[0].User != "office" || e.backups.targets[0].LimitKBps != 500 {
		t.Errorf("target form: %+v", e.backups.targets)
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/backups/retention", hdr: bearer, body: `{"daily":0}`}); w.Code != 400 {
		t.Errorf("retention of no nightly dump = %d", w.Code)
	}
	if w := e.do(req{method: "POST", path: "/backups/retention", hdr: form, body: "daily=14&weekly=8&monthly=x"}); !strings.Contains(w.Body.String(), "monthly: a number is needed") {
		t.Errorf("retention form with a bad number: %s", w.Body)
	}
	if w := e.do(req{method: "POST", path: "/backups/retention", hdr: form, body: "daily=14&weekly=8&monthly=12"}); !strings.Contains(w.Body.String(), "Retention saved") || e.backups.retention != (appliance.BackupRetention{Daily: 14, Weekly: 8, Monthly: 12}) ||
		!strings.Contains(w.Body.String(), `name="weekly" inputmode="numeric" value="8"`) {
		t.Errorf("retention form: %+v", e.backups.retention)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/backups/run", hdr: bearer, body: `{"kind":"increment"}`}); w.Code != 201 || !strings.Contains(w.Body.String(), "increment") {
		t.Errorf("run = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/backups/nope/verify", hdr: bearer}); w.Code != 404 {
		t.Errorf("verify unknown = %d", w.Code)
	}
	e.backups.running, e.backups.progress = "copying 20261123T020000Z-dump to s3://x/y/", [2]int64{512 << 10, 2 << 20}
	if body := e.do(req{method: "GET", path: "/backups", hdr: cookie}).Body.String(); !strings.Contains(body, `<progress value="524288" max="2097152"></progress> 524.3 kB / 2.1 MB`) {
		t.Errorf("no progress bar for the running copy: %s", body)
	}
	if w := e.do(req{method: "GET", path: "/api/v1/backups", hdr: bearer}); w.Code != 200 || !strings.Contains(w.Body.String(), `"verified":{`) {
		t.Errorf("list = %d %s", w.Code, w.Body)
	}
}

// A restore names what it restored and what it kept; replacing a database needs the box ticked; a recovery
// sheet's identity is taken on a unit without backups; a current dump downloads as a file, and one that
// fails halfway is an aborted download, never a complete-looking file.
func TestRestoreAndExport(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	form := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	if w := e.do(req{method: "POST", path: "/api/v1/backups/identity/import", hdr: bearer, body: `{"identity":"hello"}`}); w.Code != 400 {
		t.Errorf("import of a non-identity = %d", w.Code)
	}
	if w := e.do(req{method: "POST", path: "/backups/identity/import", hdr: form, body: "identity=AGE-SECRET-KEY-1SHEET"}); !strings.Contains(w.Body.String(), "Recovery identity set") || e.backups.identity != "AGE-SECRET-KEY-1SHEET" {
		t.Errorf("import form: %d, identity %q", w.Code, e.backups.identity)
	}
	if body := e.do(req{method: "GET", path: "/backups", hdr: form}).Body.String(); !strings.Contains(body, `action="/backups/20261123T020000Z-dump/restore"`) || !strings.Contains(body, "<option>practice</option>") {
		t.Error("the backups page offers no restore of the backup's database")
	}
	if w := e.do(req{method: "POST", path: "/api/v1/backups/20261123T020000Z-dump/restore", hdr: bearer, body: `{"databases":["practice"]}`}); w.Code != 409 {
		t.Errorf("restore over an existing database without replace = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/backups/nope/restore", hdr: bearer, body: `{}`}); w.Code != 404 {
		t.Errorf("restore of an unknown backup = %d", w.Code)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/backups/20261123T020000Z-dump/restore", hdr: bearer, body: `{"databases":`}); w.Code != 400 {
		t.Errorf("malformed restore = %d", w.Code)
	}
	w := e.do(req{method: "POST", path: "/api/v1/backups/20261123T020000Z-dump/restore", hdr: bearer, body: `{"databases":["practice"],"into":"practice_copy"}`})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"into":"practice_copy"`) {
		t.Errorf("restore under a new name = %d %s", w.Code, w.Body)
	}
	w = e.do(req{method: "POST", path: "/backups/20261123T020000Z-dump/restore", hdr: form, body: "database=practice&replace=replace"})
	if !strings.Contains(w.Body.String(), "kept as practice_before_20261124_031500") {
		t.Errorf("restore form in place: %s", w.Body)
	}
	if len(e.backups.restores) != 2 || !e.backups.restores[1].Replace || e.backups.restores[1].Databases[0] != "practice" {
		t.Errorf("restores asked: %+v", e.backups.restores)
	}

	// To a moment: RFC 3339 in the API, UTC date and time in the form.
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	w = e.do(req{method: "POST", path: "/api/v1/backups/point-in-time", hdr: bearer, body: `{"at":"` + at.Format(time.RFC3339) + `","databases":["practice"],"into":"practice_then"}`})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"into":"practice_then"`) {
		t.Errorf("point in time = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/backups/point-in-time", hdr: bearer, body: `{"at":"yesterday"}`}); w.Code != 400 {
		t.Errorf("point in time with a bad moment = %d", w.Code)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/backups/point-in-time", hdr: bearer, body: `{"at":"2020-01-01T00:00:00Z","databases":["practice"],"into":"x"}`}); w.Code != 404 {
		t.Errorf("point in time before any base copy = %d", w.Code)
	}
	w = e.do(req{method: "POST", path: "/backups/point-in-time", hdr: form, body: "at=" + at.Format("2006-01-02T15:04:05") + "&database=practice&into=practice_form"})
	if !strings.Contains(w.Body.String(), "practice -&gt; practice_form") || len(e.backups.moments) != 2 || !e.backups.moments[1].Equal(at) {
		t.Errorf("point-in-time form: moments %v: %s", e.backups.moments, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/backups/point-in-time", hdr: form, body: "at=soon&database=practice"}); !strings.Contains(w.Body.String(), "a date and a time are needed") {
		t.Errorf("point-in-time form with a bad moment: %s", w.Body)
	}

	w = e.do(req{method: "GET", path: "/api/v1/database/databases/practice/export", hdr: bearer})
	if w.Code != 200 || w.Body.String() != "PGDMP practice" || !strings.HasPrefix(attachment(w.Header()), "practice-") {
		t.Errorf("export = %d %q %v", w.Code, w.Body, w.Header())
	}
	if w := e.do(req{method: "GET", path: "/api/v1/database/databases/nope/export", hdr: bearer}); w.Code != 404 {
		t.Errorf("export of an unknown database = %d", w.Code)
	}
	// Documents: folders, the list of a documents backup, one document downloaded.
	if w := e.do(req{method: "PUT", path: "/api/v1/backups/documents", hdr: bearer, body: `{"folders":["/etc"]}`}); w.Code != 400 {
		t.Errorf("a document folder off the data array = %d", w.Code)
	}
	if w := e.do(req{method: "POST", path: "/backups/documents", hdr: form, body: "folders=%2Fdata%2Fdocuments%0D%0A%0D%0A%2Fdata%2Fscans"}); !strings.Contains(w.Body.String(), "Document folders saved") || strings.Join(e.backups.folders, ",") != "/data/documents,/data/scans" {
		t.Errorf("document folders form: %v", e.backups.folders)
	}
	page := e.do(req{method: "GET", path: "/backups/20261123T021500Z-documents/documents", hdr: form}).Body.String()
	if !strings.Contains(page, `href="/backups/20261123T021500Z-documents/document?path=%2fdata%2fdocuments%2fsmith%20%26%20co%2fletter.txt"`) {
		t.Errorf("the documents page offers no download of the letter: %s", page)
	}
	if w := e.do(req{method: "GET", path: "/api/v1/backups/20261123T021500Z-documents/documents", hdr: bearer}); w.Code != 200 || !strings.Contains(w.Body.String(), "letter.txt") {
		t.Errorf("documents list = %d %s", w.Code, w.Body)
	}
	w = e.do(req{method: "GET", path: "/api/v1/backups/20261123T021500Z-documents/document?path=%2Fdata%2Fdocuments%2Fsmith%20%26%20co%2Fletter.txt", hdr: bearer})
	if w.Code != 200 || w.Body.String() != "Dear X" || attachment(w.Header()) != "letter.txt" {
		t.Errorf("document download = %d %q %v", w.Code, w.Body, w.Header())
	}
	if w := e.do(req{method: "GET", path: "/api/v1/backups/20261123T021500Z-documents/document?path=/etc/passwd", hdr: bearer}); w.Code != 404 {
		t.Errorf("a document not in the backup = %d", w.Code)
	}

	srv := httptest.NewTLSServer(e.h)
	defer srv.Close()
	e.backups.failAt = 64 << 10
	r, _ := http.NewRequest("GET", srv.URL+"/api/v1/database/databases/practice/export", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	resp, err := srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Errorf("a dump that failed after %d bytes downloaded as a complete file", n)
	}
}

// attachment is the file name a download is saved as.
func attachment(h http.Header) string {
	disp, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
	if err != nil || disp != "attachment" {
		return ""
	}
	return params["filename"]
}
