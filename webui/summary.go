package webui

import (
	"context"
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
	Disks      []appliance.DiskHealth
	Pair       appliance.PairStatus
	DB         *appliance.DatabaseStatus
	Backups    *appliance.BackupStatus
	LastBackup *appliance.Backup
	Jobs       []Job // running, or ended within jobsShownFor
}

// jobsShownFor is how long the dashboard shows a job that ended.
const jobsShownFor = 15 * time.Minute

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

// dashboard is the summary, at most freshFor old, with the acknowledgements as they are now.
func (s *Server) dashboard(ctx context.Context) summary {
	sum, _ := s.sum.get(ctx, func(ctx context.Context) (summary, error) { return s.summarize(ctx), nil })
	if s.notify == nil {
		return sum
	}
	acks, err := s.notify.AlertAcks(ctx)
	if err != nil {
		s.log.Warn("alert acknowledgements", "err", err)
	}
	sum.Alerts = appliance.MarkAlerts(sum.Alerts, acks, time.Now())
	for _, j := range s.jobs.snapshot() {
		if j.Running() || time.Since(j.Finished) < jobsShownFor {
			sum.Jobs = append(sum.Jobs, j)
		}
	}
	sum.grade()
	return sum
}

// status is the unit's status, at most freshFor old, as sess may see it: the services' logs are for
// admins only (they carry what the database and the backups log: statements, names of databases and
// documents), a viewer sees each service's state.
func (s *Server) status(ctx context.Context, sess appliance.Session) (appliance.Status, error) {
	st, err := s.stat.get(ctx, s.sys.Status)
	if sess.Role == appliance.RoleAdmin {
		return st, err
	}
	// A viewer sees states only: logs and failures carry what the tools said (statements, paths).
	strip := func(in []appliance.Service) []appliance.Service {
		out := make([]appliance.Service, len(in)) // st is shared with other requests: copy
		for i, v := range in {
			v.Logs, v.LastExit = nil, ""
			out[i] = v
		}
		return out
	}
	st.Services, st.Parts = strip(st.Services), strip(st.Parts)
	return st, err
}

func (s *Server) summarize(ctx context.Context) summary {
	snap := appliance.TakeSnapshot(ctx, s.disks, s.health, s.pair, s.db, s.backups, s.net, s.fw, s.shares, s.clock)
	sum := summary{Storage: snap.Storage, Disks: snap.Disks, Pair: snap.Pair, DB: snap.Database, Backups: snap.Backups, Alerts: snap.Alerts()}
	if snap.Disks != nil {
		sum.Health = map[string]string{}
		for _, d := range snap.Disks {
			sum.Health[d.Serial] = d.SMART.Health
		}
	}
	if b := snap.Backups; b != nil {
		for i := range b.Backups {
			if sum.LastBackup == nil || b.Backups[i].Created.After(sum.LastBackup.Created) {
				sum.LastBackup = &b.Backups[i]
			}
		}
	}
	sum.grade()
	return sum
}

// grade sets the level and the sentence from the alerts: an acknowledged warning does not count, a
// critical alert always does.
func (sum *summary) grade() {
	sum.Level, sum.Sentence = "green", "Everything is working: the disks are mirrored and healthy."
	for _, a := range sum.Alerts {
		if a.Level == "critical" {
			sum.Level, sum.Sentence = "red", "Attention needed: office data is at risk until the problems below are fixed."
			return
		}
		if a.Acknowledged == nil {
			sum.Level, sum.Sentence = "amber", "Working, with something to look at below."
		}
	}
}
