package webui

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/lawbox/appliance/appliance"
)

// Languages of the UI: English, in which the templates are written, and French. The language comes from a
// cookie the header's switch sets, else from the browser's Accept-Language.
var languages = []string{"en", "fr"}

// LangCookie remembers the language chosen with the switch.
const LangCookie = "lang"

// lang is the request's language.
func lang(r *http.Request) string {
	if c, err := r.Cookie(LangCookie); err == nil && (c.Value == "en" || c.Value == "fr") {
		return c.Value
	}
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		switch base, _, _ := strings.Cut(strings.ToLower(tag), "-"); base {
		case "fr":
			return "fr"
		case "en":
			return "en"
		}
	}
	return "en"
}

// translate is a language's T: a text of the catalog, formatted with its values.
type translate = func(string, ...any) string

// translator returns the T function of the templates for a language: T "text %s" args... looks the English
// text up in the language's catalog (locales/<lang>.json) and formats it the language's way. A text missing
// from the catalog stays English (a test checks that every text of the templates is in the French catalog),
// unless it is an error of the unit's parts (errorText).
func translator(lang string) translate {
	loc := locales[lang]
	return func(text string, args ...any) string {
		t, ok := loc.texts[text]
		switch {
		case !ok && len(args) == 0:
			return errorText(lang, text) // a part's sentence, such as a job's failure
		case len(args) == 0 && t != "":
			return t // no values: a '%' in it is a percent sign
		}
		return loc.printer.Sprintf(text, args...)
	}
}

// alertText returns the function that states an alert in a language: its pattern from the catalog, with
// its values (a value that is itself in the catalog, such as a state, translated too). An alert without a
// pattern, or whose pattern the catalog lacks, stays as the part wrote it.
func alertText(lang string) func(appliance.Alert) string {
	loc := locales[lang]
	return func(a appliance.Alert) string {
		if _, ok := loc.texts[a.Text]; !ok || a.Text == "" || strings.Count(a.Text, "%s") != len(a.Args) {
			return a.Message
		}
		args := make([]any, len(a.Args))
		for i, v := range a.Args {
			args[i] = v
			if tv := loc.texts[v]; tv != "" {
				args[i] = tv
			}
		}
		return loc.printer.Sprintf(a.Text, args...)
	}
}

// formLang sets the language cookie and returns to the page the switch was on.
func (s *Server) formLang(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	l := r.PostFormValue("lang")
	if !slices.Contains(languages, l) {
		writeError(w, http.StatusBadRequest, "unknown language: use en or fr")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: LangCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, localPath(r.PostFormValue("back")), http.StatusSeeOther)
}

// pagePath is what a page of the unit's is called: the route table's paths hold nothing else.
var pagePath = regexp.MustCompile(`^/([a-z0-9_-]+(/[a-zA-Z0-9_.:-]+)*)?$`)

// localPath is back if it is a page of this unit's, else "/": never a redirect elsewhere. Browsers read
// "//host", "/\host" and "/%5Chost" alike as another host, so only plain page paths pass, decoded first.
func localPath(back string) string {
	u, err := url.Parse(back)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || !pagePath.MatchString(u.Path) {
		return "/"
	}
	return u.Path
}

// zoneGuess is the time zone the setup page proposes for a language (the office changes it there).
var zoneGuess = map[string]string{"fr": "Europe/Paris", "en": "UTC"}

// officeZones are proposed in the time-zone fields (any IANA name is taken).
var officeZones = []string{"Europe/Paris", "Europe/Brussels", "Europe/Luxembourg", "Europe/Monaco", "Europe/Zurich",
	"Europe/London", "Europe/Dublin", "Europe/Berlin", "Europe/Madrid", "Europe/Rome", "Europe/Lisbon", "Europe/Amsterdam",
	"America/Toronto", "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
	"America/Martinique", "America/Guadeloupe", "America/Cayenne", "Indian/Reunion", "Indian/Mayotte", "Pacific/Noumea",
	"Pacific/Tahiti", "Africa/Casablanca", "Africa/Dakar", "Africa/Abidjan", "UTC"}
