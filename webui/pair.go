package webui

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/lawbox/appliance/appliance"
)

type pairPage struct {
	Status  appliance.PairStatus
	Code    string // a freshly issued pairing code
	Witness string // the witness key, for the admin
	// Rollout is the last rolling update of the pair run from this unit
	Rollout *appliance.FirmwareRollout
}

type joinRequest struct {
	Peer string `json:"peer"`
	Code string `json:"code"`
}

type roleRequest struct {
	Role  string `json:"role"`
	Force bool   `json:"force"`
}

func (s *Server) apiPair(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	writeJSON(w, http.StatusOK, s.pair.Pair())
}

func (s *Server) apiInvite(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var ps appliance.PairSettings
	if err := decode(r, &ps); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Warn("pairing code issued", "vip", ps.VIP, "mode", ps.Mode, "user", sess.User, "remote", remote(r))
	code, err := s.pair.Invite(r.Context(), ps)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"code": code})
}

func (s *Server) apiJoin(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var j joinRequest
	if err := decode(r, &j); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Warn("pairing requested", "peer", j.Peer, "user", sess.User, "remote", remote(r))
	if err := s.pair.Join(r.Context(), j.Peer, j.Code); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.pair.Pair())
}

func (s *Server) apiUnpair(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.log.Warn("unpair requested", "user", sess.User, "remote", remote(r))
	if err := s.pair.Unpair(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiPairRole(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var rr roleRequest
	if err := decode(r, &rr); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Warn("switchover requested", "role", rr.Role, "force", rr.Force, "user", sess.User, "remote", remote(r))
	if err := s.pair.SetRole(r.Context(), rr.Role, rr.Force); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, s.pair.Pair())
}

type maintenanceRequest struct {
	On bool `json:"on"`
}

func (s *Server) apiMaintenance(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var mr maintenanceRequest
	if err := decode(r, &mr); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Warn("maintenance mode requested", "on", mr.On, "user", sess.User, "remote", remote(r))
	if err := s.pair.SetMaintenance(r.Context(), mr.On); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, s.pair.Pair())
}

func (s *Server) formMaintenance(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	on := r.PostFormValue("on") == "yes"
	s.log.Warn("maintenance mode requested", "on", on, "user", sess.User, "remote", remote(r))
	msg := "Maintenance mode ended."
	if on {
		msg = "Maintenance mode: this unit answers on the service address, read-only, until the other unit is back."
	}
	s.renderPair(w, r, sess, "", s.pair.SetMaintenance(r.Context(), on), msg)
}

func (s *Server) apiWitnessKey(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	k, err := s.pair.WitnessKey()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"key": k})
}

func (s *Server) pagePair(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.renderPair(w, r, sess, "", nil)
}

func (s *Server) renderPair(w http.ResponseWriter, r *http.Request, sess appliance.Session, code string, actionErr error, notice ...string) {
	d := pageData{Session: sess, Pair: pairPage{Status: s.pair.Pair(), Code: code}}
	if d.Pair.Status.Paired && sess.Role == appliance.RoleAdmin {
		d.Pair.Witness, _ = s.pair.WitnessKey()
	}
	d.Pair.Rollout = s.firmwareOf(r).Rollout
	if actionErr != nil {
		_, d.Error = statusOf(actionErr)
	}
	if len(notice) > 0 && d.Error == "" {
		d.Notice = notice[0]
	}
	s.render(w, r, http.StatusOK, "pair", d)
}

func (s *Server) formInvite(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	ps := appliance.PairSettings{VIP: r.PostFormValue("vip"), Witness: r.PostFormValue("witness"), Mode: r.PostFormValue("mode")}
	s.log.Warn("pairing code issued", "vip", ps.VIP, "mode", ps.Mode, "user", sess.User, "remote", remote(r))
	code, err := s.pair.Invite(r.Context(), ps)
	s.renderPair(w, r, sess, code, err)
}

func (s *Server) formJoin(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	peer := r.PostFormValue("peer")
	s.log.Warn("pairing requested", "peer", peer, "user", sess.User, "remote", remote(r))
	err := s.pair.Join(r.Context(), peer, r.PostFormValue("code"))
	s.renderPair(w, r, sess, "", err, "Paired with the unit at "+peer+".")
}

func (s *Server) formUnpair(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	if r.PostFormValue("confirm") != "unpair" {
		s.renderPair(w, r, sess, "", errBadRequest)
		return
	}
	s.log.Warn("unpair requested", "user", sess.User, "remote", remote(r))
	err := s.pair.Unpair(r.Context())
	s.renderPair(w, r, sess, "", err, "This unit is no longer paired.")
}

func (s *Server) formPairRole(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	role, force := r.PostFormValue("role"), r.PostFormValue("force") == "yes"
	if role == "standby" && r.PostFormValue("confirm") != "yes" {
		s.renderPair(w, r, sess, "", fmt.Errorf("%w: tick the box to confirm the hand-over", appliance.ErrBadInput), "")
		return
	}
	s.log.Warn("switchover requested", "role", role, "force", force, "user", sess.User, "remote", remote(r))
	err := s.pair.SetRole(r.Context(), role, force)
	notice := "Asked for this unit to become active. The roles below follow within a second."
	if role == "standby" {
		notice = "Asked for this unit to hand the service over. The roles below follow within a second."
	}
	s.renderPair(w, r, sess, "", err, notice)
}

// ms formats a millisecond count for the page.
func ms(v int) string { return strconv.Itoa(v) + " ms" }
