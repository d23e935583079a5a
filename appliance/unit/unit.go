// Package unit implements appliance.System for the running unit: what it is (version, host name, uptime),
// what it sees (disks), what PID 1 runs, and powering it off. It holds no state.
package unit

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/control"
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
	st := appliance.Status{Version: u.Version, Hostname: host, Disks: disks}
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
