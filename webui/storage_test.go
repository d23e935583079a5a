package webui

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/lawbox/appliance/appliance"
)

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
	for _, want := range []string{`<progress max="100" value="37.5">`, "holds an ext2/3/4 filesystem", `action="/storage/disks/SN-OLD/adopt"`, `data-part="storage"`,
		// the space: a bar, the figures, the trend and what takes the room
		`<meter min="0" max="100" low="85" high="95" optimum="0" value="87.9"`, "87.0 GB used of 100.0 GB (87.9 %), 12.0 GB free. Change over the last 2 days: &#43;7.0 GB.",
		`<th scope="row">backups</th><td>45.0 GB</td>`,
		// and its graph over the days: from 80 to 87 GB, dated
		`aria-label="space used over the last days"`, `>87.1 GB</text>`, `>79.9 GB</text>`, `>2026-11-05 00:00</text>`} {
		if !strings.Contains(body, want) {
			t.Errorf("storage page lacks %q", want)
		}
	}
	fr := e.do(req{method: "GET", path: "/storage", hdr: map[string]string{"Cookie": CookieName + "=" + tok + "; " + LangCookie + "=fr"}}).Body.String()
	if want := "87,0 Go utilisés sur 100,0 Go (87,9 %), 12,0 Go libres. Évolution sur les 2 derniers jours : &#43;7,0 Go."; !strings.Contains(fr, want) {
		t.Errorf("the French storage page lacks %q", want)
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
	for _, want := range []string{"<svg", "<polyline", "44 °C", "degraded reliability", `action="/disks/SN-A/alerts/nvme-warning-4/ack"`,
		`<h3>nvme-media</h3><svg`, `aria-label="history of nvme-media"`} {
		if !strings.Contains(body, want) {
			t.Errorf("disk page lacks %q", want)
		}
	}
	if strings.Contains(body, "<h3>nvme-warning</h3>") {
		t.Error("a counter that was always zero is drawn")
	}
	if w := e.do(req{method: "GET", path: "/disks/NOPE", hdr: cookie}); w.Code != 404 {
		t.Errorf("page of an unknown disk = %d", w.Code)
	}
	if body := e.do(req{method: "GET", path: "/storage", hdr: cookie}).Body.String(); !strings.Contains(body, "replace this disk") {
		t.Error("the storage page does not flag the disk to replace")
	}
}

// The replace-disk guide follows the arrays: the disk SMART says to replace (SN-A) is the only complete copy
// while SN-B rebuilds from it, so the page says not to pull it now and never tells to pull it; once the
// rebuild is over it says to pull it.
func TestReplaceGuideFollowsArrays(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	page := func() string {
		w := e.do(req{method: "GET", path: "/storage", hdr: map[string]string{"Cookie": CookieName + "=" + tok}})
		if w.Code != 200 {
			t.Fatalf("storage page = %d", w.Code)
		}
		return w.Body.String()
	}
	p := page()
	if !strings.Contains(p, `id="pull-SN-A"`) || !strings.Contains(p, "do NOT pull it now") || strings.Contains(p, "pull it out now") {
		t.Errorf("during the rebuild from SN-A, the guide says:\n%s", p[strings.Index(p, "<h2>Replacing"):])
	}
	e.storage.change(func(st *appliance.StorageStatus) {
		st.Arrays = []appliance.Array{{Name: "data", Level: "raid1", State: appliance.ArrayClean,
			Members: []appliance.Member{{Serial: "SN-A", State: "in_sync"}, {Serial: "SN-B", State: "in_sync"}}}}
	})
	if p := page(); !strings.Contains(p, "pull it out now") || strings.Contains(p, "do NOT pull") {
		t.Errorf("after the rebuild, the guide says:\n%s", p[strings.Index(p, "<h2>Replacing"):])
	}
}

