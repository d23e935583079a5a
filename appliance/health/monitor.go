package health

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
	"github.com/lawbox/appliance/hw/disk"
	"github.com/lawbox/appliance/hw/smart"
)

// Buckets and keys in the state store.
const (
	bucketHistory = "smart-history" // serial + "/" + big-endian unix seconds -> HistoryPoint
	bucketAcks    = "smart-acks"    // serial + "/" + finding key -> acknowledged value
	configKey     = "smart"
)

// Config is the monitoring schedule.
type Config struct {
	PollMinutes  int                  `json:"poll_minutes"`  // default 30
	WatchMinutes int                  `json:"watch_minutes"` // while a disk is in watch or worse; default 5
	ShortDays    int                  `json:"short_days"`    // short self-test every N days; default 7
	LongDays     int                  `json:"long_days"`     // long self-test every N days; default 30
	LastShort    map[string]time.Time `json:"last_short"`
	LastLong     map[string]time.Time `json:"last_long"`
}

func (c *Config) defaults() {
	if c.PollMinutes <= 0 {
		c.PollMinutes = 30
	}
	if c.WatchMinutes <= 0 {
		c.WatchMinutes = 5
	}
	if c.ShortDays <= 0 {
		c.ShortDays = 7
	}
	if c.LongDays <= 0 {
		c.LongDays = 30
	}
	if c.LastShort == nil {
		c.LastShort = map[string]time.Time{}
	}
	if c.LastLong == nil {
		c.LastLong = map[string]time.Time{}
	}
}

// Monitor polls every disk's SMART data.
type Monitor struct {
	Log     *slog.Logger
	Store   *state.Store
	SysRoot string // "/sys"
	DevRoot string // "/dev"
	Now     func() time.Time
	// Read and the self-test functions are hw/smart's; tests may swap them.
	Read         func(path, transport string) (smart.Reading, error)
	LastSelfTest func(path, transport string) (smart.SelfTestResult, error)

	mu    sync.Mutex
	cfg   Config
	disks map[string]*entry // by serial
}

type entry struct {
	disk     disk.Disk
	reading  smart.Reading
	status   appliance.SMARTStatus
	nextPoll time.Time
}

func (m *Monitor) init() {
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.Read == nil {
		m.Read = smart.Read
	}
	if m.LastSelfTest == nil {
		m.LastSelfTest = smart.LastSelfTest
	}
	if m.disks == nil {
		m.disks = map[string]*entry{}
		if err := m.Store.GetJSON(state.BucketConfig, configKey, &m.cfg); err != nil && !errors.Is(err, state.ErrNotFound) {
			m.Log.Error("SMART settings unreadable; using defaults", "err", err)
		}
		m.cfg.defaults()
	}
}

