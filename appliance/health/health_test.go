package health

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
	"github.com/lawbox/appliance/hw/disk"
	"github.com/lawbox/appliance/hw/smart"
)

// qemuATA is what QEMU 7.2's ide-hd reports (static values; see the QEMU test for the live comparison).
var qemuATA = smart.Reading{Supported: true, Protocol: "ata", TemperatureC: 31, Attributes: []smart.Attribute{
	{ID: 1, Name: "Raw_Read_Error_Rate", Value: 100, Worst: 100, Threshold: 6, Prefail: true},
	{ID: 3, Name: "Spin_Up_Time", Value: 100, Worst: 100, Threshold: 0, Prefail: true, Raw: 16},
	{ID: 4, Name: "Start_Stop_Count", Value: 100, Worst: 100, Threshold: 20, Raw: 100},
	{ID: 5, Name: "Reallocated_Sector_Ct", Value: 100, Worst: 100, Threshold: 36, Prefail: true},
	{ID: 9, Name: "Power_On_Hours", Value: 100, Worst: 100, Threshold: 0, Raw: 1},
	{ID: 12, Name: "Power_Cycle_Count", Value: 100, Worst: 100, Threshold: 0, Raw: 0},
	{ID: 190, Name: "Airflow_Temperature_Cel", Value: 69, Worst: 69, Threshold: 50, Prefail: true, Raw: 31},
}}

func TestEvaluate(t *testing.T) {
	with := func(r smart.Reading, id uint8, raw uint64, value uint8) smart.Reading {
		r.Attributes = append([]smart.Attribute(nil), r.Attributes...)
		for i := range r.Attributes {
			if r.Attributes[i].ID == id {
				r.Attributes[i].Raw = raw
				if value > 0 {
					r.Attributes[i].Value = value
				}
				return r
			}
		}
		r.Attributes = append(r.Attributes, smart.Attribute{ID: id, Value: max(value, 100), Worst: 100, Raw: raw})
		return r
	}
	nvme := func(cw, used uint8, media uint64) smart.Reading {
		return smart.Reading{Supported: true, Protocol: "nvme", TemperatureC: 40,
			NVMe: &smart.NVMeHealth{CriticalWarning: cw, AvailableSpare: 100, SpareThreshold: 10, PercentUsed: used, MediaErrors: media}}
	}
	cases := []struct {
		name string
		r    smart.Reading
		want string
		keys []string
	}{
		{"QEMU's ATA disk", qemuATA, OK, nil},
		{"unsupported", smart.Reading{Reason: "virtual disk"}, "", nil},
		{"a few reallocated sectors", with(qemuATA, 5, 8, 0), Watch, []string{"ata-5"}},
		{"many reallocated sectors", with(qemuATA, 5, 400, 0), Replace, []string{"ata-5"}},
		{"offline uncorrectable", with(qemuATA, 198, 1, 0), Replace, []string{"ata-198"}},
		{"pending sectors", with(qemuATA, 197, 3, 0), Watch, []string{"ata-197"}},
		{"prefail value under threshold", with(qemuATA, 5, 2000, 30), Failed, []string{"ata-5-threshold", "ata-5"}},
		{"cable errors only", with(qemuATA, 199, 12, 0), OK, []string{"ata-199"}},
		{"hot", func() smart.Reading { r := qemuATA; r.TemperatureC = 61; return r }(), Watch, []string{"temperature"}},
		{"healthy NVMe", nvme(0, 3, 0), OK, nil},
		{"NVMe reliability degraded + spare", nvme(5, 3, 0), Replace, []string{"nvme-warning-4", "nvme-warning-1"}},
		{"NVMe read-only", nvme(8, 3, 0), Failed, []string{"nvme-warning-8"}},
		{"NVMe worn out", nvme(0, 100, 0), Replace, []string{"nvme-used"}},
		{"NVMe media errors", nvme(0, 3, 2), Watch, []string{"nvme-media"}},
	}
	for _, c := range cases {
		level, fs := Evaluate(c.r)
		if level != c.want {
			t.Errorf("%s: %q, want %q (%+v)", c.name, level, c.want, fs)
		}
		var keys []string
		for _, f := range fs {
			keys = append(keys, f.Key)
		}
		if len(keys) != len(c.keys) {
			t.Errorf("%s: findings %v, want %v", c.name, keys, c.keys)
			continue
		}
		for i := range keys {
			if keys[i] != c.keys[i] {
				t.Errorf("%s: findings %v, want %v", c.name, keys, c.keys)
			}
		}
	}
}

func newMonitor(t testing.TB, read func(string, string) (smart.Reading, error), now *time.Time) *Monitor {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := &Monitor{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: st, DevRoot: "/nonexistent", Read: read,
		Now: func() time.Time { return *now }, LastSelfTest: func(string, string) (smart.SelfTestResult, error) {
			return smart.SelfTestResult{Status: "passed", Passed: true}, nil
		}}
	m.mu.Lock()
	m.init()
	m.disks["SN1"] = &entry{disk: disk.Disk{Name: "nvme0n1", Serial: "SN1", Transport: "nvme"}}
	m.mu.Unlock()
	return m
}

