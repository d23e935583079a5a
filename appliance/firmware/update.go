package firmware

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// Store keeps the last update's record across the restart into the new slot.
type Store interface {
	GetJSON(bucket, key string, v any) error
	PutJSON(bucket, key string, v any) error
}

// HealthCheck is one condition of a healthy unit: a new slot is blessed only when every check passes.
type HealthCheck struct {
	Name  string // "the database", said in "not healthy yet: the database: ..."
	Check func(ctx context.Context) error
}

// Updater writes signed update bundles into a new slot beside the running one, restarts into it, and on
// that boot blesses the slot once the unit is healthy. A slot never blessed is left by the boot loader
// after its tries (PID 1 restarts a unit that is not healthy in time); the unit then says it came back.
// Long-running: Run(ctx) watches the trial.
type Updater struct {
	Boot      *Installer // the boot partitions, the FAT tool and the running version
	Store     Store
	Key       *PublicKey // nil: this firmware carries no key and refuses every bundle
	Build     int
	BootCount func() (string, error)          // the boot loader's LoaderBootCountPath: "" when this boot is no trial
	Health    []HealthCheck                   // what "healthy" means
	Restart   func(ctx context.Context) error // asks PID 1 to reboot
	Blessed   func(ctx context.Context) error // tells PID 1 the trial is over
	// Kept is told once the running firmware is kept (no trial, or blessed): a firmware the unit could still
	// go back to by itself no longer needs to read what it writes from then on (state.Store.Seal). GoingBack
	// is told before the unit restarts into an older firmware (a rollback, a downgrade), which may not read
	// it. nil: nothing to tell.
	Kept      func() error
	GoingBack func() error
	Every     time.Duration // between health checks on trial; 0: 5 s
	// A unit of a pair updates with its partner, one after the other (rollout.go): Pair is the pair (nil:
	// always alone), Whole says whether both units serve (the partner heard, the database mirrored), and
	// RolloutDir keeps the bundle on the data disks until both units run it.
	Pair       Pair
	Whole      func(ctx context.Context) error
	RolloutDir string
	// Release tells production that its mirror (this unit or the other) is about to restart for its update:
	// commits stop waiting for it rather than stall until production gives up on it. nil: nothing to tell.
	Release func(ctx context.Context) error

	mu       sync.Mutex
	busy     bool // an update or a rollback runs: the unit restarts at its end
	trial    bool
	received *atomic.Int64
	size     int64
	listing  []appliance.FirmwareSlot
	listed   time.Time
	kick     chan struct{} // wakes the rollout up (rollout.go)
}

const (
	bucket = "firmware"
	runKey = "update"
	linux  = "/EFI/Linux/"
)

// Firmware is the running version, the slots on the members' boot partitions and the last update.
func (u *Updater) Firmware(ctx context.Context) (appliance.FirmwareStatus, error) {
	st := appliance.FirmwareStatus{Version: u.Boot.Version, Build: u.Build}
	u.mu.Lock()
	st.Trial = u.trial
	if u.received != nil {
		st.Progress = &appliance.Progress{Done: u.received.Load(), Total: u.size}
	}
	u.mu.Unlock()
	var run appliance.FirmwareRun
	if err := u.Store.GetJSON(bucket, runKey, &run); err == nil {
		st.Update = &run
	}
	if ro, ok := u.rollout(); ok {
		st.Rollout = &ro
	}
	slots, err := u.slots(ctx)
	st.Slots = slots
	return st, err
}

