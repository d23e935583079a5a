// Package tunnel keeps the pair's encrypted link: a WireGuard interface (the kernel's module) between the
// two units of a pair, inside which the documents' replication runs, so that the office's files never cross
// the LAN in the clear. Both units derive the link's keys from secrets of the pair (Keys): nothing is
// exchanged, and a unit of another pair (another pair key) cannot join it.
//
// The link's inner addresses are in 198.19.255.0/30, in the range reserved for benchmarking (RFC 2544),
// which no office network uses, so they never collide with the LAN's. The outer end (the partner's
// address the packets go to) is the caller's choice and changes when the path to the partner does (a
// direct cable pulled); connections inside the link keep their addresses and survive it.
package tunnel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Port is the link's UDP port on both units.
const Port = 51820

// MTU leaves room for WireGuard's 80 bytes (IPv6 outer header) in a 1500-byte Ethernet frame.
const MTU = 1420

// inner is the link's network: the unit whose name sorts first is .1, the other .2.
var inner = netip.MustParsePrefix("198.19.255.0/30")

// Inside reports whether a is one of the link's inner addresses.
func Inside(a netip.Addr) bool { return inner.Contains(a) }

// Keys are one unit's end of the link.
type Keys struct {
	Private, PeerPublic, Shared wgtypes.Key
	Local, Remote               netip.Addr // the inner addresses
}

// Derive makes a unit's keys from the pair's secrets: secret(label) answers the same bytes on both units
// (pair.Node.Secret), self and peer are the two units' names. Each unit's private key is derived from its
// own name, so each computes its partner's public key; the preshared key adds a symmetric layer (WireGuard's
// defence against a future break of Curve25519).
func Derive(secret func(label string) []byte, self, peer string) (Keys, error) {
	if self == peer {
		return Keys{}, fmt.Errorf("pair link: both units are named %q", self)
	}
	key := func(label string) (wgtypes.Key, error) {
		b := secret(label)
		if len(b) < wgtypes.KeyLen {
			return wgtypes.Key{}, errors.New("pair link: not paired")
		}
		return wgtypes.NewKey(b[:wgtypes.KeyLen])
	}
	var k Keys
	mine, err := key("pair link key of " + self)
	if err != nil {
		return Keys{}, err
	}
	theirs, err := key("pair link key of " + peer)
	if err != nil {
		return Keys{}, err
	}
	if k.Shared, err = key("pair link preshared key"); err != nil {
		return Keys{}, err
	}
	k.Private, k.PeerPublic = clamp(mine), clamp(theirs).PublicKey()
	one, two := inner.Addr().Next(), inner.Addr().Next().Next()
	k.Local, k.Remote = one, two
	if self > peer {
		k.Local, k.Remote = two, one
	}
	return k, nil
}

// clamp makes 32 random bytes a Curve25519 private key (what wgtypes.GeneratePrivateKey does).
func clamp(k wgtypes.Key) wgtypes.Key {
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k
}

// Link is the WireGuard interface on this unit.
type Link struct {
	Name string // "lawbox-pair" when empty

	mu       sync.Mutex
	keys     *Keys      // what the interface was given (nil: nothing yet)
	endpoint netip.Addr // where it sends
}

func (l *Link) name() string {
	if l.Name == "" {
		return "lawbox-pair"
	}
	return l.Name
}

// Set makes the interface (a no-op for what exists already), gives it the keys and the inner address, and
// sends its packets to endpoint (the partner's address on the path in use). Asked again with the same keys
// it changes nothing, or only the endpoint: the session and the connections inside go on. A keepalive
// every 5 s keeps both ends' view of the path fresh; each end answers to the address the last packet came
// from.
func (l *Link) Set(k Keys, endpoint netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	link, err := netlink.LinkByName(l.name())
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU = l.name(), MTU
		if err := netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: attrs}); err != nil {
			return fmt.Errorf("pair link %s: create: %w", l.name(), err)
		}
		l.keys = nil
		link, err = netlink.LinkByName(l.name())
	}
	if err != nil {
		return fmt.Errorf("pair link %s: %w", l.name(), err)
	}
	if l.keys != nil && *l.keys == k && l.endpoint == endpoint {
		return nil
	}
	c, err := wgctrl.New()
	if err != nil {
		return fmt.Errorf("pair link %s: %w", l.name(), err)
	}
	defer c.Close()
	to := &net.UDPAddr{IP: endpoint.AsSlice(), Port: Port}
	cfg := wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: k.PeerPublic, UpdateOnly: true, Endpoint: to}}}
	if l.keys == nil || *l.keys != k {
		port, keepalive := Port, 5*time.Second
		allowed := net.IPNet{IP: k.Remote.AsSlice(), Mask: net.CIDRMask(32, 32)}
		cfg = wgtypes.Config{PrivateKey: &k.Private, ListenPort: &port, ReplacePeers: true,
			Peers: []wgtypes.PeerConfig{{PublicKey: k.PeerPublic, PresharedKey: &k.Shared, PersistentKeepaliveInterval: &keepalive,
				Endpoint: to, ReplaceAllowedIPs: true, AllowedIPs: []net.IPNet{allowed}}}}
	}
	if err := c.ConfigureDevice(l.name(), cfg); err != nil {
		return fmt.Errorf("pair link %s: configure: %w", l.name(), err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: k.Local.AsSlice(), Mask: net.CIDRMask(inner.Bits(), 32)}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("pair link %s: address %s: %w", l.name(), k.Local, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("pair link %s: up: %w", l.name(), err)
	}
	kept := k
	l.keys, l.endpoint = &kept, endpoint
	return nil
}

// Close removes the interface (a no-op when there is none): the unit left its pair.
func (l *Link) Close() error {
	link, err := netlink.LinkByName(l.name())
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err == nil {
		err = netlink.LinkDel(link)
	}
	if err != nil {
		return fmt.Errorf("pair link %s: remove: %w", l.name(), err)
	}
	l.mu.Lock()
	l.keys = nil
	l.mu.Unlock()
	return nil
}
