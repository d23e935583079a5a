package webui

import (
	"strings"
	"testing"
)

// A count takes its language's form: French says "0 essai" and "1 essai", English "0 tries" and "1 try";
// every counted text of the pages has both forms in both languages, and its French is in the catalog.
func TestPlurals(t *testing.T) {
	for _, tc := range []struct {
		lang string
		n    any
		want string
	}{
		{"en", 1, "1 try left"}, {"en", 0, "0 tries left"}, {"en", 2, "2 tries left"},
		{"fr", 1, "1 essai restant"}, {"fr", 0, "0 essai restant"}, {"fr", 2, "2 essais restants"},
	} {
		if got := translator(tc.lang)("%d tries left", tc.n); got != tc.want {
			t.Errorf("%s, %v tries: %q, want %q", tc.lang, tc.n, got, tc.want)
		}
	}
	if got := translator("fr")("%d hours powered on", uint64(1)); got != "1 heure sous tension" {
		t.Errorf("1 hour in French: %q", got)
	}
	if got := translator("en")("The last %d are shown.", 1); got != "Only the last one is shown." {
		t.Errorf("the last one: %q", got)
	}
	for text, langs := range plurals {
		if _, ok := fr[text]; !ok {
			t.Errorf("%q is counted but not in the French catalog", text)
		}
		for _, lang := range languages {
			for _, form := range langs[lang] {
				if form == "" || strings.Count(form, "%") > strings.Count(text, "%") {
					t.Errorf("%q in %s: form %q", text, lang, form)
				}
			}
		}
	}
}
