package webui

import (
	"encoding/csv"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/lawbox/appliance/appliance"
	"rsc.io/qr"
)

// auditPage is how many audit entries the page shows; the export and the API give more.
const auditPage = 200

type newUser struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

type newPassword struct {
	Password string `json:"password"`
	Current  string `json:"current"` // required to change one's own password
}

// setPassword changes name's password; the user's own needs the current one (an admin changing another
// account's does not).
func (s *Server) setPassword(r *http.Request, sess appliance.Session, name string, p newPassword) error {
	if err := mayEditAccount(sess, name); err != nil {
		return err
	}
	if name == sess.User {
		if err := s.recheck(r, sess, p.Current); err != nil {
			return err
		}
	}
	return s.auth.SetPassword(name, p.Password, token(r))
}

// recheck checks the acting user's current password again before a change that takes or weakens an
// account: a session left open must not be enough.
func (s *Server) recheck(r *http.Request, sess appliance.Session, current string) error {
	if current == "" {
		return fmt.Errorf("%w: give the current password", appliance.ErrBadInput)
	}
	return s.auth.Reauthenticate(sess.User, current, remote(r))
}

// mayEditAccount: admins change anyone's password or second factor, others only their own.
func mayEditAccount(sess appliance.Session, name string) error {
	if sess.Role != appliance.RoleAdmin && sess.User != name {
		return appliance.ErrForbidden
	}
	return nil
}

func (s *Server) apiUsers(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	users, err := s.auth.Users()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, users)
}

func (s *Server) apiAddUser(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	var u newUser
	if err := decode(r, &u); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.auth.AddUser(u.Name, u.Password, u.Role); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, appliance.User{Name: u.Name, Role: u.Role})
}

