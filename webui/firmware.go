package webui

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// firmwareUpload is the route an update bundle is sent to: the raw bundle as the body.
const firmwareUpload = "POST /api/v1/system/firmware"

// MaxBundleBytes bounds an update bundle (the other bodies are bounded by MaxBodyBytes).
const MaxBundleBytes = 256 << 20

// largeBodies are the routes whose bodies may be larger than MaxBodyBytes, and their bound.
var largeBodies = map[string]int64{firmwareUpload: MaxBundleBytes, "POST /system/firmware": MaxBundleBytes}

// bundleDeadlines gives a bundle's upload, its check and its writing to the disks time the other
// requests do not get.
func bundleDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(15 * time.Minute))
	_ = rc.SetWriteDeadline(time.Now().Add(20 * time.Minute))
}

func (s *Server) apiFirmware(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	st, err := s.fw.Firmware(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// apiUpdateFirmware takes a bundle as the body (application/octet-stream); ?allow_downgrade=true installs
// an older build (the audit log keeps the query).
func (s *Server) apiUpdateFirmware(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	bundleDeadlines(w)
	run, err := s.fw.Update(r.Context(), r.Body, r.ContentLength, r.URL.Query().Get("allow_downgrade") == "true", sess.User)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, run)
}

func (s *Server) apiRollbackFirmware(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	if err := s.fw.Rollback(r.Context(), sess.User); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// formUpdateFirmware takes the dashboard's upload form (multipart: allow_downgrade before the file
// "bundle"), streamed: the bundle is checked as it arrives and never held whole in memory.
func (s *Server) formUpdateFirmware(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	bundleDeadlines(w)
	rolling := false
	err := func() error {
		mr, err := r.MultipartReader()
		if err != nil {
			return fmt.Errorf("%w: %v", errBadRequest, err)
		}
		allow := false
		for {
			p, err := mr.NextPart()
			if err != nil {
				return fmt.Errorf("%w: no bundle in the form", errBadRequest)
			}
			switch p.FormName() {
			case "allow_downgrade":
				v, _ := io.ReadAll(io.LimitReader(p, 8))
				allow = string(v) == "yes"
			case "bundle":
				run, err := s.fw.Update(r.Context(), p, 0, allow, sess.User)
				rolling = run.State == appliance.FirmwareRolling
				return err
			}
		}
	}()
	if rolling {
		s.renderStatus(w, r, sess, "The rolling update of the pair has started: the standby unit updates first, then takes over, then the other unit updates. The pair page shows each step.", err)
		return
	}
	s.renderStatus(w, r, sess, "The new firmware is written. The unit restarts into it and keeps it once it is healthy; otherwise it goes back to this version by itself. Reload this page in a few minutes.", err)
}

func (s *Server) formRollbackFirmware(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var err error
	if r.PostFormValue("confirm") != "yes" {
		err = fmt.Errorf("%w: tick the box to confirm", appliance.ErrBadInput)
	} else {
		err = s.fw.Rollback(r.Context(), sess.User)
	}
	s.renderStatus(w, r, sess, "The unit restarts into the previous firmware. Reload this page in a few minutes.", err)
}

// firmwareOf is the dashboard's firmware section (what the unit could not read is logged).
func (s *Server) firmwareOf(r *http.Request) appliance.FirmwareStatus {
	st, err := s.fw.Firmware(r.Context())
	if err != nil {
		s.log.Warn("firmware status", "err", err)
	}
	return st
}