// An admin names a slot's bay from the storage page; the pages then name the disk in it by that bay, the
// replacement guide too; a bad name is refused.
func TestBayNamesOnPages(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	e.storage.change(func(st *appliance.StorageStatus) {
		st.Disks = append([]appliance.StorageDisk(nil), st.Disks...)
		st.Disks[0].Slot, st.Disks[1].Slot = "pci-0000:00:02.1-virtio", "pci-0000:00:02.2-virtio"
	})
	form := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	body := e.do(req{method: "POST", path: "/storage/bays", hdr: form, body: "slot=pci-0000:00:02.2-virtio&name=Bay+2+(right)"}).Body.String()
	for _, want := range []string{"Bay name saved", "<strong>Bay 2 (right)</strong><br><small>pci-0000:00:02.2-virtio", `name="name" value="Bay 2 (right)"`} {
		if !strings.Contains(body, want) {
			t.Errorf("storage page after naming a bay lacks %q", want)
		}
	}
	if dash := e.do(req{method: "GET", path: "/", hdr: form}).Body.String(); !strings.Contains(dash, "<small>Bay 2 (right)</small>") {
		t.Error("the dashboard does not name the disk by its bay")
	}
	if body := e.do(req{method: "POST", path: "/storage/bays", hdr: form, body: "slot=pci-0000:00:02.1-virtio&name=" + strings.Repeat("x", 41)}).Body.String(); !strings.Contains(body, "at most 40 characters") {
		t.Error("a bay name of 41 characters was not refused")
	}
}

// A disk whose slot has a light gets a Locate button: pressed, the light blinks and the page says so, with a
// button to stop it; a disk without a light has no button, and the API refuses it (409) or a body without
// "on" (400).
func TestLocateLight(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	e.storage.change(func(st *appliance.StorageStatus) {
		st.Disks = append([]appliance.StorageDisk(nil), st.Disks...)
		st.Disks[0].Locate = "off"
	})
	form := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	page := e.do(req{method: "GET", path: "/storage", hdr: form}).Body.String()
	if !strings.Contains(page, `action="/storage/disks/SN-A/locate"`) || strings.Contains(page, `action="/storage/disks/SN-B/locate"`) {
		t.Errorf("the Locate buttons: SN-A has a light, SN-B none")
	}
	// SN-A to replace (SMART), SN-B in sync beside it: the guide says to pull SN-A and offers its light there.
	e.storage.change(func(st *appliance.StorageStatus) {
		st.Arrays = append([]appliance.Array(nil), st.Arrays...)
		st.Arrays[0].State, st.Arrays[0].RebuildProgress = "clean", nil
		st.Arrays[0].Members = []appliance.Member{{Serial: "SN-A", State: "in_sync"}, {Serial: "SN-B", State: "in_sync"}}
		st.Disks[1].State = "ok"
	})
	page = e.do(req{method: "GET", path: "/storage", hdr: form}).Body.String()
	guide := page[strings.Index(page, `id="pull-SN-A"`):]
	if guide = guide[:strings.Index(guide, "</p>")]; !strings.Contains(guide, `action="/storage/disks/SN-A/locate"`) {
		t.Errorf("the guide to pull SN-A has no Locate button: %s", guide)
	}
	body := e.do(req{method: "POST", path: "/storage/disks/SN-A/locate", hdr: form, body: "on=yes"}).Body.String()
	for _, want := range []string{"The light of the disk&#39;s slot blinks", `id="locating-SN-A"`, `<input type="hidden" name="on" value="no"><button>Stop the light</button>`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page after Locate lacks %q", want)
		}
	}
	if st, _ := e.storage.Storage(t.Context()); st.Disks[0].Locate != "on" {
		t.Errorf("the light after Locate: %q", st.Disks[0].Locate)
	}
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	for _, tc := range []struct {
		path, body string
		code       int
	}{
		{"/api/v1/storage/disks/SN-A/locate", `{"on":false}`, 204},
		{"/api/v1/storage/disks/SN-A/locate", `{}`, 400},
		{"/api/v1/storage/disks/SN-B/locate", `{"on":true}`, 409},
		{"/api/v1/storage/disks/NOPE/locate", `{"on":true}`, 404},
	} {
		if w := e.do(req{method: "POST", path: tc.path, hdr: bearer, body: tc.body}); w.Code != tc.code {
			t.Errorf("POST %s %s = %d %s, want %d", tc.path, tc.body, w.Code, w.Body, tc.code)
		}
	}
	if st, _ := e.storage.Storage(t.Context()); st.Disks[0].Locate != "off" {
		t.Errorf("the light after the API turned it off: %q", st.Disks[0].Locate)
	}
}

