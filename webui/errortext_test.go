package webui

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lawbox/appliance/appliance"
)

// errorFormats lists the formats of the errors the appliance packages return to an admin: fmt.Errorf
// calls that wrap one of package appliance's kinds (ErrBadInput, ErrConflict, ...), and the validation
// helpers named bad (their format after the kind). Formats of verbs alone ("%w: %v") add no words.
func errorFormats(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	fset := gotoken.NewFileSet()
	err := filepath.WalkDir("../appliance", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			c, ok := n.(*ast.CallExpr)
			if !ok || len(c.Args) == 0 {
				return true
			}
			lit, ok := c.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != gotoken.STRING {
				return true
			}
			format, _ := strconv.Unquote(lit.Value)
			if id, ok := c.Fun.(*ast.Ident); ok && id.Name == "bad" {
				out["%w: "+format] = fset.Position(c.Pos()).String()
				return true
			}
			if sel, ok := c.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "Errorf" {
				return true
			}
			for _, a := range c.Args[1:] {
				if se, ok := a.(*ast.SelectorExpr); ok && fmt.Sprint(se.X) == "appliance" && strings.HasPrefix(se.Sel.Name, "Err") &&
					strings.TrimSpace(verb.ReplaceAllString(format, "")) != ":" && verb.ReplaceAllString(format, "") != "" {
					out[format] = fset.Position(c.Pos()).String()
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every error an appliance package returns to an admin has its French, which takes the same values: a
// new error without one fails here, as a new text of the pages does in TestFrenchCatalogComplete.
func TestErrorsInFrench(t *testing.T) {
	formats := errorFormats(t)
	if len(formats) < 150 {
		t.Fatalf("found %d formats of errors in the appliance packages: the scan is broken", len(formats))
	}
	for format, where := range formats {
		if _, ok := errorsFR[format]; !ok {
			t.Errorf("%s: no French for %q", where, format)
		}
	}
	for format, fr := range errorsFR {
		n := 0
		for _, v := range verb.FindAllString(format, -1) {
			if v != "%%" {
				n++
			}
		}
		args := make([]any, n)
		for i := range args {
			args[i] = fmt.Sprintf("<%d>", i+1)
		}
		got := fmt.Sprintf(fr, args...)
		for _, a := range args {
			if !strings.Contains(got, a.(string)) {
				t.Errorf("%q: the French %q leaves out %s", format, fr, a)
			}
		}
		if strings.Contains(got, "%!") {
			t.Errorf("%q: the French %q does not take its %d values: %s", format, fr, n, got)
		}
	}
}

// Errors as the parts write them, stated in French: values kept as they are (quoted ones too), a wrapped
// error and a kind stated in their turn, a text no format matches (a tool's words) left alone.
func TestErrorText(t *testing.T) {
	refusal := errors.New("a backup of the data is older than a day")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: port %s: address %q: give it with its prefix length, e.g. 192.0.2.11/24", appliance.ErrBadInput, "lan0", "192.0.2.300: x"),
			`demande incorrecte : port lan0 : adresse "192.0.2.300: x" : donnez-la avec la longueur de son préfixe, par exemple 192.0.2.11/24`},
		{fmt.Errorf("user %s is the last admin; add another admin first: %w", "admin", appliance.ErrConflict),
			"admin est le dernier administrateur ; ajoutez d'abord un autre administrateur : impossible pour le moment"},
		{fmt.Errorf("share %q: %w", "IPC$", fmt.Errorf("%w: share name %q is reserved by SMB; choose another", appliance.ErrBadInput, "IPC$")),
			`partage "IPC$" : demande incorrecte : le nom de partage "IPC$" est réservé par SMB ; choisissez-en un autre`},
		{fmt.Errorf("grow the data array: %w: %w", refusal, appliance.ErrConflict),
			"agrandir la grappe de données : a backup of the data is older than a day : impossible pour le moment"},
		{fmt.Errorf("%w: %v", appliance.ErrBadInput, errors.New("mdadm: /dev/md1 is busy")), "demande incorrecte : mdadm: /dev/md1 is busy"},
		{errors.New("mdadm: /dev/md1 is busy"), "mdadm: /dev/md1 is busy"},
	} {
		if got := errorText("fr", tc.err.Error()); got != tc.want {
			t.Errorf("%q in French:\n got %q\nwant %q", tc.err, got, tc.want)
		}
		if got := errorText("en", tc.err.Error()); got != tc.err.Error() {
			t.Errorf("%q in English became %q", tc.err, got)
		}
	}
}

// A form refused by a part says so in the page's language (here a user who exists already, refused by
// the accounts).
func TestFormErrorInFrench(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	form := map[string]string{"Cookie": CookieName + "=" + tok + "; " + LangCookie + "=fr", "Content-Type": "application/x-www-form-urlencoded"}
	body := "name=clerk&role=viewer&password=" + pw + "&confirm=" + pw
	e.do(req{method: "POST", path: "/users", hdr: form, body: body})
	w := e.do(req{method: "POST", path: "/users", hdr: form, body: body})
	if page := w.Body.String(); !strings.Contains(page, "l&#39;utilisateur clerk existe déjà : impossible pour le moment") {
		t.Errorf("the users page in French after adding clerk twice:\n%s", page)
	}
}
