package webui

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

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
	to := strings.FieldsFunc(r.PostFormValue("to"), func(c rune) bool { return c == ',' || c == ';' || c == ' ' || c == '\n' || c == '\r' })
	ns := appliance.NotifySettings{SMTP: strings.TrimSpace(r.PostFormValue("smtp")), From: r.PostFormValue("from"), To: to,
		User: strings.TrimSpace(r.PostFormValue("user")), Password: r.PostFormValue("password"),
		PlainSMTP: r.PostFormValue("plain_smtp") == "on", Syslog: strings.TrimSpace(r.PostFormValue("syslog"))}
	s.renderAlerts(w, r, sess, "Notification settings saved. Send a test message to check them.", s.notify.SetNotifications(r.Context(), ns))
}

func (s *Server) formTestNotification(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	err := s.notify.TestNotification(r.Context())
	s.renderAlerts(w, r, sess, "A test message was sent: check the mailbox and the syslog server.", err)
}

// alertAck is the body of an acknowledgement: the alert's key and, to mute it for a while rather than
// until it clears, how many hours.
type alertAck struct {
	Key       string `json:"key"`
	MuteHours int    `json:"mute_hours"`
}

func (s *Server) acknowledge(r *http.Request, sess appliance.Session, a alertAck) error {
	if a.Key == "" {
		return fmt.Errorf("%w: name the alert (its key)", appliance.ErrBadInput)
	}
	if a.MuteHours < 0 || time.Duration(a.MuteHours)*time.Hour > appliance.MaxMute {
		return fmt.Errorf("%w: an alert can be muted for 0 to %d hours", appliance.ErrBadInput, appliance.MaxMute/time.Hour)
	}
	return s.notify.AcknowledgeAlert(r.Context(), a.Key, sess.User, time.Duration(a.MuteHours)*time.Hour)
}

func (s *Server) apiAckAlert(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var a alertAck
	err := decode(r, &a)
	if err == nil {
		err = s.acknowledge(r, sess, a)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiUnackAlert(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	var a alertAck
	err := decode(r, &a)
	if err == nil {
		err = s.notify.UnacknowledgeAlert(r.Context(), a.Key)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) formAckAlert(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	a := alertAck{Key: r.PostFormValue("key")}
	var err error
	if h := r.PostFormValue("mute_hours"); h != "" {
		if a.MuteHours, err = strconv.Atoi(h); err != nil {
			err = fmt.Errorf("%w: mute hours %q is not a number", appliance.ErrBadInput, h)
		}
	}
	if err == nil {
		err = s.acknowledge(r, sess, a)
	}
	s.renderAlerts(w, r, sess, "The alert is acknowledged: it is not sent again.", err)
}

func (s *Server) formUnackAlert(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	err := s.notify.UnacknowledgeAlert(r.Context(), r.PostFormValue("key"))
	s.renderAlerts(w, r, sess, "The acknowledgement is withdrawn.", err)
}
