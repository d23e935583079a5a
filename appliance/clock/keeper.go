package clock

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

// DefaultServers are asked until an admin sets the office's own.
var DefaultServers = []string{"pool.ntp.org"}

// Timing: a check every Every once a server answered, every Retry until then; the clock is set when it
// is off by more than StepAbove (smaller errors are left: the kernel's clock drifts by milliseconds a day).
const (
	Every     = 15 * time.Minute
	Retry     = time.Minute
	StepAbove = time.Second
)

const serversKey = "time-servers"

// Keeper checks the clock against the time servers and sets it when it is off.
type Keeper struct {
	Log   *slog.Logger
	Store *state.Store            // where the servers are kept (nil: DefaultServers only)
	Now   func() time.Time        // the clock (time.Now)
	Set   func(t time.Time) error // sets it (the daemon: clock_settime)
	Query func(ctx context.Context, server string, now func() time.Time) (Sample, error)

	mu   sync.Mutex
	st   appliance.ClockStatus
	wake chan struct{} // a change of servers: check now
}

// Run checks until ctx ends.
func (k *Keeper) Run(ctx context.Context) error {
	k.mu.Lock()
	k.st.Servers = k.servers()
	k.st.Since = k.Now()
	if k.wake == nil {
		k.wake = make(chan struct{}, 1)
	}
	wake := k.wake
	k.mu.Unlock()
	for {
		wait := Retry
		if k.check(ctx) {
			wait = Every
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-time.After(wait):
		}
	}
}

func (k *Keeper) servers() []string {
	var s []string
	if k.Store != nil && k.Store.GetJSON(state.BucketConfig, serversKey, &s) == nil {
		return s
	}
	return slices.Clone(DefaultServers)
}

// check asks every server, takes the median of the answers' offsets and sets the clock when it is off;
// it says whether a server answered.
func (k *Keeper) check(ctx context.Context) bool {
	k.mu.Lock()
	servers := slices.Clone(k.st.Servers)
	k.mu.Unlock()
	var samples []Sample
	var errs []string
	for _, srv := range servers {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := k.Query(qctx, srv, k.Now)
		cancel()
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		samples = append(samples, s)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(samples) == 0 {
		if len(servers) > 0 {
			k.st.Error = strings.Join(errs, "; ")
			k.Log.Warn("no time server answered", "servers", servers, "err", k.st.Error)
		}
		return false
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i].Offset < samples[j].Offset })
	s := samples[len(samples)/2]
	k.st.Checked, k.st.Server, k.st.OffsetS, k.st.Error = k.Now(), s.Server, s.Offset.Seconds(), ""
	if s.Offset > StepAbove || s.Offset < -StepAbove {
		if err := k.Set(k.Now().Add(s.Offset)); err != nil {
			k.Log.Error("set the clock", "offset", s.Offset, "server", s.Server, "err", err)
			return true
		}
		k.Log.Warn("clock set from a time server", "offset", s.Offset, "server", s.Server, "rtt", s.RTT, "stratum", s.Stratum)
		k.st.Stepped, k.st.OffsetS = k.Now(), 0
	}
	return true
}

// Clock reports the last check.
func (k *Keeper) Clock() appliance.ClockStatus {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.st
	st.Servers = slices.Clone(st.Servers)
	if st.Servers == nil {
		st.Servers = k.servers()
	}
	return st
}

// serverName is a host name or an address, with an optional port.
var (
	serverName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)
	serverPort = regexp.MustCompile(`^[0-9]{1,5}$`)
)

// SetTimeServers sets the servers asked from the next check on.
func (k *Keeper) SetTimeServers(servers []string) error {
	if len(servers) > 4 {
		return fmt.Errorf("%w: at most 4 time servers", appliance.ErrBadInput)
	}
	var clean []string
	for _, s := range servers {
		s = strings.TrimSpace(s)
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			host, port = s, ""
		}
		if !serverName.MatchString(host) && net.ParseIP(host) == nil || port != "" && !serverPort.MatchString(port) {
			return fmt.Errorf("%w: time server %q: a host name or an address (and :port)", appliance.ErrBadInput, s)
		}
		clean = append(clean, s)
	}
	if k.Store == nil {
		return fmt.Errorf("time servers: %w: no settings store yet", appliance.ErrUnavailable)
	}
	if err := k.Store.PutJSON(state.BucketConfig, serversKey, clean); err != nil {
		return fmt.Errorf("save the time servers: %w", err)
	}
	k.mu.Lock()
	k.st.Servers, k.st.Checked, k.st.Error, k.st.Since = clean, time.Time{}, "", k.Now()
	if k.wake != nil {
		select {
		case k.wake <- struct{}{}:
		default:
		}
	}
	k.mu.Unlock()
	k.Log.Info("time servers set", "servers", clean)
	return nil
}

var _ appliance.Clock = (*Keeper)(nil)