// Run polls disks when they are due (every PollMinutes, every WatchMinutes for a disk that is not ok), picks
// up new disks within 30 s, and starts the scheduled self-tests.
func (m *Monitor) Run(ctx context.Context) error {
	m.mu.Lock()
	m.init()
	m.mu.Unlock()
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		m.pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// pass syncs the disk list, polls what is due and starts due self-tests.
func (m *Monitor) pass(ctx context.Context) {
	disks, err := disk.List(m.SysRoot)
	if err != nil {
		m.Log.Error("list disks", "err", err)
		return
	}
	now := m.Now()
	m.mu.Lock()
	seen := map[string]bool{}
	var due []string
	for _, d := range disks {
		if d.Serial == "" {
			continue
		}
		seen[d.Serial] = true
		e := m.disks[d.Serial]
		if e == nil {
			e = &entry{}
			m.disks[d.Serial] = e
		}
		e.disk = d
		if !now.Before(e.nextPoll) {
			due = append(due, d.Serial)
		}
	}
	for s := range m.disks {
		if !seen[s] {
			delete(m.disks, s)
		}
	}
	m.mu.Unlock()
	for _, s := range due {
		if err := m.poll(s); err != nil {
			m.Log.Warn("SMART poll", "disk", s, "err", err)
		}
	}
	m.scheduledSelfTests(now)
}

// poll reads one disk, grades it, records history and events.
func (m *Monitor) poll(serial string) error {
	m.mu.Lock()
	m.init()
	e := m.disks[serial]
	if e == nil {
		m.mu.Unlock()
		return fmt.Errorf("disk %s: %w", serial, appliance.ErrNotFound)
	}
	d := e.disk
	m.mu.Unlock()

	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	r, err := m.Read(filepath.Join(m.DevRoot, d.Name), d.Transport)
	wall := time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	level, findings := Evaluate(r)
	now := m.Now()
	var selfTest smart.SelfTestResult
	if r.Supported {
		var err error
		if selfTest, err = m.LastSelfTest(filepath.Join(m.DevRoot, d.Name), d.Transport); err != nil {
			selfTest = smart.SelfTestResult{Status: "not available"}
		}
		if strings.HasPrefix(selfTest.Status, "failed") { // the disk tested itself and found damage
			findings = append(findings, appliance.Finding{Key: "self-test", Level: Replace, Value: 1,
				Message: "the disk's last self-test " + selfTest.Status})
			level = Worse(level, Replace)
		}
	}

	st := appliance.SMARTStatus{Supported: r.Supported, Reason: r.Reason, Health: level, TemperatureC: r.TemperatureC, HotC: HotLimit(r),
		PowerOnHours: r.PowerOnHours, Attributes: r.Attributes, NVMe: r.NVMe, Findings: findings, LastPoll: now,
		PollMS: float64(wall.Microseconds()) / 1000}
	if err != nil {
		m.Log.Warn("read SMART", "disk", serial, "err", err)
		st.Reason = "it could not be read from this disk (the unit's log says why)"
	}
	if st.Attributes == nil {
		st.Attributes = []smart.Attribute{}
	}
	for i := range st.Findings {
		st.Findings[i].Acknowledged = m.acked(serial, st.Findings[i])
	}
	if st.Findings == nil {
		st.Findings = []appliance.Finding{}
	}
	st.SelfTest = selfTest

	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	st.PollCPUMS = float64(cpu.Microseconds()) / 1000
	m.mu.Lock()
	prev := e.status
	e.reading, e.status = r, st
	interval := time.Duration(m.cfg.PollMinutes) * time.Minute
	if level != OK && level != "" {
		interval = time.Duration(m.cfg.WatchMinutes) * time.Minute
	}
	e.nextPoll = now.Add(interval)
	m.mu.Unlock()

	if !r.Supported {
		return err
	}
	if prev.Health != level {
		lvl := "info"
		if rank[level] >= rank[Replace] {
			lvl = "critical"
		} else if level == Watch {
			lvl = "warning"
		}
		var msgs []string
		for _, f := range findings {
			msgs = append(msgs, f.Message)
		}
		m.event(lvl, "disk %s health: %s (was %s)%s", serial, level, orNone(prev.Health), detail(msgs))
	}
	if err := m.record(serial, now, r, findings); err != nil {
		m.Log.Error("record SMART history", "disk", serial, "err", err)
	}
	return err
}

func orNone(s string) string {
	if s == "" {
		return "not polled"
	}
	return s
}

func detail(msgs []string) string {
	if len(msgs) == 0 {
		return ""
	}
	return ": " + strings.Join(msgs, "; ")
}

func (m *Monitor) event(level, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	m.Log.Info(msg)
	if err := m.Store.AddEvent(state.Event{Time: m.Now(), Source: "smart", Level: level, Message: msg}); err != nil {
		m.Log.Error("record event", "err", err)
	}
}

func ackKey(serial, key string) string { return serial + "/" + key }

func (m *Monitor) acked(serial string, f appliance.Finding) bool {
	b, err := m.Store.Get(bucketAcks, ackKey(serial, f.Key))
	return err == nil && len(b) == 8 && binary.BigEndian.Uint64(b) == f.Value
}

// Disks returns every disk with its last SMART status.
func (m *Monitor) Disks(context.Context) ([]appliance.DiskHealth, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []appliance.DiskHealth{}
	for s, e := range m.disks {
		st := e.status
		if st.Findings == nil {
			st.Findings = []appliance.Finding{}
		}
		if st.Attributes == nil {
			st.Attributes = []smart.Attribute{}
		}
		out = append(out, appliance.DiskHealth{Serial: s, Model: e.disk.Model, SizeBytes: e.disk.SizeBytes, Device: e.disk.Name, SMART: st})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out, nil
}

// Refresh polls a disk now.
func (m *Monitor) Refresh(_ context.Context, serial string) error {
	return m.poll(serial)
}

// Acknowledge hides a finding until its value changes.
func (m *Monitor) Acknowledge(_ context.Context, serial, key string) error {
	m.mu.Lock()
	e := m.disks[serial]
	var f *appliance.Finding
	if e != nil {
		for i := range e.status.Findings {
			if e.status.Findings[i].Key == key {
				f = &e.status.Findings[i]
			}
		}
	}
	m.mu.Unlock()
	if f == nil {
		return fmt.Errorf("acknowledge %s on disk %s: %w", key, serial, appliance.ErrNotFound)
	}
	if err := m.Store.Put(bucketAcks, ackKey(serial, key), binary.BigEndian.AppendUint64(nil, f.Value)); err != nil {
		return err
	}
	m.mu.Lock()
	f.Acknowledged = true
	m.mu.Unlock()
	m.event("info", "alert %s on disk %s acknowledged (until its value %d changes)", key, serial, f.Value)
	return nil
}

// SelfTest starts a self-test now.
func (m *Monitor) SelfTest(_ context.Context, serial, kind string) error {
	m.mu.Lock()
	m.init()
	e := m.disks[serial]
	m.mu.Unlock()
	if e == nil {
		return fmt.Errorf("self-test on disk %s: %w", serial, appliance.ErrNotFound)
	}
	if kind != smart.Short && kind != smart.Long {
		return fmt.Errorf("self-test kind %q: use short or long: %w", kind, appliance.ErrBadInput)
	}
	if !e.status.Supported {
		return fmt.Errorf("self-test on disk %s: no SMART (%s): %w", serial, e.status.Reason, appliance.ErrConflict)
	}
	if err := smart.StartSelfTest(filepath.Join(m.DevRoot, e.disk.Name), e.disk.Transport, kind); err != nil {
		if errors.Is(err, smart.ErrSelfTestUnsupported) {
			return fmt.Errorf("self-test on disk %s: %w: %w", serial, err, appliance.ErrConflict)
		}
		return err
	}
	m.mu.Lock()
	if kind == smart.Short {
		m.cfg.LastShort[serial] = m.Now()
	} else {
		m.cfg.LastLong[serial] = m.Now()
	}
	cfg := m.cfg
	m.mu.Unlock()
	if err := m.Store.PutJSON(state.BucketConfig, configKey, cfg); err != nil {
		m.Log.Error("save SMART settings", "err", err)
	}
	m.event("info", "%s self-test started on disk %s", kind, serial)
	return nil
}

// scheduledSelfTests starts the weekly short and monthly long self-tests that are due.
func (m *Monitor) scheduledSelfTests(now time.Time) {
	m.mu.Lock()
	type job struct{ serial, kind string }
	var jobs []job
	for s, e := range m.disks {
		if !e.status.Supported || e.status.SelfTest.Running {
			continue
		}
		switch {
		case now.Sub(m.cfg.LastLong[s]) >= time.Duration(m.cfg.LongDays)*24*time.Hour:
			jobs = append(jobs, job{s, smart.Long})
		case now.Sub(m.cfg.LastShort[s]) >= time.Duration(m.cfg.ShortDays)*24*time.Hour:
			jobs = append(jobs, job{s, smart.Short})
		}
	}
	m.mu.Unlock()
	for _, j := range jobs {
		if err := m.SelfTest(context.Background(), j.serial, j.kind); err != nil {
			m.Log.Info("scheduled self-test not started", "disk", j.serial, "kind", j.kind, "err", err)
			m.mu.Lock() // do not retry every pass: wait for the next period
			if j.kind == smart.Short {
				m.cfg.LastShort[j.serial] = now
			} else {
				m.cfg.LastLong[j.serial] = now
			}
			m.mu.Unlock()
		}
	}
}

// Level is a disk's health as last polled ("" when unknown or unsupported).
func (m *Monitor) Level(serial string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.disks[serial]; e != nil {
		return e.status.Health
	}
	return ""
}

// SetPollMinutes sets the regular poll interval; it applies from each disk's next poll.
func (m *Monitor) SetPollMinutes(_ context.Context, minutes int) error {
	if minutes < 1 || minutes > 1440 {
		return fmt.Errorf("poll interval %d minutes: use 1 to 1440: %w", minutes, appliance.ErrBadInput)
	}
	m.mu.Lock()
	m.init()
	m.cfg.PollMinutes = minutes
	cfg := m.cfg
	m.mu.Unlock()
	if err := m.Store.PutJSON(state.BucketConfig, configKey, cfg); err != nil {
		return err
	}
	m.event("info", "SMART poll interval set to %d minutes", minutes)
	return nil
}
