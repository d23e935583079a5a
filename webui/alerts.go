package webui

import (
	"net/http"
	"strings"

	"github.com/lawbox/appliance/appliance"
)

type alertsPage struct {
	Alerts []appliance.Alert
	Notify *appliance.NotifyStatus // admins only
}

// apiAlerts answers the current alerts (what the dashboard and the notifications show).
func (s *Server) apiAlerts(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	alerts := s.dashboard(r.Context()).Alerts
	if alerts == nil {
		alerts = []appliance.Alert{}
	}
	writeJSON(w, http.StatusOK, alerts)
}

func (s *Server) apiNotifications(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	st, err := s.notify.Notifications(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) apiSetNotifications(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	var ns appliance.NotifySettings
	err := decode(r, &ns)
	if err == nil {
		err = s.notify.SetNotifications(r.Context(), ns)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiTestNotification(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	if err := s.notify.TestNotification(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) renderAlerts(w http.ResponseWriter, r *http.Request, sess appliance.Session, notice string, actionErr error) {
	d := pageData{Session: sess, Notice: notice, Alerts: alertsPage{Alerts: s.dashboard(r.Context()).Alerts}}
	var err error
	if sess.Role == appliance.RoleAdmin {
		var st appliance.NotifyStatus
		if st, err = s.notify.Notifications(r.Context()); err == nil {
			d.Alerts.Notify = &st
		}
	}
	if actionErr != nil {
		err = actionErr
	}
	if err != nil {
		_, d.Error = statusOf(err)
		d.Notice = ""
	}
	s.render(w, r, http.StatusOK, "alerts", d)
}

func (s *Server) pageAlerts(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.renderAlerts(w, r, sess, "", nil)
}

func (s *Server) formNotifications(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var to []string
	for _, a := range strings.FieldsFunc(r.PostFormValue("to"), func(c rune) bool { return c == ',' || c == ';' || c == ' ' || c == '\n' || c == '\r' }) {
		to = append(to, a)
	}
	ns := appliance.NotifySettings{SMTP: strings.TrimSpace(r.PostFormValue("smtp")), From: r.PostFormValue("from"), To: to,
		User: strings.TrimSpace(r.PostFormValue("user")), Password: r.PostFormValue("password"),
		PlainSMTP: r.PostFormValue("plain_smtp") == "on", Syslog: strings.TrimSpace(r.PostFormValue("syslog"))}
	s.renderAlerts(w, r, sess, "Notification settings saved. Send a test message to check them.", s.notify.SetNotifications(r.Context(), ns))
}

func (s *Server) formTestNotification(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	err := s.notify.TestNotification(r.Context())
	s.renderAlerts(w, r, sess, "A test message was sent: check the mailbox and the syslog server.", err)
}
