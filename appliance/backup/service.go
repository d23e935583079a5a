// Package backup is the unit's backup service: the schedule (nightly dumps, 15-minute backups when
// something changed, WAL shipping, documents), which unit of a pair takes them, the recovery identity and
// the offsite targets kept in the cluster, and the API's backups, verification and restores. The backups
// themselves are made and read by package engine and kept by package target.
package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"filippo.io/age"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/engine"
	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/state"
)

// Service schedules the Engine and answers the API. The recovery identity and the offsite targets live in
// the database cluster (database postgres, schema lawbox), so the mirror, which takes the backups, has them
// by replication and keeps them across a switchover: one recovery sheet for the pair.
type Service struct {
	Engine *engine.Engine
	// ShouldRun says whether this unit takes the backups: the mirror, or a unit that is not paired.
	ShouldRun func(ctx context.Context) bool
	// Partner asks the other unit of the pair to take a backup now (over the pair link; it answers with
	// LinkHandler): what "back up now" does on a unit that does not take the backups. Nil: not paired.
	Partner func(ctx context.Context, kind string) (appliance.Backup, error)
	// ConfigParts take their settings from a configuration restored from a backup (RestoreConfig).
	ConfigParts []ConfigPart
	Keep        int    // nightly dumps kept unless the admin chose otherwise (30)
	DataRoot    string // document folders must be under it ("/data")
	// Documents is the shares' volume: backed up when no document folder is set, and read where it says.
	Documents DocumentsVolume

	jobs     sync.Mutex // one backup job at a time: the schedule sees what a manual run just did
	mu       sync.Mutex
	running  string
	lastErr  error            // the last backup's failure (nil when it succeeded)
	targets  map[string]error // target name -> last error (nil when fine)
	identity *age.X25519Identity
}

// NewService wires the engine to the recovery identity kept in the cluster.
func NewService(e *engine.Engine, shouldRun func(context.Context) bool, keep int) *Service {
	s := &Service{Engine: e, ShouldRun: shouldRun, Keep: keep, DataRoot: "/data"}
	if e.Progress == nil {
		e.Progress = &target.Progress{}
	}
	e.Identity = s.loadIdentity
	return s
}

var _ appliance.Backups = (*Service)(nil)

// problem says in a sentence what a failed backup means and what to do (its error is the detail).
func problem(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "The unit's backup volume is full: delete old backups (keep fewer), or grow the data array."
	case errors.Is(err, appliance.ErrUnavailable):
		return "The database was not running; the backup is tried again at the next one."
	}
	return "The backup could not be taken; it is tried again at the next one. The unit's log says why."
}

// Export writes a current dump of database db (pg_dump custom format) to w.
func (s *Service) Export(ctx context.Context, db string, w io.Writer) error {
	return s.Engine.Export(ctx, db, w)
}

const schema = `CREATE SCHEMA IF NOT EXISTS lawbox;
CREATE TABLE IF NOT EXISTS lawbox.backup (id int PRIMARY KEY CHECK (id = 1), identity text NOT NULL, targets jsonb NOT NULL DEFAULT '[]');
ALTER TABLE lawbox.backup ADD COLUMN IF NOT EXISTS retention jsonb`

const (
	foldersKey  = "backup.documents" // state: the document folders of this unit
	verifiedKey = "backup.verified"  // state: map id -> Verification
	lastKey     = "backup.last"      // state: the last backup's id, kind and LSN
)

func (s *Service) verified() map[string]engine.Verification {
	v := map[string]engine.Verification{}
	if err := s.Engine.Store.GetJSON(state.BucketConfig, verifiedKey, &v); err != nil && !errors.Is(err, state.ErrNotFound) {
		s.Engine.Log.Error("backup verifications unreadable", "err", err)
	}
	return v
}

func (s *Service) setRunning(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = what
	s.Engine.Progress.Start(0)
}

// runHere takes a backup on this unit.
func (s *Service) runHere(ctx context.Context, kind string) (appliance.Backup, error) {
	s.jobs.Lock()
	defer s.jobs.Unlock()
	return s.runBackup(ctx, kind)
}

