// Package unit implements appliance.System for the running unit: what it is (version, host name, uptime),
// what it sees (disks), what PID 1 runs, powering it off, and the office's time zone.
package unit

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // the firmware has no zoneinfo files: the time zones are in the binary

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/control"
	"github.com/lawbox/appliance/appliance/state"
	"github.com/lawbox/appliance/appliance/supervise"
	"github.com/lawbox/appliance/hw/disk"
)

// Unit is the running appliance.
type Unit struct {
	Version  string
	SysRoot  string // "/sys"
	ProcRoot string // "/proc"
	Init     *control.Client
	Parts    func() []supervise.Status // the daemon's parts (nil: none)
	Store    *state.Store              // where the time zone is kept

	mu   sync.Mutex
	zone *time.Location
}

// zoneKey keeps the office's time zone (its IANA name) in the store's configuration.
const zoneKey = "time-zone"

// TimeZone is the office's time zone: UTC until one is set.
func (u *Unit) TimeZone() *time.Location {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.zone == nil {
		u.zone = time.UTC
		var name string
		if u.Store != nil && u.Store.GetJSON(state.BucketConfig, zoneKey, &name) == nil {
			if loc, err := time.LoadLocation(name); err == nil {
				u.zone = loc
			}
		}
	}
	return u.zone
}

// SetTimeZone sets the office's time zone by its IANA name.
func (u *Unit) SetTimeZone(name string) error {
	loc, err := LoadZone(name)
	if err != nil {
		return err
	}
	if err := u.Store.PutJSON(state.BucketConfig, zoneKey, loc.String()); err != nil {
		return fmt.Errorf("save the time zone: %w", err)
	}
	u.mu.Lock()
	u.zone = loc
	u.mu.Unlock()
	return nil
}

// LoadZone reads a time zone by its IANA name, refusing what is not one ("Local", a path).
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" { // Local: whatever the machine says, not a zone

		return nil, fmt.Errorf("%w: time zone %q: give one such as Europe/Paris", appliance.ErrBadInput, name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%w: time zone %q is not known: give one such as Europe/Paris", appliance.ErrBadInput, name)
	}
	return loc, nil
}

var _ appliance.System = (*Unit)(nil)

// Status reports the unit. A failure to reach PID 1 leaves the services out rather than failing.
func (u *Unit) Status(ctx context.Context) (appliance.Status, error) {
	host, err := os.Hostname()
	if err != nil {
		return appliance.Status{}, fmt.Errorf("hostname: %w", err)
	}
	disks, err := disk.List(u.SysRoot)
	if err != nil {
		return appliance.Status{}, err
	}
	st := appliance.Status{Version: u.Version, Hostname: host, Disks: disks, TimeZone: u.TimeZone().String()}
	if st.Disks == nil {
		st.Disks = []appliance.Disk{}
	}
	if b, err := os.ReadFile(u.ProcRoot + "/uptime"); err == nil {
		st.UptimeS = ParseUptime(string(b))
	}
	if u.Init != nil {
		st.Services, _ = u.Init.Services(ctx)
	}
	if u.Parts != nil {
		st.Parts = u.Parts()
	}
	return st, nil
}

// ParseUptime returns the whole seconds of /proc/uptime's first field.
func ParseUptime(s string) int64 {
	f, _, _ := strings.Cut(strings.TrimSpace(s), " ")
	v, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return 0
	}
	return int64(v)
}

// Shutdown asks PID 1 to power off or reboot.
func (u *Unit) Shutdown(ctx context.Context, reboot bool) error {
	if u.Init == nil {
		return fmt.Errorf("shutdown: %w: no init to ask", appliance.ErrUnavailable)
	}
	return u.Init.Shutdown(ctx, reboot)
}
