package webui

import (
	"fmt"
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"io/fs"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lawbox/appliance/appliance"
)

// Every text the templates translate has its French, and so do the values the parts report that the
// templates pass through T (states, roles, kinds, the dashboard's sentences).
// fr is the French catalog's texts, by their English id ("" for a counted one).
var fr = locales["fr"].texts

func TestFrenchCatalogComplete(t *testing.T) {
	literal := regexp.MustCompile(`\{\{T "((?:[^"\\]|\\.)*)"`)
	files, _ := fs.Glob(templateFS, "templates/*.html")
	n := 0
	for _, f := range files {
		b, _ := fs.ReadFile(templateFS, f)
		for _, m := range literal.FindAllStringSubmatch(string(b), -1) {
			n++
			text, err := strconv.Unquote(`"` + m[1] + `"`)
			if err != nil {
				t.Errorf("%s: %s: %v", f, m[1], err)
			}
			if _, ok := fr[text]; !ok {
				t.Errorf("%s: %q has no French", f, text)
			}
		}
	}
	if n < 50 {
		t.Errorf("only %d texts found in the templates: the pattern is wrong", n)
	}
	e := newEnv(t)
	sum := e.srv.summarize(t.Context())
	for _, v := range []string{sum.Sentence, "Everything is working: the disks are mirrored and healthy.", "Working, with something to look at below.",
		"clean", "degraded", "rebuilding", "resyncing", "checking", "failed", "member", "spare", "unused", "ok", "faulty", "blank",
		"needs_adopt", "refused", "watch", "replace", "single", "active", "standby", "fenced", "production", "mirror", "none",
		"running", "starting", "initialising", "sync", "async", "catching up", "dump", "increment", "admin", "viewer", "warning", "critical", "auto", "manual", "unknown", "reserved", "extended", "unreserved", "lost",
		"database", "WAL archive", "backups", "backup scratch"} {
		if _, ok := fr[v]; !ok {
			t.Errorf("value %q has no French", v)
		}
	}
}

// The notices the pages show after an action (the literal ones; those naming a user or a disk stay
// English) have their French: found in the source, so a new one cannot be forgotten.
func TestFrenchNotices(t *testing.T) {
	var notices []string
	inspectSource(t, func(n ast.Node) {
		switch n := n.(type) {
		case *ast.CallExpr:
			if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "failed" { // a job's failure, as the page says it
				if text, ok := stringLit(n.Args[0]); ok {
					notices = append(notices, text)
				}
			}
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "formJob" { // a job's result: what its function returns
				ast.Inspect(n.Args[len(n.Args)-1], func(n ast.Node) bool {
					if ret, ok := n.(*ast.ReturnStmt); ok && len(ret.Results) > 0 {
						if text, ok := stringLit(ret.Results[0]); ok {
							notices = append(notices, text)
						}
					}
					return true
				})
			}
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok && strings.HasPrefix(sel.Sel.Name, "render") && sel.Sel.Name != "render" {
				for _, a := range n.Args { // a notice, wherever the function takes it
					if text, ok := stringLit(a); ok {
						notices = append(notices, text)
					}
				}
			}
		case *ast.KeyValueExpr:
			if id, ok := n.Key.(*ast.Ident); ok && id.Name == "Notice" {
				if text, ok := stringLit(n.Value); ok {
					notices = append(notices, text)
				}
			}
		}
	}, ".")
	for _, title := range jobTitles {
		notices = append(notices, title)
	}
	if len(notices) < 10 {
		t.Fatalf("only %d notices found: %q", len(notices), notices)
	}
	for _, n := range notices {
		if _, ok := fr[n]; !ok {
			t.Errorf("notice %q has no French", n)
		}
	}
}

// Every alert the parts raise (appliance.NewAlert with a literal pattern) has its French pattern, with as
// many values; found in the source, so a new alert cannot be forgotten.
func TestFrenchAlerts(t *testing.T) {
	var texts []string
	inspectSource(t, func(n ast.Node) {
		c, ok := n.(*ast.CallExpr)
		if !ok || len(c.Args) < 2 {
			return
		}
		name := ""
		switch fn := c.Fun.(type) {
		case *ast.Ident:
			name = fn.Name
		case *ast.SelectorExpr:
			name = fn.Sel.Name
		}
		if format, ok := stringLit(c.Args[1]); ok && name == "NewAlert" {
			args := make([]any, len(c.Args)-2)
			for i := range args {
				args[i] = 1
			}
			texts = append(texts, appliance.NewAlert("warning", format, args...).Text)
		}
	}, "../appliance", "../appliance/storage")
	if len(texts) < 20 {
		t.Fatalf("only %d alerts found", len(texts))
	}
	for _, text := range texts {
		f, ok := fr[text]
		if !ok {
			t.Errorf("alert %q has no French", text)
		} else if strings.Count(f, "%s") != strings.Count(text, "%s") {
			t.Errorf("alert %q: the French %q has another number of values", text, f)
		}
	}
	// Stated in French on the page, with a state among its values translated too.
	a := appliance.NewAlert("warning", "the database is %s", "starting")
	if got := alertText("fr")(a); got != fmt.Sprintf(fr[a.Text], fr["starting"]) {
		t.Errorf("French alert: %q", got)
	}
	if got := alertText("en")(a); got != "the database is starting" {
		t.Errorf("English alert: %q", got)
	}
}

