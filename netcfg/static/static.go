// Package static gives network ports fixed addresses: the desired state is a list of ports with their
// prefixes, Diff compares it with what the kernel has, and Apply is the only code that changes it (through
// netlink). A port listed here is not touched by DHCP (netd skips the ports named in the marker file).
package static

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Port is one port's desired configuration.
type Port struct {
	Name      string         `json:"name"` // an interface name (eth1) or the port's MAC address (stable across boots)
	Addresses []netip.Prefix `json:"addresses"`
	Gateway   netip.Addr     `json:"gateway,omitzero"`
	DNS       []netip.Addr   `json:"dns,omitempty"` // name servers, for the whole unit
	// Members makes the port an active-backup bond of these ports (names or MAC addresses): one carries the
	// traffic, the other takes over within a link check (100 ms) when its cable or switch port fails.
	// Name is then the bond's own name (bond0).
	Members []string `json:"members,omitempty"`
}

// Change is one step of Apply.
type Change struct {
	Op     string // "bond", "enslave", "up", "add", "del", "route"
	Port   string
	Bond   string // of "enslave"
	Prefix netip.Prefix
	Via    netip.Addr
}

func (c Change) String() string {
	switch c.Op {
	case "up":
		return "bring up " + c.Port
	case "route":
		return fmt.Sprintf("default route via %s on %s", c.Via, c.Port)
	case "bond":
		return "create the active-backup bond " + c.Port
	case "enslave":
		return fmt.Sprintf("join %s to the bond %s", c.Port, c.Bond)
	}
	return fmt.Sprintf("%s %s on %s", c.Op, c.Prefix, c.Port)
}

// Current is what the kernel has on one port.
type Current struct {
	Exists    bool   // false only for a bond not created yet
	Master    string // the bond this port belongs to, if any
	Up        bool
	Addresses []netip.Prefix
	Gateway   netip.Addr // default route through this port, if any
}

// Diff lists the changes that make current match desired. Addresses in keep (the service address, which
// the pair part owns) are never removed; link-local addresses are left alone.
func Diff(current map[string]Current, desired []Port, keep []netip.Prefix) []Change {
	var out []Change
	for _, p := range desired {
		cur := current[p.Name]
		if len(p.Members) > 0 && !cur.Exists {
			out = append(out, Change{Op: "bond", Port: p.Name})
		}
		for _, m := range p.Members {
			mc := current[m]
			if mc.Master == p.Name {
				continue
			}
			for _, a := range mc.Addresses { // a member's own addresses (DHCP's, before) would answer beside the bond
				if !a.Addr().IsLinkLocalUnicast() {
					out = append(out, Change{Op: "del", Port: m, Prefix: a})
				}
			}
			out = append(out, Change{Op: "enslave", Port: m, Bond: p.Name})
		}
		if !cur.Up {
			out = append(out, Change{Op: "up", Port: p.Name})
		}
		for _, a := range p.Addresses {
			if !slices.Contains(cur.Addresses, a) {
				out = append(out, Change{Op: "add", Port: p.Name, Prefix: a})
			}
		}
		for _, a := range cur.Addresses {
			if a.Addr().IsLinkLocalUnicast() || slices.Contains(p.Addresses, a) || slices.Contains(keep, a) {
				continue
			}
			out = append(out, Change{Op: "del", Port: p.Name, Prefix: a})
		}
		if p.Gateway.IsValid() && cur.Gateway != p.Gateway {
			out = append(out, Change{Op: "route", Port: p.Name, Via: p.Gateway})
		}
	}
	return out
}

