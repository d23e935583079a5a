package backup

import (
	"context"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/engine"
	"github.com/lawbox/appliance/appliance/state"
)

// last is what the schedule remembers of the backups taken (state: lastKey).
type last struct {
	ID      string    `json:"id"`
	LSN     string    `json:"lsn"`
	Created time.Time `json:"created"`
	Dump    time.Time `json:"dump"` // the last nightly dump
	Base    time.Time `json:"base"` // the last base copy
}

// Newest is when the newest backup of any kind was taken, here or at a target (taken by either unit of
// a pair), zero when there is none or they cannot be listed.
func (s *Service) Newest(ctx context.Context) time.Time {
	var newest time.Time
	if st, err := s.Backups(ctx); err == nil {
		for _, b := range st.Backups {
			if b.Created.After(newest) {
				newest = b.Created
			}
		}
	}
	return newest
}

// due says which backup the schedule wants at now, after l: the nightly dump once a day after 02:00 UTC,
// a base copy a week after the last one, an increment 15 minutes after the last backup when the WAL
// position (asked only then) moved since; "" for none.
func (l last) due(now time.Time, position func() (string, error)) string {
	switch {
	case now.Hour() >= 2 && now.Format("2006-01-02") != l.Dump.UTC().Format("2006-01-02"):
		return engine.KindDump
	case now.Sub(l.Base) >= 7*24*time.Hour:
		return engine.KindBase
	case now.Sub(l.Created) >= 15*time.Minute:
		if lsn, err := position(); err == nil && lsn != l.LSN {
			return engine.KindIncrement
		}
	}
	return ""
}

// Run ships the archived WAL every minute, takes the nightly dump after 02:00 (UTC), a base copy every week,
// a backup every 15 minutes when the database changed, and one of the documents when one changed, keeps trying failed offsite copies, and verifies
// each nightly dump and base copy by restoring it. A unit that does not take the backups drops its
// archived WAL (its mirror archives the same).
func (s *Service) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	lastSync, lastDocs := time.Time{}, time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		_, idErr := s.loadIdentity()
		if idErr != nil || !s.ShouldRun(ctx) {
			if err := s.Engine.DropWAL(); err != nil {
				s.Engine.Log.Warn("drop archived WAL", "err", err)
			}
			continue
		}
		if _, err := s.Engine.ShipWAL(ctx); err != nil {
			s.Engine.Log.Warn("ship WAL", "err", err)
		}
		now := s.Engine.Clock().UTC()
		if b, kind, err := s.runDue(ctx, now); kind != "" {
			if err == nil && kind != engine.KindIncrement {
				_, _ = s.VerifyBackup(ctx, b.ID)
			}
			lastSync = time.Now()
		}
		if now.Sub(lastDocs) >= 15*time.Minute && len(s.documentFolders()) > 0 {
			lastDocs = now
			if m, err := s.backupDocuments(ctx); err != nil {
				s.mu.Lock()
				s.lastErr = err
				s.mu.Unlock()
				s.Engine.Log.Warn("documents backup", "err", err)
			} else if m != nil {
				lastSync = time.Time{} // copy it offsite now
			}
		}
		if time.Since(lastSync) > 5*time.Minute {
			s.sync(ctx)
			lastSync = time.Now()
		}
	}
}

// runDue takes the backup the schedule wants at now, if any, and says which it was.
func (s *Service) runDue(ctx context.Context, now time.Time) (appliance.Backup, string, error) {
	s.jobs.Lock()
	defer s.jobs.Unlock()
	var l last
	_ = s.Engine.Store.GetJSON(state.BucketConfig, lastKey, &l)
	kind := l.due(now, func() (string, error) { return s.Engine.Position(ctx) })
	if kind == "" {
		return appliance.Backup{}, "", nil
	}
	b, err := s.runBackup(ctx, kind)
	return b, kind, err
}
