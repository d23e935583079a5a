package webui

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// bodyRoutes are the API routes that read a JSON body, and the form routes that read a form, fuzzed below.
var (
	jsonRoutes = []string{"PUT /api/v1/storage/policy", "POST /api/v1/database/databases", "PUT /api/v1/database/upstream",
		"PUT /api/v1/database/policy", "PUT /api/v1/backups/targets", "POST /api/v1/backups/run", "POST /api/v1/pair/invite",
		"POST /api/v1/pair/join", "POST /api/v1/pair/role", "PUT /api/v1/network", "PUT /api/v1/disks/policy",
		"POST /api/v1/disks/SN-A/smart/selftest", "POST /api/v1/login", "POST /api/v1/setup", "POST /api/v1/alerts/ack",
		"POST /api/v1/alerts/unack"}
	formRoutes = []string{"POST /login", "POST /setup", "POST /storage/policy", "POST /database/databases", "POST /database/upstream",
		"POST /database/policy", "POST /backups/targets", "POST /pair/join", "POST /pair/role", "POST /pair/network", "POST /users",
		"POST /alerts/ack", "POST /alerts/unack", "POST /database/set-aside/delete", "POST /database/start-afresh"}
)

// FuzzAPIBodies sends arbitrary bodies to every JSON route as an admin: the answer is never a 500 or a
// panic, and always JSON.
func FuzzAPIBodies(f *testing.F) {
	e := newEnv(f)
	tok := e.setUpAndLogin(f)
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
