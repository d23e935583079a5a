// Package network keeps the unit's static port configuration: stored in the state store, applied at start
// and on every change through netcfg/static, and re-applied periodically (a port that was replaced or reset
// gets its addresses back). Ports not listed stay on DHCP (netd).
package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
	"github.com/lawbox/appliance/netcfg/link"
	"github.com/lawbox/appliance/netcfg/static"
)

const configKey = "network"

// Manager implements appliance.Network.
type Manager struct {
	Log    *slog.Logger
	Store  *state.Store
	Marker string                // static.MarkerFile
	Keep   func() []netip.Prefix // addresses another part owns (the service address)
	Apply  func([]static.Port, []netip.Prefix) error
	// Resolver receives the ports' name servers; nil leaves name resolution alone.
	Resolver *static.Resolver
	// Watcher follows the ports' links (its Run is the caller's); nil: none known.
	Watcher *link.Watcher
	Now     func() time.Time // time.Now

	mu sync.Mutex // one change at a time
}

var _ appliance.Network = (*Manager)(nil)

// ApplyKernel is the real Apply: read, diff, apply.
func ApplyKernel(ports []static.Port, keep []netip.Prefix) error {
	cur, err := static.Read(ports)
	if err != nil {
		return err
	}
	return static.Apply(static.Diff(cur, ports, keep))
}

func (m *Manager) load() ([]static.Port, error) {
	var ports []static.Port
	err := m.Store.GetJSON(state.BucketConfig, configKey, &ports)
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil
	}
	return ports, err
}

func (m *Manager) keep() []netip.Prefix {
	if m.Keep == nil {
		return nil
	}
	return m.Keep()
}

func (m *Manager) apply(ports []static.Port) error {
	if err := static.WriteMarker(m.Marker, ports); err != nil {
		return fmt.Errorf("tell netd the static ports: %w", err)
	}
	if err := m.Apply(ports, m.keep()); err != nil {
		return fmt.Errorf("%w: %v", appliance.ErrBadInput, err) // the kernel refused the configuration
	}
	if m.Resolver != nil {
		if err := m.Resolver.Set(static.Nameservers(ports)); err != nil {
			return fmt.Errorf("name servers: %w", err) // the unit's fault, not the configuration's
		}
	}
	return nil
}

// Links implements appliance.Network.
func (m *Manager) Links() []appliance.NetworkLink {
	if m.Watcher == nil {
		return nil
	}
	var out []appliance.NetworkLink
	for _, s := range m.Watcher.States() {
		out = append(out, appliance.NetworkLink{Name: s.Name, MAC: s.MAC, Carrier: s.Carrier, Seen: s.Seen, Since: s.Changed})
	}
	return out
}

// Nameservers implements appliance.Network.
func (m *Manager) Nameservers() []string {
	if m.Resolver == nil {
		return nil
	}
	return m.Resolver.Servers()
}

// Run applies the configuration now and every 30 s until ctx ends, and puts back a change on probation
// that was not confirmed in time (at once when the unit restarted meanwhile).
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.trial() != nil {
		m.revert("the unit restarted before it was confirmed")
	}
	m.mu.Unlock()
	for {
		m.mu.Lock()
		ports, err := m.load()
		if err == nil {
			err = m.apply(ports)
		}
		if err != nil {
			m.Log.Error("network configuration", "err", err)
		}
		m.mu.Unlock()
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			m.expire()
		}
	}
}

// Ports implements appliance.Network.
func (m *Manager) Ports() []appliance.NetworkPort {
	ports, _ := m.load()
	out := []appliance.NetworkPort{}
	for _, p := range ports {
		np := appliance.NetworkPort{Name: p.Name, Members: p.Members}
		for _, a := range p.Addresses {
			np.Addresses = append(np.Addresses, a.String())
		}
		if p.Gateway.IsValid() {
			np.Gateway = p.Gateway.String()
		}
		for _, a := range p.DNS {
			np.DNS = append(np.DNS, a.String())
		}
		out = append(out, np)
	}
	return out
}

// SetPorts implements appliance.Network: validate, apply, then store (a configuration the kernel refused
// is not kept).
func (m *Manager) SetPorts(_ context.Context, in []appliance.NetworkPort) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.onProbation(); err != nil {
		return err
	}
	ports, err := parsePorts(in)
	if err != nil {
		return err
	}
	if err := m.set(ports); err != nil {
		return err
	}
	m.forget()
	return nil
}

// set applies ports and stores them; a configuration that failed is not kept. m.mu is held.
func (m *Manager) set(ports []static.Port) error {
	if err := m.apply(ports); err != nil {
		return err
	}
	if err := m.Store.PutJSON(state.BucketConfig, configKey, ports); err != nil {
		return fmt.Errorf("save network configuration: %w", err)
	}
	m.Log.Info("network configuration applied", "ports", len(ports))
	return nil
}

// parsePorts reads and validates the ports of a request.
func parsePorts(in []appliance.NetworkPort) ([]static.Port, error) {
	var ports []static.Port
	for _, np := range in {
		p := static.Port{Name: np.Name, Members: np.Members}
		for _, a := range np.Addresses {
			pr, err := netip.ParsePrefix(a)
			if err != nil {
				return nil, fmt.Errorf("%w: port %s: address %q: give it with its prefix length, e.g. 192.0.2.11/24", appliance.ErrBadInput, np.Name, a)
			}
			p.Addresses = append(p.Addresses, pr)
		}
		if np.Gateway != "" {
			gw, err := netip.ParseAddr(np.Gateway)
			if err != nil {
				return nil, fmt.Errorf("%w: port %s: gateway %q is not an address", appliance.ErrBadInput, np.Name, np.Gateway)
			}
			p.Gateway = gw
		}
		for _, d := range np.DNS {
			a, err := netip.ParseAddr(d)
			if err != nil {
				return nil, fmt.Errorf("%w: port %s: name server %q is not an address", appliance.ErrBadInput, np.Name, d)
			}
			p.DNS = append(p.DNS, a)
		}
		ports = append(ports, p)
	}
	if err := static.Validate(ports); err != nil {
		return nil, fmt.Errorf("%w: %v", appliance.ErrBadInput, err)
	}
	return ports, nil
}
