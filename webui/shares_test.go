package webui

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/shares"
)

// The shares API: odd names and unknown accounts are a clear 400 and change nothing; a share and its
// accounts come back as set; passwords never come back in any form.
func TestSharesAPI(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	for _, tc := range []struct {
		method, path, body string
		want               int
		msg                string
	}{
		{"PUT", "/api/v1/file-accounts/marie", `{"password":"short"}`, 400, "10 to 128"},
		{"PUT", "/api/v1/file-accounts/root", `{"password":"a long password"}`, 400, "system accounts"},
		{"PUT", "/api/v1/file-accounts/ma%20rie", `{"password":"a long password"}`, 400, "account name"},
		{"PUT", "/api/v1/file-accounts/marie", `{"password":"a long password"}`, 204, ""},
		{"PUT", "/api/v1/shares/IPC$", `{"read_write":["marie"]}`, 400, "share name"},
		{"PUT", "/api/v1/shares/Global", `{"read_write":["marie"]}`, 400, "reserved"},
		{"PUT", "/api/v1/shares/.hidden", `{"read_write":["marie"]}`, 400, "share name"},
		{"PUT", "/api/v1/shares/a%5Db", `{"read_write":["marie"]}`, 400, "share name"},
		{"PUT", "/api/v1/shares/Clients", `{"read_write":["paul"]}`, 400, "no file account"},
		{"PUT", "/api/v1/shares/Clients", `{"read_write":["marie"],"comment":"x\n[global]"}`, 400, "comment"},
		{"PUT", "/api/v1/shares/Clients", `{"read_write":["marie"],"extra":1}`, 400, "unknown field"},
		{"PUT", "/api/v1/shares/Dossiers%202026", `{"read_only":["MARIE"],"comment":"archives","encrypt":true}`, 200, `"read_only":["marie"],"encrypt":true`},
		{"DELETE", "/api/v1/shares/nope", ``, 404, ""},
	} {
		w := e.do(req{method: tc.method, path: tc.path, body: tc.body, hdr: bearer(tok)})
		if w.Code != tc.want || !strings.Contains(w.Body.String(), tc.msg) {
			t.Errorf("%s %s %s = %d %s, want %d with %q", tc.method, tc.path, tc.body, w.Code, w.Body, tc.want, tc.msg)
		}
	}
	w := e.do(req{method: "GET", path: "/api/v1/shares", hdr: bearer(tok)})
	var st appliance.SharesStatus
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || w.Code != 200 {
		t.Fatalf("GET = %d %s", w.Code, w.Body)
	}
	if len(st.Shares) != 1 || st.Shares[0].Name != "Dossiers 2026" || len(st.Accounts) != 1 || st.State != appliance.SharesStopped {
		t.Errorf("shares: %+v", st)
	}
	if strings.Contains(w.Body.String(), "hash") || strings.Contains(w.Body.String(), "password") {
		t.Errorf("the answer carries a password or its hash: %s", w.Body)
	}
	if w := e.do(req{method: "DELETE", path: "/api/v1/file-accounts/marie", hdr: bearer(tok)}); w.Code != 204 {
		t.Fatalf("delete account = %d %s", w.Code, w.Body)
	}
	if st := e.srv.shares.Shares(t.Context()); len(st.Shares[0].ReadOnly) != 0 {
		t.Errorf("a removed account is still on a share: %+v", st.Shares[0])
	}
}

