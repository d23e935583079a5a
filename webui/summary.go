package webui

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// summary is the dashboard: one sentence, green when nothing needs doing, amber when something should be
// looked at, red when data is at risk; the alerts behind it; and each part at a glance (nil or empty when it
// could not be read).
type summary struct {
	Level      string // "green", "amber", "red"
	Sentence   string
	Alerts     []appliance.Alert
	Storage    *appliance.StorageStatus
	Health     map[string]string // disk serial -> SMART health
	Pair       appliance.PairStatus
	DB         *appliance.DatabaseStatus
	Backups    *appliance.BackupStatus
	LastBackup *appliance.Backup
}

// freshFor is how long the dashboard and the status, once read, are served as they are: every open
// dashboard's event stream and every page load would otherwise ask each part (the database over a
// connection of its own, PID 1 over its socket) again. Under load the parts are asked once a second.
const freshFor = time.Second

// fresh holds a value computed at most once per freshFor, however many ask at once. Once there is a value,
// callers never wait for the parts: an old one is answered while one caller's goroutine reads it anew.
type fresh[T any] struct {
	mu      sync.Mutex
	v       T
	err     error
	at      time.Time // when v was read; zero: never
	reading bool
}

func (f *fresh[T]) get(ctx context.Context, compute func(context.Context) (T, error)) (T, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.at) < freshFor || (f.reading && !f.at.IsZero()) {
		return f.v, f.err
	}
	// Shared by every caller: one that goes away must not leave the others a half-read value.
	read := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		v, err := compute(ctx)
		f.mu.Lock()
		f.v, f.err, f.at, f.reading = v, err, time.Now(), false
		f.mu.Unlock()
	}
	f.reading = true
	if f.at.IsZero() { // nothing to answer yet: wait for the first reading
		f.mu.Unlock()
		read()
		f.mu.Lock()
		return f.v, f.err
	}
	go read()
	return f.v, f.err
}

// dashboard is the summary, at most freshFor old.
func (s *Server) dashboard(ctx context.Context) summary {
	sum, _ := s.sum.get(ctx, func(ctx context.Context) (summary, error) { return s.summarize(ctx), nil })
	return sum
}

// status is the unit's status, at most freshFor old.
func (s *Server) status(ctx context.Context) (appliance.Status, error) {
	return s.stat.get(ctx, s.sys.Status)
}

func (s *Server) summarize(ctx context.Context) summary {
	var sum summary
	var alerts []appliance.Alert
	if st, err := s.disks.Storage(ctx); err == nil {
		sum.Storage = &st
		alerts = append(alerts, st.Alerts...)
	}
	if ds, err := s.health.Disks(ctx); err == nil {
		sum.Health = map[string]string{}
		for _, d := range ds {
			sum.Health[d.Serial] = d.SMART.Health
			for _, f := range d.SMART.Findings {
				if f.Acknowledged {
					continue
				}
				level := "warning"
				if f.Level == "replace" || f.Level == "failed" {
					level = "critical"
				}
				alerts = append(alerts, appliance.Alert{Level: level, Message: fmt.Sprintf("disk %s: %s", d.Serial, f.Message)})
			}
		}
	}
	if s.pair != nil {
		sum.Pair = s.pair.Pair()
		alerts = append(alerts, pairAlerts(sum.Pair)...)
	}
	if db, err := s.db.Database(ctx); err == nil {
		sum.DB = &db
		alerts = append(alerts, dbAlerts(db, sum.Pair.Paired)...)
	}
	if s.backups != nil {
		if b, err := s.backups.Backups(ctx); err == nil {
			sum.Backups = &b
			for i := range b.Backups {
				if sum.LastBackup == nil || b.Backups[i].Created.After(sum.LastBackup.Created) {
					sum.LastBackup = &b.Backups[i]
				}
			}
			alerts = append(alerts, backupAlerts(b, time.Now())...)
		}
	}
	sum.Level, sum.Sentence, sum.Alerts = "green", "Everything is working: the disks are mirrored and healthy.", alerts
	for _, a := range alerts {
		if a.Level == "critical" {
			sum.Level, sum.Sentence = "red", "Attention needed: office data is at risk until the problems below are fixed."
			return sum
		}
		sum.Level, sum.Sentence = "amber", "Working, with something to look at below."
	}
	return sum
}