// inspectSource calls f with every node of the Go files (not tests) in dirs.
func inspectSource(t *testing.T, f func(ast.Node), dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(gotoken.NewFileSet(), name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(file, func(n ast.Node) bool { f(n); return true })
		}
	}
}

// stringLit is e's text when e is a non-empty string literal.
func stringLit(e ast.Expr) (string, bool) {
	b, ok := e.(*ast.BasicLit)
	if !ok || b.Kind != gotoken.STRING {
		return "", false
	}
	text, err := strconv.Unquote(b.Value)
	return text, err == nil && text != ""
}

// The language comes from the switch's cookie, else the browser; the switch only returns to a path on the unit.
func TestLanguageChoice(t *testing.T) {
	e := newEnv(t)
	e.setUpAndLogin(t)
	for _, tc := range []struct {
		hdr  map[string]string
		want string
	}{
		{map[string]string{"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.8"}, `<html lang="fr">`},
		{map[string]string{"Accept-Language": "de-DE,en;q=0.5"}, `<html lang="en">`},
		{map[string]string{}, `<html lang="en">`},
		{map[string]string{"Accept-Language": "fr", "Cookie": LangCookie + "=en"}, `<html lang="en">`},
		{map[string]string{"Cookie": LangCookie + "=fr"}, `<h1>Connexion</h1>`},
	} {
		w := e.do(req{method: "GET", path: "/login", hdr: tc.hdr})
		if !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%v: login page lacks %s", tc.hdr, tc.want)
		}
	}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for body, want := range map[string]string{"lang=fr&back=/storage": "/storage", "lang=en&back=//evil.example/x": "/",
		"lang=fr&back=https://evil.example/": "/", "lang=fr": "/", "lang=fr&back=/%5Cevil.example": "/",
		"lang=fr&back=%2F%5Cevil.example": "/", "lang=fr&back=/%255Cevil.example": "/", "lang=fr&back=/\\evil.example": "/",
		"lang=fr&back=/%09/evil.example": "/", "lang=fr&back=/backups/2026-12-01T02:00:00Z": "/backups/2026-12-01T02:00:00Z"} {
		w := e.do(req{method: "POST", path: "/lang", body: body, hdr: form})
		c := w.Result().Cookies()
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != want || len(c) != 1 || c[0].Name != LangCookie || !c[0].Secure {
			t.Errorf("POST /lang %s = %d to %q, cookies %v; want a redirect to %s", body, w.Code, w.Header().Get("Location"), c, want)
		}
	}
	if w := e.do(req{method: "POST", path: "/lang", body: "lang=de", hdr: form}); w.Code != 400 {
		t.Errorf("unknown language = %d", w.Code)
	}
}

// The database page in French with a lagging mirror: numbers, not pointers, in the translated sentences, written
// the French way (a no-break space between thousands, a decimal comma in the graph's axis, which a screen reader
// names in French).
func TestFrenchDatabasePage(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	e.db.role = "mirror"
	lag := 2.25
	e.db.lagSeconds = &lag
	w := e.do(req{method: "GET", path: "/database", hdr: map[string]string{"Cookie": CookieName + "=" + tok + "; " + LangCookie + "=fr"}})
	b := w.Body.String()
	if w.Code != 200 || !strings.Contains(b, "Promouvoir ce miroir") || !strings.Contains(b, "4\u00a0096 octets de retard") || strings.Contains(b, "0xc") ||
		!strings.Contains(b, `aria-label="retard du miroir"`) || !strings.Contains(b, `>2,0 s</text>`) ||
		!strings.Contains(b, "de retard, 2,2 s.") || strings.Contains(b, "%!") || strings.Contains(b, "()") {
		t.Errorf("French database page = %d:\n%s", w.Code, b)
	}
	// The dashboard's database section says the lag in seconds the French way too.
	dash := e.do(req{method: "GET", path: "/", hdr: map[string]string{"Cookie": CookieName + "=" + tok + "; " + LangCookie + "=fr"}}).Body.String()
	if !strings.Contains(dash, "Retard du miroir : 2,2 s") {
		t.Errorf("French dashboard: no lag in seconds written the French way")
	}
}