// slots lists the slots on the members' boot partitions, read again at most every 30 s (the dashboard
// asks every 2 s) or after the unit changed them.
func (u *Updater) slots(ctx context.Context) ([]appliance.FirmwareSlot, error) {
	u.mu.Lock()
	if time.Since(u.listed) < 30*time.Second {
		defer u.mu.Unlock()
		return u.listing, nil
	}
	u.mu.Unlock()
	parts, err := u.members(ctx)
	if err != nil {
		return nil, err
	}
	var slots []appliance.FirmwareSlot
	for _, p := range parts {
		names, err := u.Boot.FAT.List(ctx, p, strings.TrimSuffix(linux, "/"))
		if err != nil {
			continue // not installed there yet
		}
		for _, e := range entries(names) {
			slots = addSlot(slots, e, p, u.Boot.Version)
		}
	}
	slices.SortStableFunc(slots, func(a, b appliance.FirmwareSlot) int { // the running slot first
		return cmp.Compare(boolInt(b.State == "running"), boolInt(a.State == "running"))
	})
	u.mu.Lock()
	u.listing, u.listed = slots, time.Now()
	u.mu.Unlock()
	return slots, nil
}

// changed makes the next status read the partitions again.
func (u *Updater) changed() {
	u.mu.Lock()
	u.listed = time.Time{}
	u.mu.Unlock()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func addSlot(slots []appliance.FirmwareSlot, e Entry, part, running string) []appliance.FirmwareSlot {
	for i := range slots {
		if slots[i].Version == e.Version {
			slots[i].Partitions = append(slots[i].Partitions, part)
			return slots
		}
	}
	s := appliance.FirmwareSlot{Version: e.Version, Partitions: []string{part}}
	switch {
	case e.Version == running:
		s.State = "running"
	case e.Failed():
		s.State = "failed"
	case e.Blessed():
		s.State = "previous"
	default:
		s.State, s.TriesLeft = "trying", e.Left
	}
	return append(slots, s)
}

// members are the member disks' boot partitions.
func (u *Updater) members(ctx context.Context) ([]string, error) {
	st, err := u.Boot.Storage.Storage(ctx)
	if err != nil {
		return nil, err
	}
	var parts []string
	for _, d := range st.Disks {
		if d.Role == "member" && d.BootPartition != "" {
			parts = append(parts, d.BootPartition)
		}
	}
	return parts, nil
}

// start marks an update or rollback under way, or says why one cannot start.
func (u *Updater) start(size int64) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.busy {
		return fmt.Errorf("%w: an update or rollback is already under way; the unit restarts when it ends", appliance.ErrConflict)
	}
	u.busy = true
	if size >= 0 {
		u.received, u.size = new(atomic.Int64), size
	}
	return nil
}

func (u *Updater) done() {
	u.mu.Lock()
	u.busy, u.received = false, nil
	u.mu.Unlock()
}

// runningSlots lists every member's boot partition and checks the running firmware stands blessed on
// each: an update needs it as the slot to come back to.
func (u *Updater) runningSlots(ctx context.Context) (map[string][]string, error) {
	parts, err := u.members(ctx)
	if err != nil {
		return nil, err
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: no member disk has a boot partition yet", appliance.ErrConflict)
	}
	names := map[string][]string{}
	for _, p := range parts {
		n, err := u.Boot.FAT.List(ctx, p, strings.TrimSuffix(linux, "/"))
		e, ok := find(n, u.Boot.Version)
		switch {
		case err != nil || !ok:
			return nil, fmt.Errorf("%w: the running firmware is not on %s yet (the unit was not started from its disks, or installs it now): try again in a minute", appliance.ErrConflict, p)
		case !e.Blessed():
			return nil, fmt.Errorf("%w: the running firmware %s is still on trial: update once it is kept", appliance.ErrConflict, u.Boot.Version)
		}
		names[p] = n
	}
	return names, nil
}

// Update checks a bundle as it is received, writes it into the free slot of every member's boot
// partition and restarts into it. Nothing is written before the whole bundle is proven good. On a unit of
// a pair, it starts a rolling update of both units instead (rollout.go).
func (u *Updater) Update(ctx context.Context, r io.Reader, size int64, allowDowngrade bool, user string) (appliance.FirmwareRun, error) {
	if u.Pair != nil {
		if u.Pair.Pair().Paired {
			return u.startRollout(ctx, r, size, allowDowngrade, user)
		}
	}
	return u.apply(ctx, r, size, allowDowngrade, user)
}

