package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/hw/fs"
)

// GrowPath is the pair link's request that grows the partner's documents volume.
const GrowPath = "/link/v1/documents/grow"

// Grow gives the documents add bytes more, online, on the unit that serves them: in a pair the partner's
// volume grows first (DRBD's size is the smaller of the two units' volumes), then this unit's, then DRBD,
// then the filesystem. Each step leaves what is done as it is, so asking again after a failure (a power
// cut, the partner gone meanwhile) finishes the job.
func (r *Replica) Grow(ctx context.Context, add int64) error {
	if add <= 0 {
		return fmt.Errorf("%w: give the size to add, in bytes", appliance.ErrBadInput)
	}
	if r.Extend == nil {
		return fmt.Errorf("%w: the documents volume cannot grow on this unit", appliance.ErrConflict)
	}
	r.growMu.Lock()
	defer r.growMu.Unlock()
	if !r.leads() || !r.Ready() {
		return fmt.Errorf("%w: the documents grow on the unit that serves them", appliance.ErrConflict)
	}
	size, err := r.Extend(ctx, 0)
	if err != nil {
		return err
	}
	target := size + add
	paired := len(r.Peers()) > 0 && len(r.Secret()) >= 24
	if paired {
		st, err := r.DRBD.State()
		if err != nil || !connected(st) || st.Disk != "UpToDate" || st.PeerDisk != "UpToDate" {
			return fmt.Errorf("%w: the other unit's copy of the documents must be connected and complete: both units' volumes grow together", appliance.ErrConflict)
		}
		if err := r.growPartner(ctx, target); err != nil {
			return err
		}
	}
	if _, err := r.Extend(ctx, target); err != nil {
		return err
	}
	if err := r.DRBD.Resize(ctx, paired); err != nil {
		return err
	}
	if err := fs.Grow(ctx, r.DRBD.Device()); err != nil {
		return fmt.Errorf("grow the documents' filesystem: %w", err)
	}
	r.Log.Info("the documents grew", "volume_bytes", target)
	return nil
}

// growPartner asks the partner to make its documents volume size bytes.
func (r *Replica) growPartner(ctx context.Context, size int64) error {
	if r.Call == nil {
		return fmt.Errorf("%w: the other unit cannot be asked to grow its volume", appliance.ErrConflict)
	}
	code, msg, err := r.post(ctx, GrowPath, fmt.Sprintf(`{"size_bytes":%d}`, size))
	if err != nil {
		return fmt.Errorf("%w: the other unit did not answer: %v", appliance.ErrUnavailable, err)
	}
	if code != http.StatusNoContent {
		return fmt.Errorf("%w: the other unit could not grow its documents volume: %s", appliance.ErrConflict, msg)
	}
	return nil
}

// post sends body to the partner over the pair link (r.Call) and answers its status and first KiB.
func (r *Replica) post(ctx context.Context, path, body string) (int, string, error) {
	resp, err := r.Call(ctx, http.MethodPost, path, strings.NewReader(body), int64(len(body)))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode, strings.TrimSpace(string(msg)), nil
}

// LinkHandler answers the partner's request to grow this unit's documents volume (only a unit that does
// not serve the documents takes it: the one that does grows its own last).
func (r *Replica) LinkHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var p struct {
			Size int64 `json:"size_bytes"`
		}
		if err := json.NewDecoder(io.LimitReader(req.Body, 1024)).Decode(&p); err != nil || p.Size <= 0 {
			http.Error(w, "a size in bytes", http.StatusBadRequest)
			return
		}
		if r.Extend == nil || r.leads() {
			http.Error(w, "this unit serves the documents", http.StatusConflict)
			return
		}
		if _, err := r.Extend(req.Context(), p.Size); err != nil {
			r.Log.Error("grow the documents volume for the partner", "err", err)
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// sizeEvery is how often the unit that serves the documents, while its partner's copy is not connected,
// makes sure the partner's volume is as large as its own: DRBD refuses a partner whose disk is smaller
// ("peer's disk size is too small"), which is what a unit meets when it grew its documents alone and is
// paired then, or when its partner comes back with a smaller volume.
const sizeEvery = 5 * time.Minute

// sizeProblem is what the unit says when the partner's volume cannot grow to its size.
const sizeProblem = "The other unit's documents volume is smaller than this unit's and cannot grow to match it: the copies connect once it can (add room on the other unit)."

// matchPartnerSize asks the partner, over the pair link, to make its documents volume at least this
// unit's size (a volume never shrinks), every sizeEvery while not connected (disconnected: false).
func (r *Replica) matchPartnerSize(ctx context.Context, disconnected bool) {
	switch {
	case !disconnected:
		r.sizeAsked, r.sizeFailed = time.Time{}, false
	case r.Extend == nil || r.Call == nil:
		return
	case time.Since(r.sizeAsked) >= sizeEvery:
		r.sizeAsked = time.Now()
		size, err := r.Extend(ctx, 0)
		if err != nil {
			r.Log.Warn("the documents volume's size", "err", err)
			return
		}
		err = r.growPartner(ctx, size)
		r.sizeFailed = err != nil && !errors.Is(err, appliance.ErrUnavailable) // not there yet: asked again later
		if r.sizeFailed {
			r.Log.Error("the partner's documents volume cannot grow to this unit's size", "size_bytes", size, "err", err)
		}
	}
	failed := r.sizeFailed
	r.set(func(s *appliance.Replication) {
		switch {
		case failed:
			s.Problem = sizeProblem
		case s.Problem == sizeProblem:
			s.Problem = ""
		}
	})
}
