package webui

import (
	"context"
	"fmt"
	"net/http"

	"github.com/lawbox/appliance/appliance"
)

func (s *Server) apiStorage(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	st, err := s.disks.Storage(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) apiScrub(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.log.Info("scrub requested", "user", sess.User, "remote", remote(r))
	if err := s.disks.Scrub(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) apiAdopt(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	serial := r.PathValue("serial")
	s.log.Warn("disk adoption requested", "serial", serial, "user", sess.User, "remote", remote(r))
	if err := s.disks.Adopt(r.Context(), serial); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// locateRequest is POST /api/v1/storage/disks/{serial}/locate's body.
type locateRequest struct {
	On *bool `json:"on"` // the light that shows where the disk sits: on (blinking where it can) or off
}

func (s *Server) apiLocate(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var lr locateRequest
	err := decode(r, &lr)
	if err == nil && lr.On == nil {
		err = fmt.Errorf("%w: on (true or false) is required", appliance.ErrBadInput)
	}
	if err == nil {
		s.log.Info("locate light", "serial", r.PathValue("serial"), "on", *lr.On, "user", sess.User, "remote", remote(r))
		err = s.disks.Locate(r.Context(), r.PathValue("serial"), *lr.On)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiStoragePolicy(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var p appliance.StoragePolicyChange
	if err := decode(r, &p); err != nil {
		s.fail(w, r, err)
		return
	}
	if p.AutoAdd == nil && p.ProactiveReplace == nil && p.KeepSpare == nil && p.Bays == nil {
		writeError(w, http.StatusBadRequest, "auto_add, proactive_replace or keep_spare (true or false), or bays, is required")
		return
	}
	s.log.Info("storage policy changed", "user", sess.User, "remote", remote(r))
	if err := s.disks.SetPolicy(r.Context(), p); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// growRequest is POST /api/v1/storage/grow's body.
type growRequest struct {
	// WithoutRecentBackup grows although the last backup of the data is more than a day old.
	WithoutRecentBackup bool `json:"without_recent_backup"`
}

func (s *Server) apiGrow(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var g growRequest
	if err := decode(r, &g); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Warn("storage growth requested", "without_recent_backup", g.WithoutRecentBackup, "user", sess.User, "remote", remote(r))
	if err := s.disks.Grow(r.Context(), g.WithoutRecentBackup); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) pageStorage(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.renderStorage(w, r, sess, "", nil)
}

// renderStorage shows the storage page with a notice or the error of an action.
func (s *Server) renderStorage(w http.ResponseWriter, r *http.Request, sess appliance.Session, notice string, actionErr error) {
	s.renderStorageKey(w, r, sess, notice, "", actionErr)
}

// renderStorageKey is renderStorage, showing a new recovery key once.
func (s *Server) renderStorageKey(w http.ResponseWriter, r *http.Request, sess appliance.Session, notice, recoveryKey string, actionErr error) {
	st, err := s.disks.Storage(r.Context())
	d := pageData{Session: sess, Storage: st, Notice: notice, RecoveryKey: recoveryKey, Health: map[string]string{}}
	if hs, err := s.health.Disks(r.Context()); err == nil {
		for _, h := range hs {
			d.Health[h.Serial] = h.SMART.Health
		}
	}
	d.Advice = appliance.ReplacementAdvice(st, d.Health)
	if err == nil {
		err = actionErr
	}
	if err != nil {
		_, d.Error = statusOf(err)
		d.Notice = ""
	}
	s.render(w, r, http.StatusOK, "storage", d)
}

func (s *Server) formScrub(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.log.Info("scrub requested", "user", sess.User, "remote", remote(r))
	s.renderStorage(w, r, sess, "The scrub has started. It reads every disk in the background.", s.disks.Scrub(r.Context()))
}

func (s *Server) formAdopt(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	serial := r.PathValue("serial")
	if r.PostFormValue("confirm") != "erase" {
		s.renderStorage(w, r, sess, "", errBadRequest)
		return
	}
	s.log.Warn("disk adoption requested", "serial", serial, "user", sess.User, "remote", remote(r))
	s.formJob(w, r, sess, "adopt", serial, func(ctx context.Context) (string, error) {
		return "The disk is erased and taken into the arrays: the storage page shows its copy.", s.disks.Adopt(ctx, serial)
	})
}

// formBay names the bay of a slot as the box's label says it ("Bay 2"); an empty name forgets it.
func (s *Server) formBay(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	slot, name := r.PostFormValue("slot"), r.PostFormValue("name") // the storage trims it
	s.log.Info("bay named", "slot", slot, "name", name, "user", sess.User, "remote", remote(r))
	s.renderStorage(w, r, sess, "Bay name saved: the pages name the disk in that slot by it.", s.disks.SetPolicy(r.Context(), appliance.StoragePolicyChange{Bays: map[string]string{slot: name}}))
}

// formLocate turns a disk's locate light on or off from the storage page.
func (s *Server) formLocate(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	serial, on := r.PathValue("serial"), r.PostFormValue("on") == "yes"
	s.log.Info("locate light", "serial", serial, "on", on, "user", sess.User, "remote", remote(r))
	notice := "The light of the disk's slot blinks: the disk is the one beside it."
	if !on {
		notice = "The light of the disk's slot is off."
	}
	s.renderStorage(w, r, sess, notice, s.disks.Locate(r.Context(), serial, on))
}

func (s *Server) formPolicy(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	add, pro, keep := r.PostFormValue("auto_add") == "on", r.PostFormValue("proactive_replace") == "on", r.PostFormValue("keep_spare") == "on"
	s.log.Info("storage policy changed", "auto_add", add, "proactive_replace", pro, "keep_spare", keep, "user", sess.User, "remote", remote(r))
	s.renderStorage(w, r, sess, "Settings saved.", s.disks.SetPolicy(r.Context(), appliance.StoragePolicyChange{AutoAdd: &add, ProactiveReplace: &pro, KeepSpare: &keep}))
}

// formGrow grows the arrays onto their spares; "anyway" also when the last backup is old.
func (s *Server) formGrow(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	anyway := r.PostFormValue("without_recent_backup") == "on"
	s.log.Warn("storage growth requested", "without_recent_backup", anyway, "user", sess.User, "remote", remote(r))
	s.renderStorage(w, r, sess, "The data array is growing onto the new disk: the progress appears above. The office keeps working meanwhile.",
		s.disks.Grow(r.Context(), anyway))
}

// unlockRequest is POST /api/v1/storage/unlock's body.
type unlockRequest struct {
	RecoveryKey string `json:"recovery_key"` // as on the recovery sheet; case, spaces and dashes do not matter
}

func (s *Server) apiUnlock(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var u unlockRequest
	if err := decode(r, &u); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Warn("data unlock with the recovery key requested", "user", sess.User, "remote", remote(r))
	if err := s.disks.Unlock(r.Context(), u.RecoveryKey); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiRecoveryKey(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.log.Warn("new recovery key requested", "user", sess.User, "remote", remote(r))
	key, err := s.disks.NewRecoveryKey(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]string{"recovery_key": key})
}

func (s *Server) formUnlock(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.log.Warn("data unlock with the recovery key requested", "user", sess.User, "remote", remote(r))
	s.renderStorage(w, r, sess, "The data is unlocked: the database and the file shares start in a moment.",
		s.disks.Unlock(r.Context(), r.PostFormValue("recovery_key")))
}

// formRecoveryKey shows a new recovery key once, in the page it answers (never in an address or a log).
func (s *Server) formRecoveryKey(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.log.Warn("new recovery key requested", "user", sess.User, "remote", remote(r))
	key, err := s.disks.NewRecoveryKey(r.Context())
	w.Header().Set("Cache-Control", "no-store")
	s.renderStorageKey(w, r, sess, "", key, err)
}
