package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/lawbox/appliance/appliance"
)

// RunBackup takes a backup now, copies it offsite and prunes; on the production unit of a pair the mirror
// takes it, as it takes the scheduled ones (the same rule for the button and the schedule).
func (s *Service) RunBackup(ctx context.Context, kind string) (appliance.Backup, error) {
	if s.Partner != nil && s.ShouldRun != nil && !s.ShouldRun(ctx) {
		b, err := s.Partner(ctx, kind)
		if err != nil {
			return b, fmt.Errorf("the other unit of the pair takes the backups: %w", err)
		}
		return b, nil
	}
	return s.runHere(ctx, kind)
}

// RunPath is the pair link's request for a backup taken now by the unit that takes the pair's backups.
const RunPath = "/link/v1/backups/run"

type runRequest struct {
	Kind string `json:"kind"`
}

// LinkHandler answers the other unit's RunPath: a backup taken here when this unit takes the backups
// (never passed on again), 409 when it does not either.
func (s *Service) LinkHandler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+RunPath, func(w http.ResponseWriter, r *http.Request) {
		var req runRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
			http.Error(w, "malformed request", http.StatusBadRequest)
			return
		}
		if s.ShouldRun != nil && !s.ShouldRun(r.Context()) {
			http.Error(w, "this unit does not take the backups either: its database is not the running mirror", http.StatusConflict)
			return
		}
		b, err := s.runHere(r.Context(), req.Kind)
		switch {
		case errors.Is(err, appliance.ErrBadInput):
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		case errors.Is(err, appliance.ErrConflict):
			http.Error(w, err.Error(), http.StatusConflict)
			return
		case err != nil:
			s.Engine.Log.Error("backup asked for by the other unit", "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		b.TakenOn = name
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(b)
	})
	return mux
}

// LinkClient is Partner over call, the pair link's request function: it sends RunPath to the other unit
// and reads its answer, keeping its refusals' kinds (a bad request, a conflict) for the API's answer.
func LinkClient(call func(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Response, error)) func(context.Context, string) (appliance.Backup, error) {
	return func(ctx context.Context, kind string) (appliance.Backup, error) {
		body, _ := json.Marshal(runRequest{Kind: kind})
		resp, err := call(ctx, "POST", RunPath, strings.NewReader(string(body)), int64(len(body)))
		if err != nil {
			return appliance.Backup{}, fmt.Errorf("%w: it cannot be reached (%v)", appliance.ErrUnavailable, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
			why := strings.TrimSpace(string(msg))
			switch resp.StatusCode {
			case http.StatusBadRequest:
				return appliance.Backup{}, fmt.Errorf("%w: %s", appliance.ErrBadInput, why)
			case http.StatusConflict:
				return appliance.Backup{}, fmt.Errorf("%w: %s", appliance.ErrConflict, why)
			}
			return appliance.Backup{}, fmt.Errorf("it answers %s: %s", resp.Status, why)
		}
		var b appliance.Backup
		if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
			return appliance.Backup{}, fmt.Errorf("its answer: %w", err)
		}
		return b, nil
	}
}