// The page's forms: an account, then a share with that account's access, in French.
func TestSharesPage(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	form := map[string]string{"Cookie": CookieName + "=" + tok + "; " + LangCookie + "=fr", "Content-Type": "application/x-www-form-urlencoded"}
	w := e.do(req{method: "POST", path: "/shares/accounts", body: url.Values{"name": {"marie"}, "password": {"a long password"}, "confirm": {"another one!"}}.Encode(), hdr: form})
	if !strings.Contains(w.Body.String(), "the two passwords differ") {
		t.Errorf("different passwords: %d %s", w.Code, w.Body)
	}
	w = e.do(req{method: "POST", path: "/shares/accounts", body: url.Values{"name": {"marie"}, "password": {"a long password"}, "confirm": {"a long password"}}.Encode(), hdr: form})
	if !strings.Contains(w.Body.String(), "Compte de fichiers enregistré.") {
		t.Errorf("account form: %d %s", w.Code, w.Body)
	}
	w = e.do(req{method: "POST", path: "/shares", body: url.Values{"name": {"Clients"}, "access.marie": {"write"}}.Encode(), hdr: form})
	body := w.Body.String()
	if !strings.Contains(body, "Partage enregistré.") || !strings.Contains(body, "<td data-label=\"Lecture et écriture\">marie</td>") {
		t.Errorf("share form: %d %s", w.Code, body)
	}
	if st := e.srv.shares.Shares(t.Context()); len(st.Shares) != 1 || len(st.Shares[0].ReadWrite) != 1 {
		t.Errorf("share: %+v", st)
	}
	w = e.do(req{method: "POST", path: "/shares/Clients/delete", body: url.Values{"confirm": {"clients?"}}.Encode(), hdr: form})
	if len(e.srv.shares.Shares(t.Context()).Shares) != 1 {
		t.Errorf("deleted without the confirmation: %s", w.Body)
	}
	w = e.do(req{method: "GET", path: "/shares", hdr: form})
	if !strings.Contains(w.Body.String(), "Cet appareil ne sert pas les partages en ce moment.") {
		t.Errorf("page: %s", w.Body)
	}
}

// A configuration restore: the API answers what was restored; the form needs its box ticked.
func TestRestoreConfigRoutes(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	if w := e.do(req{method: "POST", path: "/api/v1/backups/20261204T101500Z-dump/config/restore", hdr: bearer(tok)}); w.Code != 200 ||
		!strings.Contains(w.Body.String(), `"restored":["1 file shares and 1 file accounts"]`) {
		t.Errorf("API = %d %s", w.Code, w.Body)
	}
	form := map[string]string{"Cookie": CookieName + "=" + tok, "Content-Type": "application/x-www-form-urlencoded"}
	if w := e.do(req{method: "POST", path: "/backups/20261204T101500Z-dump/config/restore", hdr: form}); !strings.Contains(w.Body.String(), "tick the box") {
		t.Errorf("form without the box: %s", w.Body)
	}
	e.do(req{method: "POST", path: "/backups/20261204T101500Z-dump/config/restore", hdr: form, body: "confirm=yes"})
	if got := e.backups.configRestores; len(got) != 2 || got[1] != "20261204T101500Z-dump" {
		t.Errorf("restores asked: %v", got)
	}
}

// A copy DRBD marked outdated (the fencing: the active unit stored documents alone) is said so on both
// units' pages, in the page's language.
func TestSharesPageOutdatedCopy(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	sh := e.srv.shares.(*shares.Server)
	for _, c := range []struct{ disk, peer, en, fr string }{
		{"Outdated", "DUnknown", "This unit&#39;s copy lacks documents the other unit stored", "La copie de cet appareil n&#39;a pas les documents"},
		{"UpToDate", "Outdated", "The other unit&#39;s copy lacks documents this unit stored", "La copie de l&#39;autre appareil n&#39;a pas les documents"},
	} {
		sh.Replication = func() *appliance.Replication {
			return &appliance.Replication{State: "running", Paired: true, Disk: c.disk, PeerDisk: c.peer, Connection: "WFConnection"}
		}
		for lang, want := range map[string]string{"en": c.en, "fr": c.fr} {
			w := e.do(req{method: "GET", path: "/shares", hdr: map[string]string{"Cookie": CookieName + "=" + tok + "; " + LangCookie + "=" + lang}})
			if !strings.Contains(w.Body.String(), want) {
				t.Errorf("%s/%s, %s: no %q in %s", c.disk, c.peer, lang, want, w.Body)
			}
		}
	}
}
