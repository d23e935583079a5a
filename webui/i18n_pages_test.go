package webui

import (
	"html"
	"regexp"
	"strings"
	"testing"
)

// Every page an admin opens, rendered in French, holds no English text the catalog knows: a text shown
// without T, or a value shown raw (an identifier such as in_sync), fails here.
func TestFrenchPagesHaveNoEnglish(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	e.backups.identity = "AGE-SECRET-KEY-1SHEET"
	french := map[string]string{"Cookie": CookieName + "=" + tok + "; " + LangCookie + "=fr"}
	identifier := regexp.MustCompile(`\b[a-z]+_[a-z_]+\b`) // a state as a part names it ("in_sync")
	tags := regexp.MustCompile(`(?s)<script.*?</script>|<style.*?</style>|<[^>]*>`)
	for _, path := range []string{"/", "/storage", "/disks/SN-A", "/database", "/shares", "/pair", "/network", "/backups", "/alerts", "/jobs", "/account", "/users", "/audit"} {
		w := e.do(req{method: "GET", path: path, hdr: french})
		if w.Code != 200 {
			t.Errorf("GET %s = %d", path, w.Code)
			continue
		}
		text := html.UnescapeString(tags.ReplaceAllString(w.Body.String(), "\n"))
		for _, id := range identifier.FindAllString(text, -1) {
			if id == "practice_app" || id == "lawbox_mirror" { // a database role's and a replication slot's names, shown as they are
				continue
			}
			t.Errorf("%s in French shows an identifier: %q", path, id)
		}
		for en, tr := range fr {
			if en == tr || strings.ContainsAny(en, "%") || !strings.Contains(en, " ") || len(en) < 10 {
				continue // the same in both languages, a pattern, or a word that may be in a name
			}
			if strings.Contains(text, en) {
				t.Errorf("%s in French shows English: %q", path, en)
			}
		}
	}
}