// A warning raises the level; acknowledging hides it until the value changes; when the disk's warning
// clears, the disk is ok again (no sticky "failed").
func TestAcknowledgeAndRecovery(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	cw := uint8(0)
	media := uint64(0)
	m := newMonitor(t, func(string, string) (smart.Reading, error) {
		return smart.Reading{Supported: true, Protocol: "nvme", TemperatureC: 40,
			NVMe: &smart.NVMeHealth{CriticalWarning: cw, AvailableSpare: 100, SpareThreshold: 10, MediaErrors: media}}, nil
	}, &now)
	ctx := context.Background()
	health := func() appliance.SMARTStatus {
		if err := m.Refresh(ctx, "SN1"); err != nil {
			t.Fatal(err)
		}
		ds, _ := m.Disks(ctx)
		return ds[0].SMART
	}
	if h := health(); h.Health != OK {
		t.Fatalf("healthy: %+v", h)
	}
	cw, media = 4, 1
	h := health()
	if h.Health != Replace || len(h.Findings) != 2 || h.Findings[0].Acknowledged {
		t.Fatalf("warning: %+v", h)
	}
	if err := m.Acknowledge(ctx, "SN1", "nvme-media"); err != nil {
		t.Fatal(err)
	}
	if err := m.Acknowledge(ctx, "SN1", "nope"); err == nil {
		t.Error("acknowledged a finding that does not exist")
	}
	if h := health(); !h.Findings[1].Acknowledged || h.Findings[0].Acknowledged || h.Health != Replace {
		t.Errorf("after the acknowledgement: %+v", h.Findings)
	}
	media = 2
	if h := health(); h.Findings[1].Acknowledged {
		t.Error("the acknowledgement held although the value changed")
	}
	cw, media = 0, 0
	if h := health(); h.Health != OK || len(h.Findings) != 0 {
		t.Errorf("after the warning cleared: %+v", h)
	}
	ev, _ := m.Store.Events("smart", 10)
	if len(ev) < 3 {
		t.Errorf("events %+v", ev)
	}
}

// A year of polls keeps the history bounded: the last two days in full, then a sample a day. (Every 3 hours
// here to keep the test quick; the daily thinning does not depend on the rate.)
func TestHistoryBoundedOverAYear(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	temp := 30
	m := newMonitor(t, func(string, string) (smart.Reading, error) {
		return smart.Reading{Supported: true, Protocol: "ata", TemperatureC: temp, Attributes: qemuATA.Attributes}, nil
	}, &now)
	end := now.AddDate(1, 0, 0)
	for ; now.Before(end); now = now.Add(3 * time.Hour) {
		temp = 30 + now.Hour()%10
		if err := m.Refresh(context.Background(), "SN1"); err != nil {
			t.Fatal(err)
		}
	}
	h, err := m.History(context.Background(), "SN1")
	if err != nil {
		t.Fatal(err)
	}
	var bytes int
	_ = m.Store.ForEach(bucketHistory, func(k string, v []byte) error { bytes += len(k) + len(v); return nil })
	t.Logf("history after a year of polls: %d samples, %d bytes of keys and values", len(h), bytes)
	if len(h) < 365 || len(h) > 365+16+2 {
		t.Errorf("%d samples", len(h))
	}
	for i := 1; i < len(h); i++ {
		if !h[i].Time.After(h[i-1].Time) {
			t.Fatalf("history out of order at %d", i)
		}
	}
}

// BenchmarkHistoryYear reports the bytes a disk's history takes after a year of 30-minute polls, beside what
// keeping every sample would take.
func BenchmarkHistoryYear(b *testing.B) {
	for range b.N {
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		m := newMonitor(b, func(string, string) (smart.Reading, error) {
			return smart.Reading{Supported: true, Protocol: "ata", TemperatureC: 30 + now.Hour()%10, Attributes: qemuATA.Attributes}, nil
		}, &now)
		var all int
		end := now.AddDate(1, 0, 0)
		for ; now.Before(end); now = now.Add(30 * time.Minute) {
			if err := m.Refresh(context.Background(), "SN1"); err != nil {
				b.Fatal(err)
			}
			r, _ := m.Read("", "")
			p := appliance.HistoryPoint{Time: now, TemperatureC: r.TemperatureC, Counters: counters(r)}
			v, _ := json.Marshal(p)
			all += len(historyKey("SN1", now)) + len(v)
		}
		var kept int
		_ = m.Store.ForEach(bucketHistory, func(k string, v []byte) error { kept += len(k) + len(v); return nil })
		b.ReportMetric(float64(kept), "B/disk-year")
		b.ReportMetric(float64(all), "B/disk-year-unthinned")
		b.ReportMetric(float64(kept)/float64(all), "ratio")
	}
}

// A failed self-test rates the disk "replace", even when its counters look fine.
func TestFailedSelfTest(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	m := newMonitor(t, func(string, string) (smart.Reading, error) { return qemuATA, nil }, &now)
	m.LastSelfTest = func(string, string) (smart.SelfTestResult, error) {
		return smart.SelfTestResult{Status: "failed: read element"}, nil
	}
	if err := m.Refresh(context.Background(), "SN1"); err != nil {
		t.Fatal(err)
	}
	ds, _ := m.Disks(context.Background())
	if h := ds[0].SMART; h.Health != Replace || len(h.Findings) != 1 || h.Findings[0].Key != "self-test" {
		t.Errorf("after a failed self-test: %+v", h)
	}
}
