package webui

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docs/api.md, the guide to the API, lists every API route of the route table, and nothing else: a route
// added without its line, or a line left for a route taken away, fails here.
func TestAPIGuideMatchesRoutes(t *testing.T) {
	b, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`\{[a-z$]*\}`)
	norm := func(p string) string { return param.ReplaceAllString(p, "{}") }
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z]+ /api/[^`?]*)[`?]").FindAllStringSubmatch(string(b), -1) {
		documented[norm(m[1])] = true
	}
	var srv Server
	routed := map[string]bool{}
	for _, rt := range srv.Routes() {
		if p := rt.Pattern; strings.Contains(p, " /api/") {
			routed[norm(p)] = true
		}
	}
	// POST /api/v1/system/{action} is documented as its two actions.
	delete(routed, "POST /api/v1/system/{}")
	routed["POST /api/v1/system/poweroff"], routed["POST /api/v1/system/reboot"] = true, true
	var missing, extra []string
	for p := range routed {
		if !documented[p] {
			missing = append(missing, p)
		}
	}
	for p := range documented {
		if !routed[p] {
			extra = append(extra, p)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 {
		t.Errorf("routes missing from docs/api.md:\n%s", strings.Join(missing, "\n"))
	}
	if len(extra) > 0 {
		t.Errorf("docs/api.md documents routes that do not exist:\n%s", strings.Join(extra, "\n"))
	}
}

// The OpenAPI document served has every API route of the table, with its method and path parameters, and
// nothing else; an admin route says so.
func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	w := e.do(req{method: "GET", path: "/api/v1/openapi.json", hdr: bearer(tok)})
	var doc struct {
		OpenAPI string                                       `json:"openapi"`
		Paths   map[string]map[string]map[string]interface{} `json:"paths"`
	}
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &doc) != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("GET openapi.json = %d %.200s", w.Code, w.Body)
	}
	want := map[string]bool{}
	for _, rt := range e.srv.Routes() {
		if method, path, _ := strings.Cut(rt.Pattern, " "); strings.HasPrefix(path, "/api/") || rt.Pattern == metricsRoute {
			want[strings.ToLower(method)+" "+path] = true
		}
	}
	got := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			got[method+" "+path] = true
			params, _ := op["parameters"].([]interface{})
			if n := strings.Count(path, "{"); len(params) != n {
				t.Errorf("%s %s: %d path parameters, the path has %d", method, path, len(params), n)
			}
		}
	}
	for r := range want {
		if !got[r] {
			t.Errorf("route %s missing from the OpenAPI document", r)
		}
	}
	for r := range got {
		if !want[r] {
			t.Errorf("the OpenAPI document has %s, which is not routed", r)
		}
	}
	if a := doc.Paths["/api/v1/system/firmware/rollback"]["post"]["x-lawbox-access"]; a != "admin" {
		t.Errorf("rollback's access = %v", a)
	}
}

// The navigation marks the section of the page shown, after a form too (whose answer is the page).
func TestNavigationMarksTheSection(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	cookie := map[string]string{"Cookie": CookieName + "=" + tok}
	for _, c := range []struct{ method, path, section string }{
		{"GET", "/", `href="/"`}, {"GET", "/storage", `href="/storage"`}, {"GET", "/disks/SN-A", `href="/storage"`},
		{"POST", "/storage/policy", `href="/storage"`}, {"GET", "/audit", `href="/audit"`},
	} {
		hdr := cookie
		body := ""
		if c.method == "POST" {
			hdr = map[string]string{"Cookie": cookie["Cookie"], "Content-Type": "application/x-www-form-urlencoded"}
			body = "auto_add=yes"
		}
		w := e.do(req{method: c.method, path: c.path, body: body, hdr: hdr})
		page := w.Body.String()
		if w.Code != 200 || strings.Count(page, `aria-current="page"`) != 1 || !strings.Contains(page, c.section+` aria-current="page"`) {
			t.Errorf("%s %s = %d: the navigation does not mark %s alone", c.method, c.path, w.Code, c.section)
		}
	}
}
