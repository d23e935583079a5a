package webui

import (
	"bytes"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/lawbox/appliance/appliance"
)

// The bundle is the raw body (bigger than any other body may be); a bad bundle is a 400, a downgrade a
// 409 unless asked for, and the audit log keeps that it was asked for.
func TestFirmwareAPI(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	e.fw.last = &appliance.FirmwareRun{Version: "v21", From: "v20", By: "admin", State: appliance.FirmwareRolledBack, Reason: "version v21 did not become healthy in 3 tries"}
	big := "good v21" + strings.Repeat("x", MaxBodyBytes*2)
	for _, c := range []struct {
		path, body string
		want       int
	}{
		{"/api/v1/system/firmware", big, 202},
		{"/api/v1/system/firmware", "garbage", 400},
		{"/api/v1/system/firmware", "good v19", 409},
		{"/api/v1/system/firmware?allow_downgrade=true", "good v19", 202},
	} {
		w := e.do(req{method: "POST", path: c.path, body: c.body, hdr: map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/octet-stream"}})
		if w.Code != c.want {
			t.Errorf("POST %s (%d bytes) = %d %s, want %d", c.path, len(c.body), w.Code, w.Body, c.want)
		}
	}
	if e.fw.received != len("good v19") {
		t.Errorf("the last bundle reached the updater with %d bytes", e.fw.received)
	}
	entries, _ := e.auth.Audit(10, appliance.AuditLog)
	found := false
	for _, en := range entries {
		found = found || en.Path == "/api/v1/system/firmware?allow_downgrade=true" && en.Status == 202 && en.User == "admin"
	}
	if !found {
		t.Errorf("the allowed downgrade is not in the audit log: %+v", entries)
	}
	if w := e.do(req{method: "GET", path: "/api/v1/system/firmware", hdr: bearer(tok)}); w.Code != 200 || !strings.Contains(w.Body.String(), `"state":"rolled back"`) {
		t.Errorf("GET firmware = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/system/firmware/rollback", hdr: bearer(tok)}); w.Code != 202 || len(e.fw.rollbacks) != 1 {
		t.Errorf("rollback = %d, rollbacks %v", w.Code, e.fw.rollbacks)
	}
}

// The dashboard's form streams the file part to the updater and says what happened; the last update's
// failure is on the dashboard in a sentence.
func TestFirmwareForm(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	e.fw.last = &appliance.FirmwareRun{Version: "v21", From: "v20", By: "admin", State: appliance.FirmwareRolledBack, Reason: "version v21 did not become healthy in 3 tries"}
	form := func(allow bool, bundle string) (string, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		if allow {
			mw.WriteField("allow_downgrade", "yes")
		}
		fw, _ := mw.CreateFormFile("bundle", "lawbox.update")
		fw.Write([]byte(bundle))
		mw.Close()
		return b.String(), mw.FormDataContentType()
	}
	for _, c := range []struct {
		allow  bool
		bundle string
		want   string
	}{
		{false, "good v21", "The new firmware is written"},
		{false, "good v19", "older than the running firmware"},
		{true, "good v19", "The new firmware is written"},
		{false, "junk", "not a valid update bundle"},
	} {
		body, ct := form(c.allow, c.bundle)
		w := e.do(req{method: "POST", path: "/system/firmware", body: body, hdr: map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": ct}})
		if w.Code != 200 || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("form %q allow=%v = %d, want %q in:\n%s", c.bundle, c.allow, w.Code, c.want, w.Body)
		}
	}
	w := e.do(req{method: "GET", path: "/", hdr: map[string]string{"Cookie": CookieName + "=" + tok}})
	if !strings.Contains(w.Body.String(), "The firmware update to v21 did not take: version v21 did not become healthy in 3 tries") {
		t.Errorf("the dashboard does not say the update did not take:\n%s", w.Body)
	}
	if w := e.do(req{method: "GET", path: "/api/v1/alerts", hdr: bearer(tok)}); !strings.Contains(w.Body.String(), "the firmware update to v21 did not take") {
		t.Errorf("no alert for the update that did not take: %s", w.Body)
	}
}
