package webui

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/lawbox/appliance/appliance"
)

type databasePage struct {
	Status  appliance.DatabaseStatus
	Created *appliance.NewDatabase
	LagSVG  template.HTML
	// LagDaySVG: the highest lag of every 5 minutes of the day
	LagDaySVG template.HTML
}

// lagSVG draws the mirror's lag in seconds (the last hour's samples, or the day's 5-minute highs).
func lagSVG(T translate, h []appliance.LagPoint, zone *time.Location) template.HTML {
	ts, vs := make([]time.Time, len(h)), make([]float64, len(h))
	for i, p := range h {
		ts[i], vs[i] = p.Time.In(zone), p.Seconds
	}
	return lineSVG(T, T("mirror lag"), "%.1f s", 0.5, ts, vs)
}

type newDatabase struct {
	Name  string `json:"name"`
	Owner string `json:"owner"`
}

func (s *Server) apiDatabase(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	st, err := s.db.Database(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) apiCreateDatabase(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var n newDatabase
	if err := decode(r, &n); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("database creation requested", "name", n.Name, "owner", n.Owner, "user", sess.User, "remote", remote(r))
	created, err := s.db.CreateDatabase(r.Context(), n.Name, n.Owner)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, created)
}

// plainAccess opens a database to connections without TLS, or closes it again.
type plainAccess struct {
	Allow bool `json:"allow"`
}

