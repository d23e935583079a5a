package shares

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// LinkPath is the pair link's request that hands the shares' settings (shares, accounts and their NT
// hashes) to the other unit, so that the unit taking over serves the same shares to the same accounts.
const LinkPath = "/link/v1/shares"

// resendEvery: the settings go to the other unit again this often even when unchanged (it may have been
// away, or restored from a backup).
const resendEvery = 5 * time.Minute

// leads says whether the settings are changed here: on a unit alone or the active unit of its pair, not
// on the standby, which takes the active unit's.
func (s *Server) leads() bool { return s.Roles == nil || s.Roles.Get().Serves() }

// RunSync hands the settings to the other unit whenever they change here (and every resendEvery), while
// this unit leads. Send failing (the other unit away) is retried; it is not an error of the part.
func (s *Server) RunSync(ctx context.Context) error {
	if s.Send == nil {
		<-ctx.Done()
		return nil
	}
	var sent []byte
	var at time.Time
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	failing := false
	for {
		s.mu.Lock()
		err := s.load()
		body, _ := json.Marshal(s.cfg)
		s.mu.Unlock()
		if err == nil && s.leads() && (!bytes.Equal(body, sent) || time.Since(at) > resendEvery) {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := s.Send(sctx, body)
			cancel()
			switch {
			case err != nil && !failing:
				s.Log.Warn("the shares' settings cannot reach the other unit; retrying", "err", err)
				failing = true
			case err == nil:
				sent, at, failing = body, time.Now(), false
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-s.sendNow:
		}
	}
}

// LinkHandler takes the other unit's settings (LinkPath) while this unit does not lead: a unit that leads
// keeps its own (409), so that two units that both think they lead never overwrite each other.
func (s *Server) LinkHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT "+LinkPath, func(w http.ResponseWriter, r *http.Request) {
		if s.leads() {
			http.Error(w, "this unit changes its own shares (it is not the standby)", http.StatusConflict)
			return
		}
		var c config
		if err := json.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&c); err != nil {
			http.Error(w, "malformed settings", http.StatusBadRequest)
			return
		}
		if err := s.replace(c); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// replace stores settings that came from the other unit as they are.
func (s *Server) replace(c config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.load() // for the channels: what it read is replaced
	if err := s.Store.PutJSON(bucket, key, c); err != nil {
		return fmt.Errorf("save the file shares' settings: %w", err)
	}
	s.cfg, s.loaded = c, true
	s.notify()
	return nil
}

// RestoreConfig takes the shares and their accounts from a configuration restored from a backup (the
// state store's shares bucket as the backup holds it), replacing this unit's. Only where the shares are
// changed: on a standby it is a conflict, as any change.
func (s *Server) RestoreConfig(_ context.Context, buckets map[string]map[string]json.RawMessage) (string, error) {
	raw, ok := buckets[bucket][key]
	if !ok {
		return "no file shares (the backup has none)", nil
	}
	if !s.leads() {
		return "", errNotHere
	}
	var c config
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", fmt.Errorf("the backup's file shares: %w", err)
	}
	for _, sh := range c.Shares {
		if err := checkShareName(sh.Name); err != nil {
			return "", fmt.Errorf("the backup's file shares: %w", err)
		}
	}
	for _, a := range c.Accounts {
		if err := checkAccountName(a.Name); err != nil || len(a.NTHash) != 16 || a.UID < firstUID {
			return "", fmt.Errorf("the backup's file account %q is not valid: %w", a.Name, appliance.ErrBadInput)
		}
	}
	if err := s.replace(c); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d file shares and %d file accounts (with their passwords)", len(c.Shares), len(c.Accounts)), nil
}

// LinkClient is Send over call, the pair link's request function.
func LinkClient(call func(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Response, error)) func(context.Context, []byte) error {
	return func(ctx context.Context, body []byte) error {
		resp, err := call(ctx, "PUT", LinkPath, bytes.NewReader(body), int64(len(body)))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			return fmt.Errorf("the other unit answers %s: %s", resp.Status, bytes.TrimSpace(msg))
		}
		return nil
	}
}

// errNotHere is a change asked of the standby.
var errNotHere = fmt.Errorf("%w: this unit is the standby of its pair: change the shares on the active unit, which hands them to this one", appliance.ErrConflict)

var errSealed = fmt.Errorf("%w: the file accounts are kept encrypted on the data array, which is not unlocked yet: unlock it on the storage page first", appliance.ErrConflict)
