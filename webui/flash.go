package webui

import (
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Every form of a logged-in user answers with a redirect to the page it came from (POST/redirect/GET):
// the outcome travels as a flash kept for that session and shown once by the next page it loads, so
// reloading a page never sends a form again.

// flashTTL is how long an outcome waits for its page.
const flashTTL = 5 * time.Minute

type flash struct {
	notice, err string
	at          time.Time
}

type flashes struct {
	mu sync.Mutex
	m  map[string]flash // by session token
}

func (f *flashes) put(tok string, fl flash) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]flash{}
	}
	for k, old := range f.m {
		if time.Since(old.at) > flashTTL {
			delete(f.m, k)
		}
	}
	fl.at = time.Now()
	f.m[tok] = fl
}

func (f *flashes) take(tok string) (flash, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl, ok := f.m[tok]
	delete(f.m, tok)
	return fl, ok && time.Since(fl.at) <= flashTTL
}

// pageURL is where page lives, for the redirect after one of its forms (r is that form's request).
func pageURL(page string, r *http.Request) string {
	switch page {
	case "disk":
		return "/disks/" + url.PathEscape(r.PathValue("serial"))
	case "documents":
		return "/backups/" + url.PathEscape(r.PathValue("id")) + "/documents"
	}
	if u := navLink[page]; u != "" {
		return u
	}
	return "/"
}

// afterForm answers a form of a logged-in session with a redirect carrying the outcome in d; it says
// false for other requests, which render the page themselves.
func (s *Server) afterForm(w http.ResponseWriter, r *http.Request, page string, d pageData) bool {
	if r.Method != http.MethodPost || d.showsOnce() {
		return false
	}
	tok := token(r)
	if _, err := s.auth.Current(tok); err != nil {
		return false
	}
	s.flash.put(tok, flash{notice: d.Notice, err: d.Error})
	http.Redirect(w, r, pageURL(page, r), http.StatusSeeOther)
	return true
}

// withFlash puts the outcome of the session's last form on the page loaded after it.
func (s *Server) withFlash(r *http.Request, d *pageData) {
	if r.Method != http.MethodGet || d.Notice != "" || d.Error != "" {
		return
	}
	if fl, ok := s.flash.take(token(r)); ok {
		d.Notice, d.Error = fl.notice, fl.err
	}
}

// showsOnce says whether the page shows a secret only this answer carries (a second factor being set up,
// a pairing code, the backups' recovery identity, the data array's recovery key): those answers are the
// page itself, never stored.
func (d pageData) showsOnce() bool {
	return d.TOTP.Secret != "" || d.Pair.Code != "" || d.Backups.Identity != "" || d.RecoveryKey != ""
}