func (s *Service) runBackup(ctx context.Context, kind string) (appliance.Backup, error) {
	if kind != engine.KindDump && kind != engine.KindIncrement && kind != engine.KindBase && kind != engine.KindDocuments {
		return appliance.Backup{}, fmt.Errorf("kind %q: dump, increment, base or documents: %w", kind, appliance.ErrBadInput)
	}
	if _, err := s.loadIdentity(); err != nil {
		return appliance.Backup{}, err
	}
	s.setRunning("taking a " + kind)
	defer s.setRunning("")
	var m *engine.Manifest
	var err error
	if kind == engine.KindDocuments {
		m, err = s.backupDocuments(ctx)
		if err == nil && m == nil {
			return appliance.Backup{}, fmt.Errorf("no document to back up, or none changed since the last documents backup: %w", appliance.ErrConflict)
		}
		if err == nil {
			s.sync(ctx)
			return s.describe(m, s.verified(), s.Engine.Local.Name()), nil
		}
	} else {
		m, err = s.Engine.Backup(ctx, kind)
	}
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	if err != nil {
		return appliance.Backup{}, err
	}
	var l last
	_ = s.Engine.Store.GetJSON(state.BucketConfig, lastKey, &l)
	switch kind {
	case engine.KindDump:
		l.Dump = m.Created
	case engine.KindBase:
		l.Base = m.Created
	}
	if kind != engine.KindBase { // a base copy is not a dump: the 15-minute increments go on
		l.ID, l.LSN, l.Created = m.ID, m.LSN, m.Created
	}
	if err := s.Engine.Store.PutJSON(state.BucketConfig, lastKey, l); err != nil {
		return appliance.Backup{}, err
	}
	if _, err := s.Engine.ShipWAL(ctx); err != nil { // the WAL the copy needs, before it is verified or copied
		s.Engine.Log.Warn("ship WAL", "err", err)
	}
	s.sync(ctx)
	return s.describe(m, s.verified(), s.Engine.Local.Name()), nil
}

// sync copies every local backup the targets lack, then prunes everywhere. A target that fails is
// remembered and tried again at the next round; the local copies stay until they are pruned by age.
func (s *Service) sync(ctx context.Context) {
	id, err := s.loadIdentity()
	if err != nil {
		return
	}
	local, _, err := engine.Manifests(ctx, s.Engine.Local, id)
	if err != nil {
		return
	}
	verified := map[string]bool{}
	for k, v := range s.verified() {
		verified[k] = v.OK
	}
	targets, _ := s.offsite(ctx)
	keep := s.retention(ctx)
	errs := map[string]error{}
	for _, t := range targets {
		errs[t.Name()] = nil
		have := map[string]bool{}
		remote, _, err := engine.Manifests(ctx, t, id)
		if err != nil {
			errs[t.Name()] = err
			continue
		}
		for _, m := range remote {
			have[m.ID] = true
		}
		for _, m := range local {
			if have[m.ID] {
				continue
			}
			s.setRunning("copying " + m.ID + " to " + t.Name())
			if err := s.Engine.Copy(ctx, m, t); err != nil {
				errs[t.Name()] = err
				s.Engine.Log.Warn("offsite copy failed; retried later", "target", t.Name(), "id", m.ID, "err", err)
				break
			}
		}
		if errs[t.Name()] == nil {
			s.setRunning("copying WAL to " + t.Name())
			if err := s.Engine.CopyWAL(ctx, t); err != nil {
				errs[t.Name()] = err
				s.Engine.Log.Warn("offsite WAL copy failed; retried later", "target", t.Name(), "err", err)
			}
		}
		if errs[t.Name()] == nil {
			if _, err := s.Engine.Prune(ctx, t, keep, verified); err != nil {
				errs[t.Name()] = err
			}
		}
	}
	if _, err := s.Engine.Prune(ctx, s.Engine.Local, keep, verified); err != nil {
		s.Engine.Log.Warn("prune local backups", "err", err)
	}
	s.mu.Lock()
	s.targets = errs
	s.mu.Unlock()
	s.setRunning("")
}

// locate finds backup backupID: on the unit's array or on the first offsite target that has it, the array
// first when localFirst.
func (s *Service) locate(ctx context.Context, id age.Identity, backupID string, localFirst bool) (target.Target, error) {
	targets, _ := s.offsite(ctx)
	if localFirst {
		targets = append([]target.Target{s.Engine.Local}, targets...)
	} else {
		targets = append(targets, s.Engine.Local)
	}
	for _, t := range targets {
		if _, err := engine.ReadManifest(ctx, t, backupID+"/"+engine.ManifestName, id); err == nil {
			return t, nil
		}
	}
	return nil, fmt.Errorf("backup %s: not on this unit nor at any target: %w", backupID, appliance.ErrNotFound)
}

// VerifyBackup restores backup id from the first offsite target that has it (or from the unit's array).
func (s *Service) VerifyBackup(ctx context.Context, backupID string) (appliance.BackupVerification, error) {
	id, err := s.loadIdentity()
	if err != nil {
		return appliance.BackupVerification{}, err
	}
	t, err := s.locate(ctx, id, backupID, false)
	if err != nil {
		return appliance.BackupVerification{}, err
	}
	s.setRunning("verifying " + backupID)
	defer s.setRunning("")
	v, _ := s.Engine.Verify(ctx, t, backupID) // a failed restore is a result (v.OK false, v.Detail), not an error
	all := s.verified()
	all[backupID] = v
	if err := s.Engine.Store.PutJSON(state.BucketConfig, verifiedKey, all); err != nil {
		return appliance.BackupVerification{}, err
	}
	return v, nil
}

