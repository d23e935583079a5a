package webui

import (
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