func (s *Server) apiSetPlain(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var p plainAccess
	err := decode(r, &p)
	if err == nil {
		s.log.Warn("database connections without TLS requested", "database", r.PathValue("database"), "allow", p.Allow, "user", sess.User, "remote", remote(r))
		err = s.db.SetPlain(r.Context(), r.PathValue("database"), p.Allow)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) formSetPlain(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	allow := r.PostFormValue("allow") == "yes"
	s.log.Warn("database connections without TLS requested", "database", r.PathValue("database"), "allow", allow, "user", sess.User, "remote", remote(r))
	err := s.db.SetPlain(r.Context(), r.PathValue("database"), allow)
	if allow {
		s.renderDatabase(w, r, sess, nil, err, "The database now also takes connections without TLS: passwords and data cross the LAN readable. Go back to TLS only once the application can use it.")
		return
	}
	s.renderDatabase(w, r, sess, nil, err, "The database takes TLS connections only again.")
}

func (s *Server) pageDatabase(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.renderDatabase(w, r, sess, nil, nil)
}

func (s *Server) renderDatabase(w http.ResponseWriter, r *http.Request, sess appliance.Session, created *appliance.NewDatabase, actionErr error, notice ...string) {
	st, err := s.db.Database(r.Context())
	d := pageData{Session: sess, DB: databasePage{Status: st, Created: created, LagSVG: lagSVG(translator(lang(r)), st.LagHistory, s.sys.TimeZone()),
		LagDaySVG: lagSVG(translator(lang(r)), st.LagDay, s.sys.TimeZone())}}
	if err == nil {
		err = actionErr
	}
	if err != nil {
		_, d.Error = statusOf(err)
	}
	if created != nil {
		d.Notice = "Database " + created.Name + " created. Copy the connection string now: its password is not shown again."
	}
	if len(notice) > 0 && d.Error == "" {
		d.Notice = notice[0]
	}
	s.render(w, r, http.StatusOK, "database", d)
}

func (s *Server) formCreateDatabase(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	name, owner := r.PostFormValue("name"), r.PostFormValue("owner")
	s.log.Info("database creation requested", "name", name, "owner", owner, "user", sess.User, "remote", remote(r))
	created, err := s.db.CreateDatabase(r.Context(), name, owner)
	if err != nil {
		s.renderDatabase(w, r, sess, nil, err)
		return
	}
	s.renderDatabase(w, r, sess, &created, nil)
}

func (s *Server) apiSetUpstream(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var u appliance.Upstream
	if err := decode(r, &u); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Warn("database mirror of an upstream requested", "host", u.Host, "port", u.Port, "user", sess.User, "remote", remote(r))
	if err := s.db.SetUpstream(r.Context(), u); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) apiPromote(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	longRequest(w)
	s.log.Warn("database promotion requested", "user", sess.User, "remote", remote(r))
	p, err := s.db.Promote(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) formPromote(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	if r.PostFormValue("confirm") != "promote" {
		s.renderDatabase(w, r, sess, nil, errBadRequest)
		return
	}
	s.log.Warn("database promotion requested", "user", sess.User, "remote", remote(r))
	s.formJob(w, r, sess, "promote", "", func(ctx context.Context) (string, error) {
		p, err := s.db.Promote(ctx)
		s.log.Info("database promoted", "seconds", p.Seconds, "err", err)
		return "This unit is now the production database. Point the applications at it.", err
	})
}

func (s *Server) formSetUpstream(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	port, _ := strconv.Atoi(r.PostFormValue("port"))
	u := appliance.Upstream{Host: r.PostFormValue("host"), Port: port, User: r.PostFormValue("user"),
		Password: r.PostFormValue("password"), Confirm: r.PostFormValue("confirm"), Fingerprint: r.PostFormValue("fingerprint")}
	s.log.Warn("database mirror of an upstream requested", "host", u.Host, "port", u.Port, "user", sess.User, "remote", remote(r))
	if err := s.db.SetUpstream(r.Context(), u); err != nil {
		s.renderDatabase(w, r, sess, nil, err)
		return
	}
	s.renderDatabase(w, r, sess, nil, nil, "This unit now copies "+u.Host+" and then follows it. The copy can take a while; this page shows its progress.")
}

func (s *Server) apiSetPolicy(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var p appliance.DatabasePolicy
	if err := decode(r, &p); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Warn("database replication policy requested", "sync", p.Sync, "degrade_after_s", p.DegradeAfterS, "user", sess.User, "remote", remote(r))
	if err := s.db.SetPolicy(r.Context(), p); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) formSetPolicy(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	secs, err := strconv.Atoi(r.PostFormValue("degrade_after_s"))
	if err != nil {
		s.renderDatabase(w, r, sess, nil, errBadRequest)
		return
	}
	p := appliance.DatabasePolicy{Sync: r.PostFormValue("sync") == "sync", DegradeAfterS: secs}
	s.log.Warn("database replication policy requested", "sync", p.Sync, "degrade_after_s", p.DegradeAfterS, "user", sess.User, "remote", remote(r))
	if err := s.db.SetPolicy(r.Context(), p); err != nil {
		s.renderDatabase(w, r, sess, nil, err)
		return
	}
	s.renderDatabase(w, r, sess, nil, nil, "Replication policy saved.")
}

func (s *Server) apiDeleteSetAside(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	if err := s.db.DeleteSetAside(r.Context(), r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiStartAfresh(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.log.Warn("start afresh requested", "user", sess.User, "remote", remote(r))
	if err := s.db.StartAfresh(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// formStartAfresh sets a stranded cluster aside for an empty database, once the admin confirmed.
func (s *Server) formStartAfresh(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	if r.PostFormValue("confirm") != "afresh" {
		s.renderDatabase(w, r, sess, nil, fmt.Errorf("%w: tick the box to confirm", appliance.ErrBadInput))
		return
	}
	s.log.Warn("start afresh requested", "user", sess.User, "remote", remote(r))
	s.renderDatabase(w, r, sess, nil, s.db.StartAfresh(r.Context()), "The incomplete copy is set aside; an empty database starts. Restore a backup into it from the backups page.")
}

// formDeleteSetAside deletes a cluster moved aside, once the admin ticked that it is no longer needed.
func (s *Server) formDeleteSetAside(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	if r.PostFormValue("confirm") != "delete" {
		s.renderDatabase(w, r, sess, nil, fmt.Errorf("%w: tick the box to confirm the deletion", appliance.ErrBadInput))
		return
	}
	s.renderDatabase(w, r, sess, nil, s.db.DeleteSetAside(r.Context(), r.PostFormValue("name")), "The set-aside copy is deleted.")
}
