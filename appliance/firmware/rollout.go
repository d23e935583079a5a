package firmware

// The rolling update of a pair. The unit a bundle is uploaded to runs it: the standby updates first and
// must come back blessed with its database mirroring again, then a switchover makes it active, then the
// other unit updates. Never both at once: a unit is told to update only when the other runs blessed
// firmware and mirrors; a step that fails stops the rollout with the rest untouched (a standby whose
// update rolled back leaves the active unit as it was). The record and the bundle are kept on the data
// disks, so the unit that restarts into its new firmware goes on where it was.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// Pair is what a rolling update needs of the pair: the units' names and roles, the switchover, and the
// link to the other unit (its firmware's LinkHandler).
type Pair interface {
	Pair() appliance.PairStatus
	SetRole(ctx context.Context, role string, force bool) error
	Call(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Response, error)
}

const (
	rolloutKey  = "rollout"
	linkPath    = "/link/v1/firmware"
	stepUpdate  = "update"
	stepSwitch  = "switchover"
	stepWaiting = "waiting"
	stepRunning = "running"
	stepDone    = "done"
	stepFailed  = "failed"
)

// How long a step may take before the rollout stops: an update of the other unit is tried up to Tries
// times by its boot loader, 10 minutes each at most.
var (
	updateLimit = 45 * time.Minute
	switchLimit = 10 * time.Minute
)

func (u *Updater) bundlePath() string { return filepath.Join(u.RolloutDir, "rollout.update") }

func (u *Updater) rollout() (appliance.FirmwareRollout, bool) {
	var ro appliance.FirmwareRollout
	err := u.Store.GetJSON(bucket, rolloutKey, &ro)
	return ro, err == nil && ro.Version != ""
}