// The disk page's temperature graph shows the disk's limit as a dashed line, over the range chosen.
func TestDiskGraphRangeAndLimit(t *testing.T) {
	e := newEnv(t)
	cookie := map[string]string{"Cookie": CookieName + "=" + e.setUpAndLogin(t)}
	all := e.do(req{method: "GET", path: "/disks/SN-A", hdr: cookie}).Body.String()
	for _, want := range []string{`<line class="limit"`, `>70 °C</text>`, `>72 °C</text>`, `>36 °C</text>`, `href="/disks/SN-A?range=day"`, `href="/disks/SN-A" aria-current="true"`, "(70 °C)"} {
		if !strings.Contains(all, want) {
			t.Errorf("disk page lacks %q", want)
		}
	}
	// The fake's history is from 2026-11-23: nothing of it in the last day.
	day := e.do(req{method: "GET", path: "/disks/SN-A?range=day", hdr: cookie}).Body.String()
	if !strings.Contains(day, `href="/disks/SN-A?range=day" aria-current="true"`) || strings.Contains(day, `temperature history`) || !strings.Contains(day, "Not enough history yet.") {
		t.Errorf("the last day's graph of an old history:\n%s", day)
	}
	if odd := e.do(req{method: "GET", path: "/disks/SN-A?range=<x>", hdr: cookie}).Body.String(); !strings.Contains(odd, `temperature history`) {
		t.Error("an unknown range does not show everything")
	}
}

// A new disk the data array did not grow onto: the page says why and offers to grow all the same; the
// API refuses (409) until told to go without a recent backup.
func TestGrowWaitsForAnAdmin(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	e.storage.st.GrowWaits = "the last backup of the data is more than a day old"
	w := e.do(req{method: "GET", path: "/storage", hdr: map[string]string{"Cookie": CookieName + "=" + tok}})
	for _, want := range []string{`id="grow-waits"`, "did not grow onto it because the last backup of the data is more than a day old.",
		`action="/storage/grow"`, `name="without_recent_backup"`} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("storage page lacks %s", want)
		}
	}
	fr := e.do(req{method: "GET", path: "/storage", hdr: map[string]string{"Cookie": CookieName + "=" + tok, "Accept-Language": "fr"}})
	if !strings.Contains(fr.Body.String(), "car la dernière sauvegarde des données date de plus d&#39;un jour.") {
		t.Error("the French page does not say why in French")
	}
	if w := e.do(req{method: "POST", path: "/api/v1/storage/grow", hdr: bearer, body: `{}`}); w.Code != 409 || !strings.Contains(w.Body.String(), "more than a day old") {
		t.Errorf("grow without the override = %d %s, want 409", w.Code, w.Body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/storage/grow", hdr: bearer, body: `{"without_recent_backup":"yes"}`}); w.Code != 400 {
		t.Errorf("grow with a malformed body = %d, want 400", w.Code)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/storage/grow", hdr: bearer, body: `{"without_recent_backup":true}`}); w.Code != 202 || e.storage.st.GrowWaits != "" {
		t.Errorf("grow with the override = %d %s", w.Code, w.Body)
	}
	if w := e.do(req{method: "PUT", path: "/api/v1/storage/policy", hdr: bearer, body: `{"keep_spare":true}`}); w.Code != 204 || !e.storage.st.KeepSpare {
		t.Errorf("keep spares = %d %+v", w.Code, e.storage.st.StoragePolicy)
	}
}

