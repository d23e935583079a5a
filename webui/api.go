package webui

import (
	"fmt"
	"net/http"
	"time"

	"github.com/lawbox/appliance/appliance"
)

type credentials struct {
	Code     string `json:"code"` // the setup code; at login, the second factor's code
	User     string `json:"user"`
	Password string `json:"password"`
	TimeZone string `json:"time_zone,omitempty"` // at setup: the office's ("Europe/Paris"); UTC without
}

func (s *Server) apiSetup(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	var c credentials
	if err := decode(r, &c); err != nil {
		s.fail(w, r, err)
		return
	}
	auditUser(r, "admin")
	if err := s.setup(c); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// setup sets the admin password and, when given, the office's time zone (checked first: a wrong one
// changes nothing).
func (s *Server) setup(c credentials) error {
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "Local" {
			return fmt.Errorf("%w: time zone %q is not known: give one such as Europe/Paris", appliance.ErrBadInput, c.TimeZone)
		}
	}
	if err := s.auth.Setup(c.Code, c.Password); err != nil {
		return err
	}
	if c.TimeZone != "" {
		return s.sys.SetTimeZone(c.TimeZone)
	}
	return nil
}

type timeZoneRequest struct {
	TimeZone string `json:"time_zone"`
}

func (s *Server) apiSetTimeZone(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	var tz timeZoneRequest
	if err := decode(r, &tz); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.sys.SetTimeZone(tz.TimeZone); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiLogin(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	var c credentials
	if err := decode(r, &c); err != nil {
		s.fail(w, r, err)
		return
	}
	auditUser(r, c.User)
	sess, err := s.auth.Login(c.User, c.Password, c.Code, remote(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	setCookie(w, sess)
	writeJSON(w, http.StatusOK, map[string]any{"token": sess.Token, "expires": sess.Expires, "role": sess.Role})
}

func (s *Server) apiLogout(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	if err := s.auth.Logout(token(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	clearCookie(w)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	st, err := s.status(r.Context(), sess)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) apiPower(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	reboot, ok := powerAction(r)
	if !ok {
		writeError(w, http.StatusNotFound, "unknown action: use poweroff or reboot")
		return
	}
	s.log.Warn("shutdown requested", "user", sess.User, "remote", remote(r), "reboot", reboot)
	if err := s.sys.Shutdown(r.Context(), reboot); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func powerAction(r *http.Request) (reboot, ok bool) {
	switch r.PathValue("action") {
	case "poweroff":
		return false, true
	case "reboot":
		return true, true
	}
	return false, false
}
