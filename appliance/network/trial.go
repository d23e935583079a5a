package network

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
	"github.com/lawbox/appliance/netcfg/static"
)

// A change on probation (TrueNAS's "Test Changes"): applied at once, and put back by itself unless an admin
// confirms it in time, which proves the unit can still be reached. The configuration to go back to is kept
// in the store before anything changes, so a unit that restarts meanwhile goes back at its start.

const trialKey = "network-trial"

type trial struct {
	Previous []static.Port `json:"previous"` // the static ports before the change (none: all on DHCP)
	By       string        `json:"by"`
	Until    time.Time     `json:"until"`
	Reverted bool          `json:"reverted,omitempty"` // put back, and nothing changed since
	Why      string        `json:"why,omitempty"`
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// record is the change on probation or the last one put back, nil when none. m.mu is held.
func (m *Manager) record() *trial {
	var t trial
	if err := m.Store.GetJSON(state.BucketConfig, trialKey, &t); err != nil {
		if !errors.Is(err, state.ErrNotFound) {
			m.Log.Error("network change on probation unreadable", "err", err)
		}
		return nil
	}
	return &t
}

// trial is the change on probation, nil when none. m.mu is held.
func (m *Manager) trial() *trial {
	if t := m.record(); t != nil && !t.Reverted {
		return t
	}
	return nil
}

// onProbation refuses another change while one is on probation. m.mu is held.
func (m *Manager) onProbation() error {
	if t := m.trial(); t != nil {
		return fmt.Errorf("%w: a network change by %s is on probation until %s: confirm it or let it go back first", appliance.ErrConflict, t.By, t.Until.Format(time.TimeOnly))
	}
	return nil
}

// Trial implements appliance.Network.
func (m *Manager) Trial() *appliance.NetworkTrial {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.record(); t != nil {
		return &appliance.NetworkTrial{By: t.By, Until: t.Until, Reverted: t.Reverted, Why: t.Why}
	}
	return nil
}

// TryPorts implements appliance.Network.
func (m *Manager) TryPorts(_ context.Context, in []appliance.NetworkPort, window time.Duration, user string) error {
	ports, err := parsePorts(in)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.onProbation(); err != nil {
		return err
	}
	previous, err := m.load()
	if err != nil {
		return err
	}
	t := trial{Previous: previous, By: user, Until: m.now().Add(window)}
	if err := m.Store.PutJSON(state.BucketConfig, trialKey, t); err != nil {
		return fmt.Errorf("keep the network configuration to go back to: %w", err)
	}
	if err := m.set(ports); err != nil {
		m.revert("it could not be applied")
		return err
	}
	m.Log.Warn("network change on probation", "by", user, "until", t.Until)
	return nil
}

// ConfirmPorts implements appliance.Network.
func (m *Manager) ConfirmPorts(_ context.Context, user string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.trial() == nil {
		return fmt.Errorf("%w: no network change waits for confirmation", appliance.ErrConflict)
	}
	if err := m.Store.Delete(state.BucketConfig, trialKey); err != nil {
		return fmt.Errorf("confirm the network change: %w", err)
	}
	m.Log.Info("network change confirmed", "by", user)
	return nil
}

// expire puts back a change on probation whose time is up.
func (m *Manager) expire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.trial(); t != nil && !m.now().Before(t.Until) {
		m.revert("it was not confirmed in time")
	}
}

// revert puts the configuration before the change on probation back: the ports the change made static
// lose its addresses and go back to DHCP. m.mu is held.
func (m *Manager) revert(why string) {
	t := m.trial()
	if t == nil {
		return
	}
	current, _ := m.load()
	flush := slices.Clone(t.Previous)
	for _, p := range current {
		if !slices.ContainsFunc(t.Previous, func(q static.Port) bool { return q.Name == p.Name }) {
			flush = append(flush, static.Port{Name: p.Name}) // no address: the change's are taken off
		}
	}
	if err := m.Apply(flush, m.keep()); err != nil {
		m.Log.Error("take the unconfirmed network change off", "err", err)
	}
	if err := m.set(t.Previous); err != nil {
		m.Log.Error("put the network configuration back", "err", err)
	}
	t.Reverted, t.Why = true, why
	if err := m.Store.PutJSON(state.BucketConfig, trialKey, t); err != nil {
		m.Log.Error("record the network change put back", "err", err)
	}
	msg := fmt.Sprintf("the network change made by %s was put back: %s", t.By, why)
	m.Log.Warn(msg)
	if err := m.Store.AddEvent(state.Event{Time: m.now(), Source: "network", Level: "warning", Message: msg}); err != nil {
		m.Log.Error("record event", "err", err)
	}
}

// forget drops the record of a change put back once the configuration changes again. m.mu is held.
func (m *Manager) forget() {
	if t := m.record(); t != nil && t.Reverted {
		if err := m.Store.Delete(state.BucketConfig, trialKey); err != nil {
			m.Log.Error("forget the network change put back", "err", err)
		}
	}
}
