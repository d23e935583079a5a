package webui

import (
	"encoding/json"
	"strings"
	"testing"
)

// A count takes its language's form: French says "0 essai" and "1 essai", English "0 tries" and "1 try";
// every counted text of the pages has both forms in both languages.
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
	counted := map[string]map[string][2]string{} // id → language → forms
	for _, lang := range languages {
		raw, _ := localeFiles.ReadFile("locales/" + lang + ".json")
		var f localeFile
		if err := json.Unmarshal(raw, &f); err != nil {
			t.Fatal(err)
		}
		for _, m := range f.Messages {
			if m.Plural != nil {
				if counted[m.ID] == nil {
					counted[m.ID] = map[string][2]string{}
				}
				counted[m.ID][lang] = [2]string{m.Plural.One, m.Plural.Other}
			}
		}
	}
	if len(counted) < 7 {
		t.Errorf("%d counted texts", len(counted))
	}
	for text, langs := range counted {
		for _, lang := range languages {
			forms, ok := langs[lang]
			if !ok {
				t.Errorf("%q is counted but has no forms in %s", text, lang)
			}
			for _, form := range forms {
				if form == "" || strings.Count(form, "%") > strings.Count(text, "%") {
					t.Errorf("%q in %s: form %q", text, lang, form)
				}
			}
		}
	}
}
