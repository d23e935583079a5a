package webui

import (
	"bytes"
	"errors"
	"net/http"

	"github.com/lawbox/appliance/appliance"
)

type pageData struct {
	Error   string
	Notice  string
	Session appliance.Session
	Status  appliance.Status
	Storage appliance.StorageStatus
	Health  map[string]string      // disk serial -> SMART health, for the storage page
	Advice  []appliance.DiskAdvice // which disk to pull and which to keep, for the storage page
	// RecoveryKey is a recovery key just made, shown once on the storage page
	RecoveryKey string
	Disk        diskPage
	DB          databasePage
	Pair        pairPage
	Network     networkPage
	Backups     backupsPage
	Summary     summary
	Path        string         // the page's path
	Nav         string         // the navigation's link to the page's section ("/storage")
	Account     appliance.User // the logged-in user's account (account page)
	Cert        *appliance.CertInfo
	Firmware    appliance.FirmwareStatus // dashboard
	TOTP        totpSetup                // a second factor being set up
	Alerts      alertsPage
	Users       []appliance.User
	Audit       []appliance.AuditEntry
	// AuditLog: which log the page shows; AuditCheck: the chain's check
	AuditLog   string
	AuditCheck appliance.AuditCheck
	// Shares: the file shares page; ShareHost: the address the office's PCs reach them at
	Shares    appliance.SharesStatus
	ShareHost string
	Jobs      []Job
}

// navLink is each page's section in the navigation (marked aria-current there).
var navLink = map[string]string{"status": "/", "storage": "/storage", "disk": "/storage", "database": "/database", "pair": "/pair",
	"backups": "/backups", "documents": "/backups", "alerts": "/alerts", "shares": "/shares", "network": "/network", "users": "/users", "audit": "/audit", "jobs": "/jobs", "account": "/account"}

// render executes a page into a buffer first, so a template error never sends half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, page string, d pageData) {
	if s.afterForm(w, r, page, d) {
		return
	}
	s.withFlash(r, &d)
	d.Error = translator(lang(r))(d.Error) // the page's own words from the catalog, the parts' errors by errorText
	var buf bytes.Buffer
	d.Path = "/"
	if r.Method == http.MethodGet {
		d.Path = r.URL.Path // where the language switch returns
	}
	d.Nav = navLink[page]
	if err := s.pages[lang(r)][page].ExecuteTemplate(&buf, "layout", d); err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(labelCells(buf.Bytes()))
}

func (s *Server) pageIndex(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	if s.auth.NeedsSetup() {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	sess, err := s.auth.Authenticate(token(r))
	if err != nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	s.renderStatus(w, r, sess, "", nil)
}

// renderStatus shows the dashboard with the outcome of an action.
func (s *Server) renderStatus(w http.ResponseWriter, r *http.Request, sess appliance.Session, notice string, actionErr error) {
	s.render(w, r, http.StatusOK, "status", s.statusData(r, sess, notice, actionErr))
}

func (s *Server) statusData(r *http.Request, sess appliance.Session, notice string, actionErr error) pageData {
	st, err := s.status(r.Context(), sess)
	d := pageData{Session: sess, Status: st, Summary: s.dashboard(r.Context()), Notice: notice, Firmware: s.firmwareOf(r)}
	if actionErr != nil {
		err = actionErr
	}
	if err != nil {
		_, d.Error = statusOf(err)
		d.Notice = ""
	}
	return d
}

func (s *Server) pageSetup(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	if !s.auth.NeedsSetup() {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "setup", pageData{})
}

func (s *Server) formSetup(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	if err := r.ParseForm(); err != nil {
		s.render(w, r, http.StatusBadRequest, "setup", pageData{Error: "The form could not be read."})
		return
	}
	pw := r.PostForm.Get("password")
	if pw != r.PostForm.Get("confirm") {
		s.render(w, r, http.StatusBadRequest, "setup", pageData{Error: "The two passwords differ."})
		return
	}
	auditUser(r, "admin")
	if err := s.setup(credentials{Code: r.PostForm.Get("code"), Password: pw, TimeZone: r.PostForm.Get("time_zone")}); err != nil {
		if errors.Is(err, appliance.ErrAlreadySetUp) {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		code, msg := statusOf(err)
		s.render(w, r, code, "setup", pageData{Error: msg})
		return
	}
	s.render(w, r, http.StatusOK, "login", pageData{Notice: "The admin password is set. Log in with user admin."})
}

func (s *Server) pageLogin(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	if s.auth.NeedsSetup() {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "login", pageData{})
}

func (s *Server) formLogin(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	if err := r.ParseForm(); err != nil {
		s.render(w, r, http.StatusBadRequest, "login", pageData{Error: "The form could not be read."})
		return
	}
	auditUser(r, r.PostForm.Get("user"))
	sess, err := s.auth.Login(r.PostForm.Get("user"), r.PostForm.Get("password"), r.PostForm.Get("code"), remote(r))
	if err != nil {
		code, msg := statusOf(err)
		s.render(w, r, code, "login", pageData{Error: msg})
		return
	}
	setCookie(w, sess)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) formLogout(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	_ = s.auth.Logout(token(r))
	clearCookie(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) formPower(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	reboot, ok := powerAction(r)
	if !ok || r.PostFormValue("confirm") != "yes" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.log.Warn("shutdown requested", "user", sess.User, "remote", remote(r), "reboot", reboot)
	err := s.sys.Shutdown(r.Context(), reboot)
	d := pageData{Session: sess, Notice: "The unit is shutting down."}
	if reboot {
		d.Notice = "The unit is restarting. Reload this page in a minute."
	}
	if err != nil {
		_, d.Error = statusOf(err)
		d.Notice = ""
	}
	s.render(w, r, http.StatusOK, "status", d)
}
