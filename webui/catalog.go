package webui

import (
	"embed"
	"encoding/json"
	"fmt"
	"path"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"
)

// The pages' words in each language are message files (locales/<lang>.json) read into golang.org/x/text's
// catalog: a message is looked up by its English text, a counted one takes CLDR's plural form of its first
// value (French says "0 essai restant", English "0 tries left"), and numbers are written the language's way
// ("1,5 s", "12 345 octets").

//go:embed locales/*.json
var localeFiles embed.FS

// localeMessage is one message of a locale file: its English id and either its translation or, for a text
// whose first value is a count, its forms for one and for more (the form may leave the count out: "Only the
// last one is shown.").
type localeMessage struct {
	ID          string `json:"id"`
	Section     string `json:"section,omitempty"` // where the text is shown, for a translator
	Translation string `json:"translation,omitempty"`
	Plural      *struct {
		One   string `json:"one"`
		Other string `json:"other"`
	} `json:"plural,omitempty"`
}

type localeFile struct {
	Language string          `json:"language"`
	Messages []localeMessage `json:"messages"`
}

// locale is one language's printer and the texts its file holds (a text it lacks is English).
type locale struct {
	printer *message.Printer
	texts   map[string]string // id → translation ("" for a counted text)
}

var locales = mustLoadLocales()

// mustLoadLocales reads every locale file into one catalog; the files are part of the binary, so an error is
// the build's (a test loads them too).
func mustLoadLocales() map[string]locale {
	l, err := loadLocales()
	if err != nil {
		panic(err)
	}
	return l
}

func loadLocales() (map[string]locale, error) {
	b := catalog.NewBuilder(catalog.Fallback(language.English))
	texts := map[string]map[string]string{}
	for _, l := range languages {
		name := path.Join("locales", l+".json")
		raw, err := localeFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("locale %s: %w", l, err)
		}
		var f localeFile
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("locale %s: %w", name, err)
		}
		tag := language.Make(l)
		if f.Language != l {
			return nil, fmt.Errorf("locale %s: says it is %q", name, f.Language)
		}
		texts[l] = map[string]string{}
		for _, m := range f.Messages {
			if _, dup := texts[l][m.ID]; dup {
				return nil, fmt.Errorf("locale %s: %q twice", name, m.ID)
			}
			texts[l][m.ID] = m.Translation
			if m.Plural != nil {
				err = b.Set(tag, m.ID, plural.Selectf(1, "%d", plural.One, m.Plural.One, plural.Other, m.Plural.Other))
			} else {
				err = b.SetString(tag, m.ID, m.Translation)
			}
			if err != nil {
				return nil, fmt.Errorf("locale %s: %q: %w", name, m.ID, err)
			}
		}
	}
	out := map[string]locale{}
	for _, l := range languages {
		out[l] = locale{printer: message.NewPrinter(language.Make(l), message.Catalog(b)), texts: texts[l]}
	}
	return out, nil
}