// The encryption on the storage page: the recovery sheet is shown once, in the answer to the form itself
// (never kept for a later page); a locked unit offers the unlock form, which says a wrong key plainly.
func TestRecoverySheetAndUnlock(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	form := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	e.storage.st.Encryption = appliance.Encryption{State: "open", KeyHolders: []string{"tpm", "partner", "witness"}, KeysNeeded: 2, KeyOnDisks: true}
	page := e.do(req{method: "GET", path: "/storage", hdr: form}).Body.String()
	for _, want := range []string{"this box&#39;s TPM, the partner unit, the witness.", "Two of them must answer", "a disk taken out of the unit is not protected",
		`action="/storage/recovery-key"`, "Make the recovery sheet"} {
		if !strings.Contains(page, want) {
			t.Errorf("storage page lacks %q", want)
		}
	}
	if strings.Contains(page, "Only this box&#39;s TPM keeps it") {
		t.Error("a key two holders must give is said to be the TPM's alone")
	}
	e.storage.st.Encryption = appliance.Encryption{State: "open", KeyHolders: []string{"tpm"}, KeysNeeded: 1}
	if page := e.do(req{method: "GET", path: "/storage", hdr: form}).Body.String(); !strings.Contains(page, "Only this box&#39;s TPM keeps it: the unit taken away whole unlocks") ||
		!strings.Contains(page, "A disk taken out of the unit reveals nothing.") {
		t.Errorf("a lone unit whose TPM alone keeps the key:\n%s", page)
	}
	w := e.do(req{method: "POST", path: "/storage/recovery-key", hdr: form})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `id="recovery-sheet"`) || !strings.Contains(w.Body.String(), "ABCD-EFGH") || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("recovery sheet = %d %q:\n%s", w.Code, w.Header().Get("Cache-Control"), w.Body)
	}
	if again := e.do(req{method: "GET", path: "/storage", hdr: form}).Body.String(); strings.Contains(again, "ABCD-EFGH") {
		t.Error("the recovery key is shown again on the next page")
	}
	if w := e.do(req{method: "POST", path: "/api/v1/storage/unlock", hdr: bearer, body: `{"recovery_key":"GOOD-KEY"}`}); w.Code != 409 {
		t.Errorf("unlock while open = %d, want 409", w.Code)
	}
	e.storage.st.Encryption = appliance.Encryption{State: "locked", Reason: "neither the partner unit nor the witness gave its key (they are not reachable from here)"}
	page = e.do(req{method: "GET", path: "/storage", hdr: form}).Body.String()
	if !strings.Contains(page, `action="/storage/unlock"`) || !strings.Contains(page, "The data is locked") {
		t.Errorf("a locked unit's storage page:\n%s", page)
	}
	fr := e.do(req{method: "GET", path: "/storage", hdr: map[string]string{"Cookie": form["Cookie"], "Accept-Language": "fr"}}).Body.String()
	if !strings.Contains(fr, "ni l&#39;unité partenaire ni le témoin n&#39;ont donné sa clé") {
		t.Error("the French page does not say why in French")
	}
	if body := e.do(req{method: "POST", path: "/storage/unlock", hdr: form, body: "recovery_key=WRONG"}).Body.String(); !strings.Contains(body, "bad request") || e.storage.st.Encryption.State != "locked" {
		t.Errorf("a wrong key: %s", body)
	}
	if body := e.do(req{method: "POST", path: "/storage/unlock", hdr: form, body: "recovery_key=GOOD-KEY"}).Body.String(); !strings.Contains(body, "The data is unlocked") || e.storage.st.Encryption.State != "open" {
		t.Errorf("the right key: %s", body)
	}
	if w := e.do(req{method: "POST", path: "/api/v1/storage/recovery-key", hdr: bearer}); w.Code != 201 || !strings.Contains(w.Body.String(), `"recovery_key":"ABCD-EFGH"`) {
		t.Errorf("API recovery key = %d %s", w.Code, w.Body)
	}
}