// apply is Update on this unit alone.
func (u *Updater) apply(ctx context.Context, r io.Reader, size int64, allowDowngrade bool, user string) (run appliance.FirmwareRun, err error) {
	if u.Key == nil {
		return run, fmt.Errorf("%w: this firmware carries no update key", appliance.ErrConflict)
	}
	if err := u.start(size); err != nil {
		return run, err
	}
	defer func() {
		if err != nil {
			u.done()
		}
	}()
	names, room, err := u.room(ctx)
	if err != nil {
		return run, err
	}
	staged := filepath.Join(u.Boot.TmpDir, "update.efi")
	defer os.Remove(staged)
	m, err := u.receive(r, staged, allowDowngrade, room)
	if err != nil {
		return run, err
	}
	run = appliance.FirmwareRun{Version: m.Version, Build: m.Build, From: u.Boot.Version, By: user, Started: time.Now().UTC(), State: appliance.FirmwareWriting}
	if m.Build < u.Build {
		run.Reason = fmt.Sprintf("downgrade from build %d allowed by %s", u.Build, user)
	}
	if err := u.save(run); err != nil {
		return run, err
	}
	u.Boot.Log.Warn("firmware update: writing the new slot", "version", m.Version, "build", m.Build, "from", u.Boot.Version, "by", user)
	if err := u.write(ctx, names, staged, m.Version); err != nil {
		u.Boot.Log.Error("firmware update: the new slot could not be written", "version", m.Version, "err", err)
		run.State, run.Reason, run.Finished = appliance.FirmwareFailed, "the new firmware could not be written to the disks (a failing disk?); nothing changed, the log says more", time.Now().UTC()
		_ = u.save(run)
		return run, fmt.Errorf("write the new slot: %w", err)
	}
	run.State = appliance.FirmwareRestarting
	if err := u.save(run); err != nil {
		return run, err
	}
	if m.Build < u.Build {
		u.goingBack()
	}
	u.restartSoon()
	return run, nil
}

// room lists the partitions' slots (runningSlots) and says how large a new slot may be: two slots and a
// quarter of one fit, so two fifths of the smallest of the partitions.
func (u *Updater) room(ctx context.Context) (map[string][]string, int64, error) {
	names, err := u.runningSlots(ctx)
	if err != nil {
		return nil, 0, err
	}
	var room int64 = -1
	for p := range names {
		size, err := u.Boot.FAT.Size(ctx, p)
		if err != nil {
			return nil, 0, fmt.Errorf("size of %s: %w", p, err)
		}
		if room < 0 || size*2/5 < room {
			room = size * 2 / 5
		}
	}
	return names, room, nil
}

// receive stages the bundle's image in staged, checked: a bad bundle is ErrBadInput, a downgrade not
// asked for ErrConflict.
func (u *Updater) receive(r io.Reader, staged string, allowDowngrade bool, room int64) (Manifest, error) {
	f, err := os.OpenFile(staged, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return Manifest{}, err
	}
	defer f.Close()
	u.mu.Lock()
	counter := u.received
	u.mu.Unlock()
	m, err := Check(countReader{r, counter}, *u.Key, u.Build, allowDowngrade, room, func(p Part) (io.Writer, error) {
		if e, ok := ParseEntry(p.Name); !ok || !e.Blessed() || !versionName.MatchString(e.Version) {
			return nil, fmt.Errorf("%w: part %q is not a firmware image", ErrBadBundle, p.Name)
		}
		return f, nil
	})
	switch {
	case errors.Is(err, ErrDowngrade):
		return m, fmt.Errorf("%w: %w (allow_downgrade to install it anyway)", appliance.ErrConflict, err)
	case errors.Is(err, ErrBadBundle):
		return m, fmt.Errorf("%w: %w", appliance.ErrBadInput, err)
	case err != nil:
		return m, err
	case len(m.Parts) != 1 || m.Parts[0].Name != Slot(m.Version):
		return m, fmt.Errorf("%w: %v: it must hold exactly %s", appliance.ErrBadInput, ErrBadBundle, Slot(m.Version))
	case m.Version == u.Boot.Version:
		return m, fmt.Errorf("%w: the unit already runs %s", appliance.ErrConflict, m.Version)
	}
	return m, f.Sync()
}