// Validate checks a desired configuration before anything is applied.
func Validate(ports []Port) error {
	seen := map[string]bool{}
	for _, p := range ports {
		names := append([]string{p.Name}, p.Members...)
		for i, n := range names {
			if _, err := net.ParseMAC(n); err == nil && (i > 0 || len(p.Members) == 0) {
				// a MAC address (a bond's own name is an interface name: it has no MAC of its own)
			} else if n == "" || strings.ContainsAny(n, "/: ") || len(n) > unix.IFNAMSIZ-1 {
				return fmt.Errorf("port name %q is not valid", n)
			}
			if seen[n] {
				return fmt.Errorf("port %s is listed twice", n)
			}
			seen[n] = true
		}
		if len(p.Members) == 1 {
			return fmt.Errorf("bond %s: one member; a bond needs two ports", p.Name)
		}
		if len(p.Addresses) == 0 {
			return fmt.Errorf("port %s: no address", p.Name)
		}
		for _, a := range p.Addresses {
			if !a.IsValid() || a.Addr().IsUnspecified() || a.Addr().IsMulticast() || a.Addr().IsLoopback() {
				return fmt.Errorf("port %s: %s is not a host address", p.Name, a)
			}
		}
		for _, a := range p.DNS {
			if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
				return fmt.Errorf("port %s: name server %s is not a host address", p.Name, a)
			}
		}
		if p.Gateway.IsValid() && !slices.ContainsFunc(p.Addresses, func(a netip.Prefix) bool { return a.Masked().Contains(p.Gateway) }) {
			return fmt.Errorf("port %s: gateway %s is not on any of its networks", p.Name, p.Gateway)
		}
	}
	if ns := Nameservers(ports); len(ns) > maxNameservers {
		return fmt.Errorf("%d name servers: the resolver uses at most %d", len(ns), maxNameservers)
	}
	return nil
}

// maxNameservers is the C library's limit (MAXNS): servers after the third are never asked.
const maxNameservers = 3

