package webui

import (
	"fmt"
	"strings"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
)

// plurals are the pages' texts whose first value is a count, in each language's two forms: for one, then
// for more. Which one a count takes is CLDR's rule for the language (golang.org/x/text/feature/plural):
// French says "0 essai restant" and "1 essai restant", English "0 tries left" and "1 try left". A form may
// leave the count out ("the last one").
var plurals = map[string]map[string][2]string{
	"%d tries left": {
		"en": {"%d try left", "%d tries left"},
		"fr": {"%d essai restant", "%d essais restants"}},
	"%d client connections.": {
		"en": {"%d client connection.", "%d client connections."},
		"fr": {"%d connexion de client.", "%d connexions de clients."}},
	"%d hours powered on": {
		"en": {"%d hour powered on", "%d hours powered on"},
		"fr": {"%d heure sous tension", "%d heures sous tension"}},
	"last scrub: %d mismatched sectors": {
		"en": {"last scrub: %d mismatched sector", "last scrub: %d mismatched sectors"},
		"fr": {"dernière vérification : %d secteur discordant", "dernière vérification : %d secteurs discordants"}},
	", %d bytes behind": {
		"en": {", %d byte behind", ", %d bytes behind"},
		"fr": {", %d octet de retard", ", %d octets de retard"}},
	"The last %d are shown.": {
		"en": {"Only the last one is shown.", "The last %d are shown."},
		"fr": {"Seule la dernière est affichée.", "Les %d dernières sont affichées."}},
	"Each entry carries the hash of the one before: the %d entries kept are intact.": {
		"en": {"Each entry carries the hash of the one before: the %d entry kept is intact.", "Each entry carries the hash of the one before: the %d entries kept are intact."},
		"fr": {"Chaque entrée porte l'empreinte de la précédente : la %d entrée conservée est intacte.", "Chaque entrée porte l'empreinte de la précédente : les %d entrées conservées sont intactes."}},
}

// pluralForm is text in lang for the count that args begins with, and whether text counts at all.
func pluralForm(lang, text string, args []any) (string, bool) {
	forms, ok := plurals[text][lang]
	if !ok || len(args) == 0 {
		return "", false
	}
	var n int
	switch v := args[0].(type) {
	case int:
		n = v
	case int64:
		n = int(v)
	case uint64:
		n = int(min(v, 1<<31))
	default:
		return "", false
	}
	form := forms[1]
	if plural.Cardinal.MatchPlural(language.Make(lang), max(n, -n), 0, 0, 0, 0) == plural.One {
		form = forms[0]
	}
	if !strings.Contains(form, "%") {
		return form, true
	}
	return fmt.Sprintf(form, args...), true
}
