// Package health turns SMART readings into a verdict an office can act on (ok, watch, replace, failed),
// keeps a bounded history, schedules polls and self-tests, and remembers which alerts an admin has seen.
package health

import (
	"fmt"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/hw/smart"
)

// Health levels, from best to worst.
const (
	OK      = "ok"
	Watch   = "watch"
	Replace = "replace"
	Failed  = "failed"
	// Cable marks a finding about the link, not the disk: it never changes the disk's level.
	Cable = "cable"
)

var rank = map[string]int{OK: 0, Cable: 0, Watch: 1, Replace: 2, Failed: 3}

// Worse returns the worse of two levels.
func Worse(a, b string) string {
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// ataRule grades one raw counter: above watchAt it is "watch", at or above replaceAt "replace" (0: never).
type ataRule struct {
	watchAbove, replaceAt uint64
	what                  string
}

// The attributes that predict failure in Backblaze's drive statistics, graded by their raw counters.
var ataRules = map[uint8]ataRule{
	5:   {0, 100, "reallocated sectors"},
	10:  {0, 1, "spin-up retries"},
	184: {0, 1, "end-to-end data path errors"},
	187: {0, 1, "uncorrectable errors reported to the host"},
	188: {0, 0, "command timeouts"},
	196: {0, 0, "reallocation events"},
	197: {0, 10, "sectors waiting to be reallocated"},
	198: {0, 1, "sectors that could not be read offline"},
	201: {0, 0, "soft read errors"},
}

// Temperature limits (°C) above which a disk is "watch": spinning disks age fast above 55, NVMe throttles
// around 70.
const (
	hotATA  = 55
	hotNVMe = 70
)

// HotLimit is the temperature (°C) above which the disk of r runs hot.
func HotLimit(r smart.Reading) int {
	if r.NVMe != nil {
		return hotNVMe
	}
	return hotATA
}

// Evaluate grades a reading. Each finding has a stable key (for acknowledgement) and the value it was
// judged on; the level is the worst finding's, computed from this reading alone, so a disk whose warning
// clears goes back to ok.
func Evaluate(r smart.Reading) (string, []appliance.Finding) {
	if !r.Supported {
		return "", nil
	}
	var fs []appliance.Finding
	add := func(key, level string, value uint64, format string, args ...any) {
		fs = append(fs, appliance.Finding{Key: key, Level: level, Value: value, Message: fmt.Sprintf(format, args...)})
	}
	for _, a := range r.Attributes {
		if a.Prefail && a.Threshold > 0 && a.Value <= a.Threshold {
			add(fmt.Sprintf("ata-%d-threshold", a.ID), Failed, uint64(a.Value),
				"the disk reports itself failing: %s (attribute %d) is %d, at or below its limit %d", a.Name, a.ID, a.Value, a.Threshold)
		}
		if a.ID == 199 && a.Raw > 0 {
			add("ata-199", Cable, a.Raw, "%d transfer errors on the cable (attribute 199): check or replace the SATA cable, not the disk", a.Raw)
			continue
		}
		rule, ok := ataRules[a.ID]
		if !ok || a.Raw <= rule.watchAbove {
			continue
		}
		level := Watch
		if rule.replaceAt > 0 && a.Raw >= rule.replaceAt {
			level = Replace
		}
		add(fmt.Sprintf("ata-%d", a.ID), level, a.Raw, "%d %s (attribute %d)", a.Raw, rule.what, a.ID)
	}
	hot := HotLimit(r)
	if n := r.NVMe; n != nil {
		cw := n.CriticalWarning
		for _, b := range []struct {
			bit   uint8
			level string
			what  string
		}{
			{0x08, Failed, "the disk has made itself read-only"},
			{0x04, Replace, "the disk reports degraded reliability (media or internal errors)"},
			{0x01, Replace, "spare capacity below the disk's threshold"},
			{0x10, Replace, "the disk's volatile memory backup has failed"},
			{0x02, Watch, "temperature outside the disk's limits"},
		} {
			if cw&b.bit != 0 {
				add(fmt.Sprintf("nvme-warning-%d", b.bit), b.level, uint64(cw), "NVMe critical warning: %s", b.what)
			}
		}
		switch {
		case n.PercentUsed >= 100:
			add("nvme-used", Replace, uint64(n.PercentUsed), "rated endurance used up (%d %%)", n.PercentUsed)
		case n.PercentUsed >= 90:
			add("nvme-used", Watch, uint64(n.PercentUsed), "%d %% of the rated endurance used", n.PercentUsed)
		}
		if n.MediaErrors > 0 {
			add("nvme-media", Watch, n.MediaErrors, "%d media and data integrity errors", n.MediaErrors)
		}
	}
	if r.TemperatureC > hot {
		add("temperature", Watch, uint64(r.TemperatureC), "running hot: %d °C (limit %d °C); check the fans and airflow", r.TemperatureC, hot)
	}
	level := OK
	for _, f := range fs {
		level = Worse(level, f.Level)
	}
	return level, fs
}