// Nameservers lists the ports' name servers in order, each once.
func Nameservers(ports []Port) []netip.Addr {
	var out []netip.Addr
	for _, p := range ports {
		for _, a := range p.DNS {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// Link finds a port by name or MAC address.
func Link(name string) (netlink.Link, error) {
	mac, err := net.ParseMAC(name)
	if err != nil {
		return netlink.LinkByName(name)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		if MAC(l) == mac.String() && l.Type() == "device" {
			return l, nil
		}
	}
	return nil, fmt.Errorf("no port has MAC address %s", mac)
}

// MAC is a port's own (permanent) MAC address: a bond gives its members its address while they are in it.
func MAC(l netlink.Link) string {
	if hw := l.Attrs().PermHWAddr; len(hw) > 0 {
		return hw.String()
	}
	return l.Attrs().HardwareAddr.String()
}

// Read returns the kernel's view of the ports, and of the bonds' members (a bond not created yet is
// absent).
func Read(ports []Port) (map[string]Current, error) {
	out := map[string]Current{}
	for _, p := range ports {
		l, err := Link(p.Name)
		if len(p.Members) > 0 {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				l, err = nil, nil
			}
			for _, m := range p.Members {
				ml, err := Link(m)
				if err != nil {
					return nil, fmt.Errorf("port %s: %w", m, err)
				}
				if out[m], err = current(ml); err != nil {
					return nil, err
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("port %s: %w", p.Name, err)
		}
		if l != nil {
			if out[p.Name], err = current(l); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// current reads one port.
func current(l netlink.Link) (Current, error) {
	n := l.Attrs().Name
	c := Current{Exists: true, Up: l.Attrs().Flags&unix.IFF_UP != 0}
	if mi := l.Attrs().MasterIndex; mi != 0 {
		if m, err := netlink.LinkByIndex(mi); err == nil {
			c.Master = m.Attrs().Name
		}
	}
	addrs, err := netlink.AddrList(l, unix.AF_UNSPEC)
	if err != nil {
		return c, fmt.Errorf("addresses of %s: %w", n, err)
	}
	for _, a := range addrs {
		if p, ok := Prefix(a.IPNet.IP, a.IPNet.Mask); ok {
			c.Addresses = append(c.Addresses, p)
		}
	}
	routes, err := netlink.RouteList(l, unix.AF_INET)
	if err != nil {
		return c, fmt.Errorf("routes of %s: %w", n, err)
	}
	for _, r := range routes {
		if r.Dst == nil && r.Gw != nil {
			c.Gateway, _ = netip.AddrFromSlice(r.Gw.To4())
		}
	}
	return c, nil
}

// Prefix converts a kernel address.
func Prefix(ip net.IP, mask net.IPMask) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// Apply makes the changes. It stops at the first failure.
func Apply(changes []Change) error {
	for _, c := range changes {
		if c.Op == "bond" {
			b := netlink.NewLinkBond(netlink.LinkAttrs{Name: c.Port})
			b.Mode, b.Miimon = netlink.BOND_MODE_ACTIVE_BACKUP, 100
			if err := netlink.LinkAdd(b); err != nil {
				return fmt.Errorf("%s: %w", c, err)
			}
			continue
		}
		l, err := Link(c.Port)
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
		switch c.Op {
		case "enslave":
			var b netlink.Link
			if b, err = netlink.LinkByName(c.Bond); err == nil {
				if err = netlink.LinkSetDown(l); err == nil { // a port joins a bond down; the bond brings it up
					err = netlink.LinkSetMaster(l, b)
				}
			}
		case "up":
			err = netlink.LinkSetUp(l)
		case "add":
			err = netlink.AddrAdd(l, Addr(c.Prefix))
			if errors.Is(err, unix.EEXIST) {
				err = nil
			}
		case "del":
			err = netlink.AddrDel(l, Addr(c.Prefix))
		case "route":
			err = netlink.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: c.Via.AsSlice()})
		}
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
	}
	return nil
}

// Addr is the netlink form of p.
func Addr(p netip.Prefix) *netlink.Addr {
	a, _ := netlink.ParseAddr(p.String())
	return a
}

// MarkerFile lists the statically configured ports for netd (one name per line).
const MarkerFile = "/run/appliance/static-ports"

// WriteMarker records which ports are static.
func WriteMarker(path string, ports []Port) error {
	var b strings.Builder
	for _, p := range ports {
		for _, n := range append([]string{p.Name}, p.Members...) {
			if l, err := Link(n); err == nil {
				b.WriteString(l.Attrs().Name + "\n")
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// ReadMarker returns the static ports (none when the file is absent).
func ReadMarker(path string) map[string]bool {
	b, _ := os.ReadFile(path)
	out := map[string]bool{}
	for _, n := range strings.Fields(string(b)) {
		out[n] = true
	}
	return out
}

// Resolver is where name servers are written. While static ones are set, Marker holds the file they make
// and Conf is a copy of it; a DHCP lease (whose client writes Conf) is moved to DHCPConf by Leased, so a
// renewal does not undo the administrator's choice; when they are removed, the last lease's servers go
// back to Conf.
type Resolver struct {
	Conf, DHCPConf, Marker string
}

// SystemResolver is the unit's.
var SystemResolver = Resolver{Conf: "/etc/resolv.conf", DHCPConf: "/run/appliance/resolv.conf.dhcp", Marker: "/run/appliance/static-dns"}

// Set makes servers the unit's name servers, or with none hands the resolver back to DHCP. Files are
// replaced by rename, so a lookup never reads half a file; an unchanged file is not rewritten.
func (r Resolver) Set(servers []netip.Addr) error {
	if len(servers) == 0 {
		if _, err := os.Stat(r.Marker); err != nil {
			return nil // DHCP's already
		}
		if b, err := os.ReadFile(r.DHCPConf); err == nil {
			if err := replaceFile(r.Conf, b); err != nil {
				return fmt.Errorf("restore the DHCP name servers: %w", err)
			}
		}
		return os.Remove(r.Marker)
	}
	var b strings.Builder
	b.WriteString("# Written by the appliance: the name servers of the static network configuration.\n")
	for _, a := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	want := []byte(b.String())
	if cur, err := os.ReadFile(r.Marker); err != nil || !bytes.Equal(cur, want) {
		if err := os.MkdirAll(filepath.Dir(r.Marker), 0o755); err != nil {
			return err
		}
		if err := replaceFile(r.Marker, want); err != nil {
			return fmt.Errorf("keep the static name servers: %w", err)
		}
	}
	return r.restoreStatic(want)
}

// Leased is called after a DHCP client wrote a lease's name servers to Conf: with static servers set, the
// lease's file moves to DHCPConf and the static one comes back.
func (r Resolver) Leased() error {
	want, err := os.ReadFile(r.Marker)
	if err != nil {
		return nil // no static servers: the lease's stand
	}
	if cur, err := os.ReadFile(r.Conf); err == nil && !bytes.Equal(cur, want) {
		if err := replaceFile(r.DHCPConf, cur); err != nil {
			return fmt.Errorf("keep the lease's name servers aside: %w", err)
		}
	}
	return r.restoreStatic(want)
}

func (r Resolver) restoreStatic(want []byte) error {
	if cur, err := os.ReadFile(r.Conf); err == nil && bytes.Equal(cur, want) {
		return nil
	}
	if err := replaceFile(r.Conf, want); err != nil {
		return fmt.Errorf("write %s: %w", r.Conf, err)
	}
	return nil
}

// Servers reads the name servers in effect.
func (r Resolver) Servers() []string {
	b, _ := os.ReadFile(r.Conf)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out
}

func replaceFile(path string, b []byte) error {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