// pairAlerts are the pair's problems as the dashboard states them.
func pairAlerts(p appliance.PairStatus) []appliance.Alert {
	var out []appliance.Alert
	if !p.Paired {
		return nil
	}
	if p.Maintenance {
		out = append(out, appliance.Alert{Level: "critical", Message: "maintenance mode: the office's applications can only read; promote this unit or bring the other one back"})
	}
	if p.Role == "fenced" {
		out = append(out, appliance.Alert{Level: "critical", Message: "this unit lost the other unit and the witness while active and stopped serving"})
	}
	if p.Peer != nil && !p.Peer.Reachable {
		out = append(out, appliance.Alert{Level: "critical", Message: "the other unit (" + p.Peer.Name + ") cannot be reached: no failover is possible"})
	} else if p.Peer != nil {
		for _, path := range p.Peer.Paths {
			if !path.Reachable {
				out = append(out, appliance.Alert{Level: "warning", Message: "no heartbeats from the other unit over " + path.Address})
			}
		}
	}
	if p.Witness != nil && p.Witness.Stale {
		out = append(out, appliance.Alert{Level: "critical", Message: "this unit's copy of the data is older than the other unit's: it will not serve until the other unit is back (or an admin forces it)"})
	}
	if p.Witness != nil && !p.Witness.Reachable {
		out = append(out, appliance.Alert{Level: "warning", Message: "the witness at " + p.Witness.Address + " does not answer: automatic failover is off until it does"})
	}
	return out
}

// lagAlert is how far behind a mirror may fall before the dashboard says so.
const lagAlert = 60 // seconds

// dbAlerts are the database's problems as the dashboard states them.
func dbAlerts(db appliance.DatabaseStatus, paired bool) []appliance.Alert {
	if db.Role == "none" {
		return []appliance.Alert{{Level: "warning", Message: "the database is " + db.State}}
	}
	var out []appliance.Alert
	if db.Role == "production" && paired && db.Mirror == "" {
		out = append(out, appliance.Alert{Level: "warning", Message: "the other unit is not mirroring the database: a failure of this unit now would stop the office's application"})
	}
	if db.Sync == "degraded" && db.Role == "production" {
		out = append(out, appliance.Alert{Level: "warning", Message: "synchronous mode is suspended while the mirror is missing: recent commits exist on this unit only"})
	}
	if db.Sync == "catching up" && db.Role == "production" {
		out = append(out, appliance.Alert{Level: "warning", Message: "the mirror is back and catching up: commits saved while it was away are not all on it yet"})
	}
	for _, sl := range db.Slots {
		switch sl.WALStatus {
		case "unreserved":
			out = append(out, appliance.Alert{Level: "warning", Message: "the mirror has been away so long that the WAL kept for it is about to be dropped: it will then copy the whole database again"})
		case "lost":
			out = append(out, appliance.Alert{Level: "warning", Message: "the WAL kept for the mirror was dropped (it was away too long, the disk space is capped): it copies the whole database again"})
		}
	}
	if db.LagSeconds != nil && *db.LagSeconds > lagAlert {
		out = append(out, appliance.Alert{Level: "warning", Message: fmt.Sprintf("the database mirror is %.0f s behind", *db.LagSeconds)})
	}
	return out
}

// backupAlerts: no backups set up, an offsite copy failing, no restore verified in two days.
func backupAlerts(b appliance.BackupStatus, now time.Time) []appliance.Alert {
	if !b.SetUp {
		return []appliance.Alert{{Level: "warning", Message: "backups are not set up: nothing is kept away from this office"}}
	}
	var out []appliance.Alert
	for _, t := range b.Targets {
		if !t.OK {
			out = append(out, appliance.Alert{Level: "warning", Message: "copying backups to " + t.Name + " fails (retried every 5 minutes): " + t.Error})
		}
	}
	if b.LastVerified == nil || now.Sub(b.LastVerified.Time) > 48*time.Hour {
		out = append(out, appliance.Alert{Level: "warning", Message: "no backup has been restored successfully in the last two days"})
	}
	return out
}
