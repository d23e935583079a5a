package network

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"

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
