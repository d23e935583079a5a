package webui

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// bodyRoutes lists, from the route table, the routes that read a body: the API's (JSON) and the pages'
// (forms), with sample path values. Logging out is left out: it would end the fuzzer's session.
func bodyRoutes(srv *Server) (jsonRoutes, formRoutes []string) {
	values := strings.NewReplacer("{action}", "reboot", "{serial}", "SN-A", "{key}", "nvme-warning-4", "{name}", "clerk",
		"{id}", "2026-12-01T020000Z")
	for _, rt := range srv.Routes() {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		if method == "GET" || strings.HasSuffix(path, "/logout") {
			continue
		}
		r := method + " " + values.Replace(strings.TrimSuffix(path, "{$}"))
		if strings.HasPrefix(path, "/api/") {
			jsonRoutes = append(jsonRoutes, r)
		} else {
			formRoutes = append(formRoutes, r)
		}
	}
	return jsonRoutes, formRoutes
}

// Every route that reads a body is fuzzed: the lists come from the route table.
func TestFuzzCoversRouteTable(t *testing.T) {
	e := newEnv(t)
	js, forms := bodyRoutes(e.srv)
	for _, want := range []string{"PUT /api/v1/storage/policy", "DELETE /api/v1/users/clerk/totp", "PUT /api/v1/tls", "POST /api/v1/backups/2026-12-01T020000Z/restore"} {
		if !slices.Contains(js, want) {
			t.Errorf("JSON routes lack %s: %v", want, js)
		}
	}
	for _, want := range []string{"POST /lang", "POST /account/totp/off", "POST /users/clerk/password", "POST /alerts/test"} {
		if !slices.Contains(forms, want) {
			t.Errorf("form routes lack %s: %v", want, forms)
		}
	}
}

// FuzzAPIBodies sends arbitrary bodies to every JSON route as an admin: the answer is never a 500 or a
// panic, and always JSON.
func FuzzAPIBodies(f *testing.F) {
	e := newEnv(f)
	tok := e.setUpAndLogin(f)
	jsonRoutes, _ := bodyRoutes(e.srv)
	for _, seed := range []string{`{}`, `{"sync":true,"degrade_after_s":-1}`, `{"host":"x","port":99999}`, `[`, `{"a":1}{"b":2}`,
		`{"ports":[{"name":"eth0","addresses":["192.0.2.1/33"]}]}`, `{"kind":"s3","endpoint":"::::"}`, "\x00\xff", `{"name":"'; DROP"}`,
		`{"peer":"192.0.2.1","code":"` + strings.Repeat("A", 100) + `"}`, `{"user":"admin","password":null}`} {
		for i := range jsonRoutes {
			f.Add(i, seed)
		}
	}
	f.Fuzz(func(t *testing.T, route int, body string) {
		if route < 0 {
			route = -route
		}
		method, path, _ := strings.Cut(jsonRoutes[route%len(jsonRoutes)], " ")
		w := e.do(req{method: method, path: path, body: body, hdr: bearer(tok)})
		if w.Code >= 500 && w.Code != 503 {
			t.Fatalf("%s %s %q = %d %s", method, path, body, w.Code, w.Body)
		}
		if w.Body.Len() > 0 && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s %q answered non-JSON: %s", method, path, body, w.Body)
		}
	})
}

// FuzzForms sends arbitrary form bodies to the pages' form routes as an admin: never a 500 or a panic.
func FuzzForms(f *testing.F) {
	e := newEnv(f)
	tok := e.setUpAndLogin(f)
	_, formRoutes := bodyRoutes(e.srv)
	for _, seed := range []string{"", "a=b", "%zz", "name=" + url.QueryEscape("<script>") + "&role=admin", "kind=sftp&endpoint=:::",
		"sync=on&degrade_after_s=abc", "address=192.0.2.1%2F99&gateway=x", strings.Repeat("x=1&", 500)} {
		for i := range formRoutes {
			f.Add(i, seed)
		}
	}
	f.Fuzz(func(t *testing.T, route int, body string) {
		if route < 0 {
			route = -route
		}
		method, path, _ := strings.Cut(formRoutes[route%len(formRoutes)], " ")
		w := e.do(req{method: method, path: path, body: body, hdr: map[string]string{"Cookie": CookieName + "=" + tok,
			"Content-Type": "application/x-www-form-urlencoded"}})
		if w.Code >= 500 && w.Code != 503 {
			t.Fatalf("%s %s %q = %d %s", method, path, body, w.Code, w.Body)
		}
		if strings.Contains(w.Body.String(), "<script>") {
			t.Fatalf("%s %s echoed markup unescaped", method, path)
		}
	})
}
