// Package dhcp gives every wired port an IPv4 address by DHCP, the default an office network expects, and
// renews the leases. It does not do static addresses, bonds or the service address (later netcfg packages).
package dhcp

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/vishvananda/netlink"
)

// WiredPorts lists the Ethernet interfaces under sysRoot/class/net that sit on real (or emulated) hardware:
// no loopback, bridge, bond, VLAN or tunnel.
func WiredPorts(sysRoot string) ([]string, error) {
	dir := filepath.Join(sysRoot, "class/net")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		typ, err := os.ReadFile(filepath.Join(dir, n, "type"))
		if err != nil || strings.TrimSpace(string(typ)) != "1" { // ARPHRD_ETHER
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, n, "device")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, n, "wireless")); err == nil {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

// Client runs DHCP on every wired port.
type Client struct {
	Log     *slog.Logger
	SysRoot string
	// Retry is the wait before asking again on a port that got no answer.
	Retry time.Duration
	// Skip names the ports configured statically (read at every round); nil: none.
	Skip func() map[string]bool
	// Leased runs after a lease was applied (u-root's client writes its name servers to /etc/resolv.conf);
	// nil: nothing.
	Leased func() error
}

// Run brings up loopback, then keeps a lease on every wired port until ctx is done.
func (c *Client) Run(ctx context.Context) error {
	if lo, err := netlink.LinkByName("lo"); err == nil {
		if err := netlink.LinkSetUp(lo); err != nil {
			c.Log.Error("bring up lo", "err", err)
		}
	}
	for {
		next := c.round(ctx)
		skipped := c.skip()
		// A port that leaves the static configuration (an admin asked for DHCP again, or a change was put
		// back) asks for its lease at once, not at the next round.
		for deadline := time.Now().Add(next); time.Now().Before(deadline); {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(min(5*time.Second, time.Until(deadline))):
			}
			now := c.skip()
			if released(skipped, now) {
				break
			}
			skipped = now
		}
	}
}

func (c *Client) skip() map[string]bool {
	if c.Skip == nil {
		return nil
	}
	return c.Skip()
}

// released says whether a port skipped before is skipped no more.
func released(before, now map[string]bool) bool {
	for p := range before {
		if !now[p] {
			return true
		}
	}
	return false
}

// round asks for a lease on every port and returns when to ask again: half the shortest lease, or Retry
// if a port got none.
func (c *Client) round(ctx context.Context) time.Duration {
	ports, err := WiredPorts(c.SysRoot)
	if err != nil || len(ports) == 0 {
		c.Log.Warn("no wired network port", "err", err)
		return c.Retry
	}
	skip := c.skip()
	var links []netlink.Link
	for _, p := range ports {
		if skip[p] {
			continue
		}
		l, err := netlink.LinkByName(p)
		if err != nil {
			c.Log.Warn("network port vanished", "port", p, "err", err)
			continue
		}
		links = append(links, l)
	}
	if len(links) == 0 {
		return c.Retry
	}
	next := time.Hour
	got := map[string]bool{}
	for r := range dhclient.SendRequests(ctx, links, true, false, dhclient.Config{Timeout: 3 * time.Second, Retries: 2}, 10*time.Second) {
		name := r.Interface.Attrs().Name
		if r.Err != nil {
			c.Log.Info("no DHCP lease", "port", name, "err", r.Err)
			continue
		}
		if err := r.Lease.Configure(); err != nil {
			c.Log.Error("apply DHCP lease", "port", name, "err", err)
			continue
		}
		if c.Leased != nil {
			if err := c.Leased(); err != nil {
				c.Log.Error("after the DHCP lease", "port", name, "err", err)
			}
		}
		got[name] = true
		lease := time.Hour
		if p, ok := r.Lease.(*dhclient.Packet4); ok {
			lease = p.P.IPAddressLeaseTime(time.Hour)
			c.Log.Info("DHCP lease", "port", name, "address", p.Lease().String(), "lease", lease)
		}
		next = min(next, max(lease/2, 30*time.Second))
	}
	if len(got) < len(links) {
		next = min(next, c.Retry)
	}
	return next
}