// partnerFirmware is the other unit's firmware status, over the link.
func (u *Updater) partnerFirmware(ctx context.Context) (appliance.FirmwareStatus, error) {
	var st appliance.FirmwareStatus
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := u.Pair.Call(ctx, "GET", linkPath, nil, 0)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("the other unit answers %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// startRollout checks the bundle as it arrives, keeps it, and starts the rolling update.
func (u *Updater) startRollout(ctx context.Context, r io.Reader, size int64, allowDowngrade bool, user string) (run appliance.FirmwareRun, err error) {
	if u.Key == nil {
		return run, fmt.Errorf("%w: this firmware carries no update key", appliance.ErrConflict)
	}
	if ro, ok := u.rollout(); ok && ro.State == appliance.RolloutRunning {
		return run, fmt.Errorf("%w: a rolling update to %s is under way", appliance.ErrConflict, ro.Version)
	}
	p := u.Pair.Pair()
	if p.Role != "active" && p.Role != "standby" || p.Peer == nil || !p.Peer.Reachable {
		return run, fmt.Errorf("%w: a rolling update needs both units, one active and one standby (this one is %s, the other unit %s)",
			appliance.ErrConflict, p.Role, map[bool]string{true: "answers", false: "does not answer"}[p.Peer != nil && p.Peer.Reachable])
	}
	if err := u.Whole(ctx); err != nil {
		return run, fmt.Errorf("%w: the pair is not whole: %v; update once both units serve", appliance.ErrConflict, err)
	}
	other, err := u.partnerFirmware(ctx)
	if err != nil {
		return run, fmt.Errorf("%w: the other unit does not answer on the pair link: %v", appliance.ErrConflict, err)
	}
	if other.Rollout != nil && other.Rollout.State == appliance.RolloutRunning {
		return run, fmt.Errorf("%w: a rolling update to %s started on %s is under way", appliance.ErrConflict, other.Rollout.Version, p.Peer.Name)
	}
	if err := u.start(size); err != nil {
		return run, err
	}
	defer u.done()
	_, room, err := u.room(ctx)
	if err != nil {
		return run, err
	}
	m, err := u.keep(r, allowDowngrade, room)
	if err != nil {
		return run, err
	}
	if m.Version == other.Version {
		return run, fmt.Errorf("%w: %s already runs %s: update this unit alone after unpairing, or upload another version", appliance.ErrConflict, p.Peer.Name, m.Version)
	}
	now := time.Now().UTC()
	ro := appliance.FirmwareRollout{Version: m.Version, Build: m.Build, By: user, Started: now, State: appliance.RolloutRunning, AllowDowngrade: allowDowngrade}
	first, second := p.Name, p.Peer.Name
	if p.Role == "active" {
		first, second = second, first
	}
	ro.Steps = []appliance.RolloutStep{{Action: stepUpdate, Unit: first}, {Action: stepSwitch, Unit: first}, {Action: stepUpdate, Unit: second}}
	for i := range ro.Steps {
		ro.Steps[i].State = stepWaiting
	}
	if err := u.saveRollout(ro); err != nil {
		return run, err
	}
	u.Boot.Log.Warn("firmware: rolling update of the pair", "version", m.Version, "first", first, "then", second, "by", user)
	u.kickRollout()
	return appliance.FirmwareRun{Version: m.Version, Build: m.Build, From: u.Boot.Version, By: user, Started: now, State: appliance.FirmwareRolling}, nil
}

// keep writes the bundle into the rollout's file as it is checked: a bad one is refused and removed.
func (u *Updater) keep(r io.Reader, allowDowngrade bool, room int64) (m Manifest, err error) {
	if err := os.MkdirAll(u.RolloutDir, 0o700); err != nil {
		return m, fmt.Errorf("keep the bundle: %w", err)
	}
	f, err := os.OpenFile(u.bundlePath(), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return m, fmt.Errorf("keep the bundle: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("keep the bundle: %w", cerr)
		}
		if err != nil {
			os.Remove(u.bundlePath())
		}
	}()
	staged := filepath.Join(u.Boot.TmpDir, "rollout.efi")
	defer os.Remove(staged)
	if m, err = u.receive(io.TeeReader(r, f), staged, allowDowngrade, room); err != nil {
		return m, err
	}
	return m, f.Sync()
}

func (u *Updater) saveRollout(ro appliance.FirmwareRollout) error {
	if err := u.Store.PutJSON(bucket, rolloutKey, ro); err != nil {
		return fmt.Errorf("record the rolling update: %w", err)
	}
	return nil
}

// kicker is the channel that wakes RunRollout up.
func (u *Updater) kicker() chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.kick == nil {
		u.kick = make(chan struct{}, 1)
	}
	return u.kick
}

func (u *Updater) kickRollout() {
	select {
	case u.kicker() <- struct{}{}:
	default:
	}
}

// RunRollout carries a rolling update on, a step at a time, across this unit's restarts.
func (u *Updater) RunRollout(ctx context.Context) error {
	every := u.Every
	if every == 0 {
		every = 5 * time.Second
	}
	kick := u.kicker()
	for {
		if ro, ok := u.rollout(); ok && ro.State == appliance.RolloutRunning {
			u.advance(ctx, ro)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-time.After(every):
		}
	}
}

// advance runs the rollout's current step once and records what it found.
func (u *Updater) advance(ctx context.Context, ro appliance.FirmwareRollout) {
	i := 0
	for i < len(ro.Steps) && ro.Steps[i].State == stepDone {
		i++
	}
	now := time.Now().UTC()
	if i == len(ro.Steps) {
		ro.State, ro.Reason, ro.Finished = appliance.RolloutDone, "", now
		os.Remove(u.bundlePath())
		u.Boot.Log.Info("firmware: rolling update done: both units run it", "version", ro.Version)
		_ = u.saveRollout(ro)
		return
	}
	s := &ro.Steps[i]
	self := s.Unit == u.Pair.Pair().Name
	var wait string
	var err error
	switch {
	case s.Action == stepSwitch:
		wait, err = u.switchTo(ctx, s, self)
	case self:
		wait, err = u.updateSelf(ctx, ro, s)
	default:
		wait, err = u.updatePartner(ctx, ro, s)
	}
	switch {
	case err != nil:
		s.State, s.Finished = stepFailed, now
		ro.State, ro.Reason, ro.Finished = appliance.RolloutStopped, err.Error(), now
		os.Remove(u.bundlePath())
		u.Boot.Log.Error("firmware: rolling update stopped", "version", ro.Version, "step", s.Action+" "+s.Unit, "err", err)
	case wait == "":
		s.State, s.Finished, ro.Reason = stepDone, now, ""
		u.Boot.Log.Info("firmware: rolling update step done", "version", ro.Version, "step", s.Action+" "+s.Unit)
		defer u.kickRollout()
	default:
		ro.Reason = wait
	}
	_ = u.saveRollout(ro)
}

// limit stops a step that runs longer than d.
func limit(s *appliance.RolloutStep, d time.Duration, what string) error {
	if !s.Started.IsZero() && time.Since(s.Started) > d {
		return fmt.Errorf("%s in %v", what, d)
	}
	return nil
}

// failedRun says how an update of version ended when it did not take ("" when it did not end so).
func failedRun(run *appliance.FirmwareRun, version string) string {
	if run == nil || run.Version != version {
		return ""
	}
	switch run.State {
	case appliance.FirmwareRolledBack, appliance.FirmwareFailed, appliance.FirmwareInterrupted, appliance.FirmwareManualRollback:
		return run.State + ": " + run.Reason
	}
	return ""
}

// updatePartner sends the bundle to the other unit, then waits for it to run the new version, blessed,
// with the pair whole again.
func (u *Updater) updatePartner(ctx context.Context, ro appliance.FirmwareRollout, s *appliance.RolloutStep) (string, error) {
	if s.State == stepWaiting {
		if err := u.sendBundle(ctx, ro, s.Unit); err != nil {
			if errors.Is(err, errRefused) {
				return "", err
			}
			if s.Started.IsZero() {
				s.Started = time.Now().UTC()
			}
			u.Boot.Log.Warn("firmware: send the bundle to the partner; tried again", "unit", s.Unit, "err", err)
			return "sending the new firmware to " + s.Unit + " did not work yet; the unit tries again (its log says why)", limit(s, updateLimit, s.Unit+" could not be sent the new firmware")
		}
		s.State, s.Started = stepRunning, time.Now().UTC()
		u.release(ctx)
		return s.Unit + " installs the new firmware and restarts", nil
	}
	if err := limit(s, updateLimit, s.Unit+" did not come back blessed on the new firmware"); err != nil {
		return "", err
	}
	st, err := u.partnerFirmware(ctx)
	switch {
	case err != nil:
		return s.Unit + " restarts (it does not answer yet)", nil
	case failedRun(st.Update, ro.Version) != "":
		return "", fmt.Errorf("the update of %s did not take (%s); this unit was left as it was", s.Unit, failedRun(st.Update, ro.Version))
	case st.Version != ro.Version || st.Trial || st.Update == nil || st.Update.State != appliance.FirmwareBlessed:
		what := "restarts"
		if st.Update != nil && st.Update.Reason != "" {
			what = st.Update.State + ": " + st.Update.Reason
		}
		return s.Unit + " " + what, nil
	}
	if err := u.Whole(ctx); err != nil {
		return s.Unit + " runs the new firmware; waiting for the pair to be whole again: " + err.Error(), nil
	}
	return "", nil
}

var errRefused = errors.New("refused the bundle")

// release tells production the mirror restarts now (the restart goes on if it cannot be told: commits then
// wait until production gives up on the mirror, as when it is lost).
func (u *Updater) release(ctx context.Context) {
	if u.Release == nil {
		return
	}
	if err := u.Release(ctx); err != nil {
		u.Boot.Log.Warn("firmware: production not told that its mirror restarts", "err", err)
	}
}

// sendBundle sends the kept bundle to the other unit, which checks it, writes it and restarts into it.
func (u *Updater) sendBundle(ctx context.Context, ro appliance.FirmwareRollout, unit string) error {
	f, err := os.Open(u.bundlePath())
	if err != nil {
		return fmt.Errorf("%w: the kept bundle is gone (%v): upload it again", errRefused, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	q := url.Values{"by": {ro.By + " (rolling update from " + u.Pair.Pair().Name + ")"}}
	if ro.AllowDowngrade {
		q.Set("allow_downgrade", "true")
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	resp, err := u.Pair.Call(ctx, "POST", linkPath+"?"+q.Encode(), f, fi.Size())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusAccepted {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return fmt.Errorf("%s %w: %s", unit, errRefused, strings.TrimSpace(string(b)))
}

// updateSelf writes the kept bundle into this unit's free slot and restarts; after the restart it waits
// for the slot to be blessed and the pair whole.
func (u *Updater) updateSelf(ctx context.Context, ro appliance.FirmwareRollout, s *appliance.RolloutStep) (string, error) {
	if s.State == stepWaiting {
		s.State, s.Started = stepRunning, time.Now().UTC()
		if err := u.saveRollout(ro); err != nil { // before the restart: the step is under way
			return "", err
		}
		f, err := os.Open(u.bundlePath())
		if err != nil {
			return "", fmt.Errorf("the kept bundle is gone (%v): upload it again", err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return "", err
		}
		u.release(ctx)
		if _, err := u.apply(ctx, f, fi.Size(), ro.AllowDowngrade, ro.By+" (rolling update)"); err != nil {
			return "", fmt.Errorf("this unit could not take the new firmware: %w", err)
		}
		return "this unit installs the new firmware and restarts", nil
	}
	var run appliance.FirmwareRun
	_ = u.Store.GetJSON(bucket, runKey, &run)
	if why := failedRun(&run, ro.Version); why != "" {
		return "", fmt.Errorf("the update of this unit did not take (%s); %s", why, "the other unit runs "+ro.Version)
	}
	if err := limit(s, updateLimit, "this unit did not come back blessed on the new firmware"); err != nil {
		return "", err
	}
	u.mu.Lock()
	trial := u.trial
	u.mu.Unlock()
	if u.Boot.Version != ro.Version || trial || run.State != appliance.FirmwareBlessed {
		return "this unit: " + strings.TrimSpace(run.State+" "+run.Reason), nil
	}
	if err := u.Whole(ctx); err != nil {
		return "this unit runs the new firmware; waiting for the pair to be whole again: " + err.Error(), nil
	}
	return "", nil
}

// switchTo makes the unit that updated first active, once it runs blessed firmware and mirrors.
func (u *Updater) switchTo(ctx context.Context, s *appliance.RolloutStep, self bool) (string, error) {
	p := u.Pair.Pair()
	want, other := "standby", "active"
	if self {
		want, other = other, want
	}
	if p.Role == want && p.Peer != nil && p.Peer.Reachable && p.Peer.Role == other {
		if err := u.Whole(ctx); err != nil {
			return "switched over; waiting for the pair to be whole again: " + err.Error(), nil
		}
		return "", nil
	}
	if err := limit(s, switchLimit, "the switchover to "+s.Unit+" did not end"); err != nil {
		return "", err
	}
	if s.State == stepWaiting {
		if err := u.Pair.SetRole(ctx, want, false); err != nil {
			return "", fmt.Errorf("the switchover to %s was refused: %w", s.Unit, err)
		}
		s.State, s.Started = stepRunning, time.Now().UTC()
	}
	return "switching over to " + s.Unit, nil
}

// LinkHandler serves the other unit's requests of a rolling update: this unit's firmware status, and a
// bundle to install (the link proves they come from the partner).
func (u *Updater) LinkHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+linkPath, func(w http.ResponseWriter, r *http.Request) {
		st, err := u.Firmware(r.Context())
		if err != nil {
			u.Boot.Log.Warn("firmware status for the other unit", "err", err)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("POST "+linkPath, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		run, err := u.apply(r.Context(), r.Body, r.ContentLength, q.Get("allow_downgrade") == "true", q.Get("by"))
		switch {
		case errors.Is(err, appliance.ErrBadInput):
			http.Error(w, err.Error(), http.StatusBadRequest)
		case errors.Is(err, appliance.ErrConflict):
			http.Error(w, err.Error(), http.StatusConflict)
		case err != nil:
			u.Boot.Log.Error("firmware from the other unit", "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(run)
		}
	})
	return mux
}
