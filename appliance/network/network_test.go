package network

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
	"github.com/lawbox/appliance/netcfg/static"
)

// A configuration the kernel refuses is the admin's to fix (ErrBadInput); a name-server file the unit cannot
// write is the unit's fault and says so. Neither is kept.
func TestSetPortsErrors(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	refuse := errors.New("file exists")
	var applyErr error
	m := &Manager{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: st, Marker: filepath.Join(dir, "marker"),
		Apply:    func([]static.Port, []netip.Prefix) error { return applyErr },
		Resolver: &static.Resolver{Conf: filepath.Join(dir, "missing", "resolv.conf"), DHCPConf: filepath.Join(dir, "dhcp"), Marker: filepath.Join(dir, "dns")}}
	port := []appliance.NetworkPort{{Name: "lan0", Addresses: []string{"192.0.2.11/24"}, DNS: []string{"192.0.2.53"}}}

	applyErr = refuse
	if err := m.SetPorts(context.Background(), port); !errors.Is(err, appliance.ErrBadInput) {
		t.Errorf("refused by the kernel: %v, want bad input", err)
	}
	applyErr = nil
	err = m.SetPorts(context.Background(), port)
	if err == nil || errors.Is(err, appliance.ErrBadInput) {
		t.Errorf("resolv.conf not writable: %v, want the unit's error", err)
	}
	if got := m.Ports(); len(got) != 0 {
		t.Errorf("a configuration that failed was kept: %+v", got)
	}
	m.Resolver.Conf = filepath.Join(dir, "resolv.conf")
	if err := m.SetPorts(context.Background(), port); err != nil {
		t.Fatal(err)
	}
	if got := m.Ports(); len(got) != 1 || len(got[0].DNS) != 1 || got[0].DNS[0] != "192.0.2.53" {
		t.Errorf("applied configuration: %+v", got)
	}
}

// A change on probation: applied at once; another change meanwhile is refused; unconfirmed, it is put
// back when its time is up (the ports it made static lose its addresses and go back to DHCP), and the
// record says so; confirmed, it stays. A unit that restarts during the probation goes back at its start.
func TestTryPortsRevertsUnlessConfirmed(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var applied [][]static.Port
	m := &Manager{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: st, Marker: filepath.Join(dir, "marker"),
		Apply: func(p []static.Port, _ []netip.Prefix) error { applied = append(applied, p); return nil },
		Now:   func() time.Time { return now }}
	ctx := context.Background()
	lan := []appliance.NetworkPort{{Name: "lan0", Addresses: []string{"192.0.2.11/24"}}}
	if err := m.SetPorts(ctx, lan); err != nil {
		t.Fatal(err)
	}
	wrong := []appliance.NetworkPort{{Name: "lan0", Addresses: []string{"192.0.2.99/24"}}, {Name: "lan1", Addresses: []string{"198.51.100.7/24"}}}
	if err := m.TryPorts(ctx, wrong, time.Minute, "admin"); err != nil {
		t.Fatal(err)
	}
	if tr := m.Trial(); tr == nil || tr.Reverted || !tr.Until.Equal(now.Add(time.Minute)) || len(m.Ports()) != 2 {
		t.Fatalf("on probation: %+v, ports %+v", tr, m.Ports())
	}
	if err := m.TryPorts(ctx, lan, time.Minute, "admin"); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("a second change on probation: %v", err)
	}
	if err := m.SetPorts(ctx, lan); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("a change while one is on probation: %v", err)
	}
	now = now.Add(59 * time.Second)
	m.expire()
	if tr := m.Trial(); tr == nil || tr.Reverted {
		t.Fatalf("put back before its time: %+v", tr)
	}
	now = now.Add(time.Second)
	applied = nil
	m.expire()
	tr := m.Trial()
	if got := m.Ports(); len(got) != 1 || got[0].Addresses[0] != "192.0.2.11/24" || tr == nil || !tr.Reverted || tr.Why != "it was not confirmed in time" {
		t.Fatalf("after its time: ports %+v, record %+v", got, tr)
	}
	// lan1 was static only in the change: its addresses are taken off (a port with none), then DHCP's.
	if len(applied) < 1 || len(applied[0]) != 2 || applied[0][1].Name != "lan1" || len(applied[0][1].Addresses) != 0 {
		t.Errorf("applied when putting back: %+v", applied)
	}
	if ev, _ := st.Events("network", 5); len(ev) != 1 || ev[0].Level != "warning" {
		t.Errorf("events: %+v", ev)
	}

	// Confirmed: it stays, and a change made since drops the record of the one put back.
	if err := m.TryPorts(ctx, wrong, time.Minute, "admin"); err != nil {
		t.Fatal(err)
	}
	if err := m.ConfirmPorts(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	m.expire()
	if got := m.Ports(); len(got) != 2 || m.Trial() != nil {
		t.Errorf("confirmed: ports %+v, record %+v", got, m.Trial())
	}
	if err := m.ConfirmPorts(ctx, "admin"); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("confirming nothing: %v", err)
	}

	// Restarted during the probation: back at the start.
	if err := m.TryPorts(ctx, lan, time.Minute, "admin"); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	cancel()
	m.Run(rctx)
	if tr := m.Trial(); len(m.Ports()) != 2 || tr == nil || tr.Why != "the unit restarted before it was confirmed" {
		t.Errorf("after a restart during the probation: ports %+v, record %+v", m.Ports(), tr)
	}
}