// RestoreBackup restores databases of backup backupID into the production database, from the unit's array
// when it has the backup, else from a target.
func (s *Service) RestoreBackup(ctx context.Context, backupID string, req appliance.BackupRestore) (appliance.BackupRestoreResult, error) {
	res := appliance.BackupRestoreResult{ID: backupID}
	id, err := s.loadIdentity()
	if err != nil {
		return res, err
	}
	t, err := s.locate(ctx, id, backupID, true)
	if err != nil {
		return res, err
	}
	res.Target = t.Name()
	s.setRunning("restoring " + backupID)
	defer s.setRunning("")
	start := time.Now()
	if strings.HasSuffix(backupID, "-"+engine.KindDocuments) {
		var d appliance.DocumentsRestored
		d, err = s.Engine.RestoreDocuments(ctx, t, backupID, req.Paths)
		res.Documents = &d
	} else {
		res.Databases, err = s.Engine.Restore(ctx, t, backupID, req.Databases, req.Into, req.Replace)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, err
}

// RestorePointInTime restores databases as they were at the moment at, from the unit's array when it has a
// base copy before at, else from the first target that has one.
func (s *Service) RestorePointInTime(ctx context.Context, at time.Time, req appliance.BackupRestore) (appliance.BackupRestoreResult, error) {
	res := appliance.BackupRestoreResult{ID: "point-in-time " + at.UTC().Format(time.RFC3339)}
	id, err := s.loadIdentity()
	if err != nil {
		return res, err
	}
	if at.IsZero() || at.After(s.Engine.Clock()) {
		return res, fmt.Errorf("the moment %s is not in the past: %w", at.UTC().Format(time.RFC3339), appliance.ErrBadInput)
	}
	targets, _ := s.offsite(ctx)
	s.setRunning("restoring to " + at.UTC().Format(time.RFC3339))
	defer s.setRunning("")
	start := time.Now()
	// The unit's array first; a place whose WAL ends too early (an array that stopped taking the backups when
	// its unit became production) gives way to the next.
	err = nil
	for _, t := range append([]target.Target{s.Engine.Local}, targets...) {
		if _, berr := engine.BaseBefore(ctx, t, id, at); berr != nil {
			err = berr
			continue
		}
		res.Target = t.Name()
		res.Databases, err = s.Engine.RestoreTo(ctx, t, at, req.Databases, req.Into, req.Replace)
		if !errors.Is(err, engine.ErrWALEnds) {
			break
		}
	}
	res.Seconds = time.Since(start).Seconds()
	return res, err
}

func (s *Service) describe(m *engine.Manifest, verified map[string]engine.Verification, where ...string) appliance.Backup {
	b := appliance.Backup{ID: m.ID, Kind: m.Kind, Created: m.Created, SizeBytes: m.SizeBytes(), Targets: where, Databases: []string{}}
	if v, ok := verified[m.ID]; ok {
		b.Verified = &v
	}
	for _, d := range m.Databases {
		b.Databases = append(b.Databases, d.Name)
	}
	b.Files = len(m.Files)
	return b
}

// Backups lists the backups on the unit's array and at the targets, and where each is.
func (s *Service) Backups(ctx context.Context) (appliance.BackupStatus, error) {
	st := appliance.BackupStatus{Backups: []appliance.Backup{}}
	s.mu.Lock()
	st.Running = s.running
	if s.lastErr != nil {
		st.LastError, st.LastProblem = s.lastErr.Error(), problem(s.lastErr)
	}
	if s.running != "" {
		st.ProgressDone, st.ProgressTotal = s.Engine.Progress.Get()
	}
	for name, e := range s.targets {
		ts := appliance.BackupTargetStatus{Name: name, OK: e == nil}
		if e != nil {
			ts.Error, ts.Problem = e.Error(), target.Problem(e)
		}
		st.Targets = append(st.Targets, ts)
	}
	s.mu.Unlock()
	id, err := s.loadIdentity()
	if err != nil {
		return st, nil // not set up
	}
	st.SetUp = true
	st.Recipient = id.Recipient().String()
	st.Retention = s.retention(ctx)
	st.DocumentFolders = s.documentFolders()
	local, _, err := engine.Manifests(ctx, s.Engine.Local, id)
	if err != nil {
		return st, err
	}
	verified := s.verified()
	var ms []*engine.Manifest
	where := map[string]*appliance.Backup{}
	add := func(m *engine.Manifest, t string) {
		if b, ok := where[m.ID]; ok {
			b.Targets = append(b.Targets, t)
			return
		}
		b := s.describe(m, verified, t)
		where[m.ID] = &b
		ms = append(ms, m)
	}
	for _, m := range local {
		add(m, s.Engine.Local.Name())
	}
	targets, _ := s.offsite(ctx)
	for _, t := range targets {
		rs, _, err := engine.Manifests(ctx, t, id)
		if err != nil {
			continue
		}
		for _, m := range rs {
			add(m, t.Name())
		}
	}
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].Created.Before(ms[j].Created) })
	for _, m := range ms {
		b := *where[m.ID]
		st.Backups = append(st.Backups, b)
		if b.Verified != nil && b.Verified.OK {
			st.LastVerified = b.Verified
		}
		if m.Kind == engine.KindBase && (st.PointInTimeSince == nil || m.Complete().Before(*st.PointInTimeSince)) {
			since := m.Complete()
			st.PointInTimeSince = &since
		}
	}
	return st, nil
}