type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n != nil {
		c.n.Add(int64(n))
	}
	return n, err
}

// write makes the new slot on every partition: the slots but the running one go first (two slots stay),
// then the image, written under a temporary name and renamed with its tries counter. On an error the new
// slot is taken off every partition again.
func (u *Updater) write(ctx context.Context, names map[string][]string, staged, version string) error {
	u.Boot.mu.Lock()
	defer u.Boot.mu.Unlock()
	defer u.changed()
	running := Slot(u.Boot.Version)
	for p, n := range names {
		for _, name := range n {
			if name == running || !strings.HasPrefix(name, "lawbox-") {
				continue
			}
			if err := u.Boot.FAT.Delete(ctx, p, linux+name); err != nil {
				return fmt.Errorf("make room on %s: %w", p, err)
			}
		}
	}
	for p := range names {
		if err := u.Boot.FAT.Put(ctx, p, staged, linux+trying(version)); err != nil {
			for q := range names {
				_ = u.Boot.FAT.Delete(ctx, q, linux+trying(version))
			}
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

// restartSoon restarts the unit once the answer to the request is out.
func (u *Updater) restartSoon() {
	go func() {
		time.Sleep(2 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := u.Restart(ctx); err != nil {
			u.Boot.Log.Error("firmware: the unit could not restart into the new slot", "err", err)
			u.done()
		}
	}()
}

func (u *Updater) save(run appliance.FirmwareRun) error {
	if err := u.Store.PutJSON(bucket, runKey, run); err != nil {
		return fmt.Errorf("record the firmware update: %w", err)
	}
	return nil
}

// Rollback marks the running slot failed on every partition and restarts: the boot loader boots the
// previous slot.
func (u *Updater) Rollback(ctx context.Context, user string) (err error) {
	if err := u.start(-1); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			u.done()
		}
	}()
	parts, err := u.members(ctx)
	if err != nil {
		return err
	}
	u.Boot.mu.Lock()
	defer u.Boot.mu.Unlock()
	defer u.changed()
	previous := ""
	names := map[string][]string{}
	for _, p := range parts {
		n, err := u.Boot.FAT.List(ctx, p, strings.TrimSuffix(linux, "/"))
		if err != nil {
			return fmt.Errorf("%w: the boot partition %s holds no firmware", appliance.ErrConflict, p)
		}
		names[p] = n
		for _, e := range entries(n) {
			if e.Version != u.Boot.Version && e.Blessed() {
				previous = e.Version
			}
		}
	}
	if previous == "" {
		return fmt.Errorf("%w: there is no previous firmware to go back to", appliance.ErrConflict)
	}
	for p, n := range names {
		if e, ok := find(n, u.Boot.Version); ok && !e.Failed() {
			if err := u.Boot.FAT.Rename(ctx, p, linux+e.Name, linux+failed(u.Boot.Version)); err != nil {
				return fmt.Errorf("mark %s failed on %s: %w", e.Name, p, err)
			}
		}
	}
	run := appliance.FirmwareRun{Version: previous, From: u.Boot.Version, By: user, Started: time.Now().UTC(), State: appliance.FirmwareManualRollback}
	run.Finished = run.Started
	if err := u.save(run); err != nil {
		return err
	}
	u.Boot.Log.Warn("firmware rollback: restarting into the previous slot", "version", previous, "from", u.Boot.Version, "by", user)
	u.goingBack()
	u.restartSoon()
	return nil
}