func (s *Server) apiDeleteUser(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	if err := s.auth.DeleteUser(r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiSetPassword(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	name := r.PathValue("name")
	var p newPassword
	err := decode(r, &p)
	if err == nil {
		err = s.setPassword(r, sess, name, p)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiEndSessions(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	n, err := s.auth.EndSessions(sess.User, token(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"ended": n})
}

// apiVerifyAudit checks the audit log's hash chain.
func (s *Server) apiVerifyAudit(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	c, err := s.auth.VerifyAudit()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// apiAudit answers the last n entries (?n=, default 1000; ?log=noise: of the requests that did not
// authenticate), as JSON or, with ?format=csv, as a file to keep.
func (s *Server) apiAudit(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	n := 1000
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 100000 {
			s.fail(w, r, fmt.Errorf("%w: n must be a number from 1 to 100000", errBadRequest))
			return
		}
	}
	entries, err := s.auth.Audit(n, r.URL.Query().Get("log"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if r.URL.Query().Get("format") != "csv" {
		writeJSON(w, http.StatusOK, entries)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="audit.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"time", "user", "remote", "action", "path", "status"})
	for _, e := range entries {
		_ = cw.Write([]string{e.Time.UTC().Format("2006-01-02T15:04:05Z"), csvSafe(e.User), csvSafe(e.Remote), csvSafe(e.Action), csvSafe(e.Path), strconv.Itoa(e.Status)})
	}
	cw.Flush()
}

// csvSafe keeps a spreadsheet from reading a field as a formula (OWASP's list of formula starts).
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func (s *Server) renderUsers(w http.ResponseWriter, r *http.Request, sess appliance.Session, notice string, actionErr error) {
	users, err := s.auth.Users()
	d := pageData{Session: sess, Users: users, Notice: notice}
	if c, cerr := s.certs.Certificate(r.Context()); cerr == nil {
		d.Cert = &c
	}
	if actionErr != nil {
		err = actionErr
	}
	if err != nil {
		_, d.Error = statusOf(err)
		d.Notice = ""
	}
	s.render(w, r, http.StatusOK, "users", d)
}

func (s *Server) pageUsers(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.renderUsers(w, r, sess, "", nil)
}

func (s *Server) formAddUser(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	name, role := r.PostFormValue("name"), r.PostFormValue("role")
	var err error
	if pw := r.PostFormValue("password"); pw != r.PostFormValue("confirm") {
		err = fmt.Errorf("%w: the two passwords differ", appliance.ErrBadInput)
	} else {
		err = s.auth.AddUser(name, pw, role)
	}
	s.renderUsers(w, r, sess, "User "+name+" added ("+role+").", err)
}

func (s *Server) formDeleteUser(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	name := r.PathValue("name")
	var err error
	if r.PostFormValue("confirm") != name {
		err = fmt.Errorf("%w: type the user name to confirm", appliance.ErrBadInput)
	} else {
		err = s.auth.DeleteUser(name)
	}
	s.renderUsers(w, r, sess, "User "+name+" removed; their sessions have ended.", err)
}

// formSetPassword changes a password; a viewer (who cannot see the users page) returns to the dashboard.
func (s *Server) formSetPassword(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	name := r.PathValue("name")
	var err error
	if pw := r.PostFormValue("password"); pw != r.PostFormValue("confirm") {
		err = fmt.Errorf("%w: the two passwords differ", appliance.ErrBadInput)
	} else {
		err = s.setPassword(r, sess, name, newPassword{Password: pw, Current: r.PostFormValue("current")})
	}
	notice := "The password of " + name + " is changed; their other sessions have ended."
	if sess.Role == appliance.RoleAdmin && name != sess.User {
		s.renderUsers(w, r, sess, notice, err)
		return
	}
	s.renderAccount(w, r, sess, notice, err)
}

func (s *Server) formEndSessions(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	n, err := s.auth.EndSessions(sess.User, token(r))
	s.log.Info("sessions ended", "user", sess.User, "count", n)
	s.renderAccount(w, r, sess, "Logged out everywhere else: your other sessions have ended.", err)
}

func (s *Server) pageAudit(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	log := r.URL.Query().Get("log")
	entries, err := s.auth.Audit(auditPage, log)
	d := pageData{Session: sess, Audit: entries, AuditLog: log}
	if err == nil && log == appliance.AuditLog {
		d.AuditCheck, err = s.auth.VerifyAudit()
	}
	if err != nil {
		_, d.Error = statusOf(err)
	}
	s.render(w, r, http.StatusOK, "audit", d)
}

// totpSetup is a second factor being set up: shown once, until confirmed with a code.
type totpSetup struct {
	Secret string
	URI    string
	QR     template.HTML // the URI as a QR code (inline SVG), for the phone's camera
}

// qrSVG draws text as a QR code: one SVG path of the dark modules, inside the standard 4-module margin.
func qrSVG(text string) (template.HTML, error) {
	c, err := qr.Encode(text, qr.M)
	if err != nil {
		return "", fmt.Errorf("QR code: %w", err)
	}
	var b strings.Builder
	n := c.Size + 8
	fmt.Fprintf(&b, `<svg class="qr" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="QR code"><rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n, 4*n, 4*n, n, n)
	for y := range c.Size {
		for x := range c.Size {
			if c.Black(x, y) {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x+4, y+4)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return template.HTML(b.String()), nil // only numbers and fixed text
}

type totpCode struct {
	Code string `json:"code"`
}

// account is name's account as the user list has it (zero when it cannot be read).
func (s *Server) account(name string) appliance.User {
	users, _ := s.auth.Users()
	for _, u := range users {
		if u.Name == name {
			return u
		}
	}
	return appliance.User{}
}

func (s *Server) apiBeginTOTP(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	name := r.PathValue("name")
	if err := mayEditAccount(sess, name); err != nil {
		s.fail(w, r, err)
		return
	}
	secret, uri, err := s.auth.BeginTOTP(name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"secret": secret, "uri": uri})
}

func (s *Server) apiConfirmTOTP(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	name := r.PathValue("name")
	var c totpCode
	err := mayEditAccount(sess, name)
	if err == nil {
		err = decode(r, &c)
	}
	if err == nil {
		err = s.auth.ConfirmTOTP(name, c.Code)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// totpOff turns a second factor off: the acting user's current password is required, whoever's it is.
type totpOff struct {
	Current string `json:"current"`
}

func (s *Server) apiDisableTOTP(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	name := r.PathValue("name")
	var o totpOff
	err := mayEditAccount(sess, name)
	if err == nil {
		err = decode(r, &o)
	}
	if err == nil {
		err = s.recheck(r, sess, o.Current)
	}
	if err == nil {
		err = s.auth.DisableTOTP(name)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// formBeginTOTP shows the logged-in user a new secret to enter in an authenticator app.
func (s *Server) formBeginTOTP(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	secret, uri, err := s.auth.BeginTOTP(sess.User)
	var code template.HTML
	if err == nil {
		code, err = qrSVG(uri)
	}
	d := s.accountData(sess, "", err)
	d.TOTP = totpSetup{Secret: secret, URI: uri, QR: code}
	s.render(w, r, http.StatusOK, "account", d)
}

func (s *Server) formConfirmTOTP(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.renderAccount(w, r, sess, "Two-factor login is on: from now on, log in with a code from the app too.",
		s.auth.ConfirmTOTP(sess.User, r.PostFormValue("code")))
}

func (s *Server) formDisableTOTP(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	err := s.recheck(r, sess, r.PostFormValue("current"))
	if err == nil {
		err = s.auth.DisableTOTP(sess.User)
	}
	s.renderAccount(w, r, sess, "Two-factor login is off.", err)
}

type certUpload struct {
	Cert string `json:"cert"` // PEM: the server's certificate, then its intermediates
	Key  string `json:"key"`  // PEM private key
}

func (s *Server) apiCertificate(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	c, err := s.certs.Certificate(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) apiSetCertificate(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	var c certUpload
	err := decode(r, &c)
	if err == nil {
		err = s.certs.SetCertificate(r.Context(), c.Cert, c.Key)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.apiCertificate(w, r, appliance.Session{})
}

func (s *Server) apiResetCertificate(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	if err := s.certs.ResetCertificate(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	s.apiCertificate(w, r, appliance.Session{})
}

func (s *Server) formSetCertificate(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.renderUsers(w, r, sess, "The new certificate is in use from the next connection: reload the page.",
		s.certs.SetCertificate(r.Context(), r.PostFormValue("cert"), r.PostFormValue("key")))
}

func (s *Server) formResetCertificate(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	if r.PostFormValue("confirm") != "yes" {
		s.renderUsers(w, r, sess, "", fmt.Errorf("%w: tick the box to confirm", appliance.ErrBadInput))
		return
	}
	s.renderUsers(w, r, sess, "A new self-signed certificate is in use: browsers will warn once more; compare its fingerprint.",
		s.certs.ResetCertificate(r.Context()))
}

func (s *Server) formTimeZone(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	err := s.sys.SetTimeZone(r.PostFormValue("time_zone"))
	s.renderUsers(w, r, sess, "The time zone is saved: pages show times in it.", err)
}

func (s *Server) pageAccount(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.renderAccount(w, r, sess, "", nil)
}

// renderAccount shows the logged-in user's account page (password, sessions, second factor) with the
// outcome of an action.
func (s *Server) renderAccount(w http.ResponseWriter, r *http.Request, sess appliance.Session, notice string, actionErr error) {
	s.render(w, r, http.StatusOK, "account", s.accountData(sess, notice, actionErr))
}

func (s *Server) accountData(sess appliance.Session, notice string, actionErr error) pageData {
	d := pageData{Session: sess, Account: s.account(sess.User), Notice: notice}
	if actionErr != nil {
		_, d.Error = statusOf(actionErr)
		d.Notice = ""
	}
	return d
}
