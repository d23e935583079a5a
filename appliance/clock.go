package appliance

import (
	"fmt"
	"time"
)

// ClockStatus is how right the unit's clock is, as its time servers say.
type ClockStatus struct {
	Servers []string  `json:"servers"`          // the time servers asked, in order
	Checked time.Time `json:"checked,omitzero"` // the last time a server answered
	Server  string    `json:"server,omitempty"` // which one
	OffsetS float64   `json:"offset_s"`         // how far off the clock was then (positive: behind)
	Stepped time.Time `json:"stepped,omitzero"` // the last time the unit set its clock
	Error   string    `json:"error,omitempty"`  // why the last check found no answer
	Since   time.Time `json:"since,omitzero"`   // when the checks started (for "never answered")
}

// Clock keeps the unit's clock right.
type Clock interface {
	Clock() ClockStatus
	// SetTimeServers sets the time servers (host names or addresses, at most 4); ErrBadInput for a bad one.
	SetTimeServers(servers []string) error
}

// ClockUnchecked is how long the clock may go without an answer from a time server before it is an
// alert; ClockOff is how far off it may be found after the unit tried to set it.
const (
	ClockUnchecked = 24 * time.Hour
	ClockOff       = 5 * time.Second
)

// ClockAlerts: no time server answered for a day (the clock drifts: certificates and the pair's leases
// depend on it), or the clock stays off after the unit set it.
func ClockAlerts(c ClockStatus, now time.Time) []Alert {
	var out []Alert
	last := c.Checked
	if last.IsZero() {
		last = c.Since
	}
	if len(c.Servers) == 0 {
		out = append(out, NewAlert("warning", "no time server is set: the clock is not checked"))
	} else if !last.IsZero() && now.Sub(last) > ClockUnchecked {
		out = append(out, NewAlert("warning", "no time server has answered for %s: the clock is not checked", fmt.Sprintf("%.0f h", now.Sub(last).Hours())))
	}
	if off := time.Duration(c.OffsetS * float64(time.Second)); !c.Checked.IsZero() && (off > ClockOff || off < -ClockOff) {
		out = append(out, NewAlert("critical", "the clock is off by %s and could not be set", fmt.Sprintf("%.1f s", c.OffsetS)))
	}
	return out
}
