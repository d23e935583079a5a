package webui

import (
	"strings"
	"testing"
)

// Each data cell is named after its column's header, the headers marked; a table of row headers, cells
// that already have a label, empty headers and everything outside the tables are left as they were.
func TestLabelCells(t *testing.T) {
	page := `<p>Before <b>it</b></p><table><caption>Disks</caption>
<tr><th>Serial</th><th>Size &amp; <abbr>use</abbr></th><th></th></tr>
<tr><td>SN-A</td><td class="n">1.0 GB</td><td><form method="post" action="/x"><button>Use</button></form></td></tr>
<tr><td data-label="own">x</td><td>y</td></tr></table>
<table><tr><th scope="row">Database</th><td>1 GB</td></tr></table><script>if (a<b) {}</script>`
	want := `<p>Before <b>it</b></p><table><caption>Disks</caption>
<tr><th data-head>Serial</th><th data-head>Size &amp; <abbr>use</abbr></th><th data-head></th></tr>
<tr><td data-label="Serial">SN-A</td><td class="n" data-label="Size &amp; use">1.0 GB</td><td><form method="post" action="/x"><button>Use</button></form></td></tr>
<tr><td data-label="own">x</td><td data-label="Size &amp; use">y</td></tr></table>
<table><tr><th scope="row">Database</th><td>1 GB</td></tr></table><script>if (a<b) {}</script>`
	if got := string(labelCells([]byte(page))); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := string(labelCells([]byte("<p>no table</p>"))); got != "<p>no table</p>" {
		t.Errorf("a page without a table became %q", got)
	}
}

// The pages' tables are labelled in the page's language.
func TestPagesLabelTheirCells(t *testing.T) {
	e := newEnv(t)
	tok := e.setUpAndLogin(t)
	for lang, want := range map[string]string{"en": `data-label="Serial"`, "fr": `data-label="N° de série"`} {
		body := e.do(req{method: "GET", path: "/storage", hdr: map[string]string{"Cookie": CookieName + "=" + tok + "; " + LangCookie + "=" + lang}}).Body.String()
		if !strings.Contains(body, want) || !strings.Contains(body, "<th data-head>") {
			t.Errorf("the storage page in %s has no %s", lang, want)
		}
	}
}
