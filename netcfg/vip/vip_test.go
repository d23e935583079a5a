package vip

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func addrs(t *testing.T, l netlink.Link) []netip.Addr {
	list, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, a := range list {
		ip, _ := netip.AddrFromSlice(a.IP)
		out = append(out, ip.Unmap())
	}
	return out
}

// TestDropResetsConnections holds a service address on a veth port in a fresh network namespace, opens a
// TCP connection to it, and drops it: the client must see a reset at once, not wait on a dead connection.
// IPv4, and IPv6 (where the port must also announce the address: unsolicited neighbour advertisements).
func TestDropResetsConnections(t *testing.T) { eachFamily(t, testDrop) }

// eachFamily runs test with the port's own address and the service address, in IPv4 and in IPv6.
func eachFamily(t *testing.T, test func(t *testing.T, ownAddr, service string)) {
	t.Run("IPv4", func(t *testing.T) { test(t, "192.0.2.11/24", "192.0.2.100/24") })
	t.Run("IPv6", func(t *testing.T) { test(t, "2001:db8::11/64", "2001:db8::100/64") })
}

func testDrop(t *testing.T, ownAddr, service string) {
	a, port, client, server := holdAndConnect(t, ownAddr, service)
	defer client.Close()
	defer server.Close()
	if err := a.Drop(); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := client.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the client's read after the drop: %v, want a reset", err)
	}
	for _, ad := range addrs(t, port) {
		if ad == a.Prefix.Addr() {
			t.Errorf("the service address is still on lan0")
		}
	}
}

// TestTickleResetsWaitingClient: a client waits for an answer on a connection to the service address whose
// holder died (here: the server's socket is destroyed while the client's address is gone, so its reset is
// lost). Nothing the client sends would tell it; the new holder's tickle, from the list Conns gave, makes it
// see a reset at once.
func TestTickleResetsWaitingClient(t *testing.T) { eachFamily(t, testTickle) }

func testTickle(t *testing.T, ownAddr, service string) {
	a, port, client, server := holdAndConnect(t, ownAddr, service)
	defer client.Close()
	defer server.Close()
	conns, err := a.Conns()
	want := Conn{Port: 5432, Client: netip.MustParseAddrPort(client.LocalAddr().String())}
	if err != nil || len(conns) != 1 || conns[0] != want {
		t.Fatalf("Conns = %+v %v, want [%+v]", conns, err, want)
	}
	// Without this, removing the port's first IPv4 address would remove the service address with it.
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/lan0/promote_secondaries", []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	own, _ := netlink.ParseAddr(ownAddr)
	own.Flags |= unix.IFA_F_NODAD
	if err := netlink.AddrDel(port, own); err != nil {
		t.Fatal(err)
	}
	a.resetConnections() // the server's side is gone; its reset reaches no one
	if err := netlink.AddrAdd(port, own); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the client learnt of the dead connection without a tickle (%v): the test proves nothing", err)
	}
	if err := a.Tickle(conns); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the waiting client after the tickle: %v, want a reset", err)
	}
}

// holdAndConnect holds service on a veth port (with ownAddr) in a fresh network namespace, thrown away with
// the test's thread, and opens a TCP connection from ownAddr to the service address's port 5432.
func holdAndConnect(t *testing.T, ownAddr, service string) (*Address, netlink.Link, *net.TCPConn, net.Conn) {
	runtime.LockOSThread() // the namespace belongs to this thread; it is thrown away with it
	orig, err := netns.Get()
	if err != nil {
		t.Skipf("network namespaces: %v", err)
	}
	ns, err := netns.New()
	if err != nil {
		t.Skipf("a network namespace needs root: %v", err)
	}
	t.Cleanup(func() {
		netns.Set(orig)
		ns.Close()
		orig.Close()
	})
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	port := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan0"}, PeerName: "lan0-peer"}
	if err := netlink.LinkAdd(port); err != nil {
		t.Skipf("veth port: %v", err)
	}
	if err := netlink.LinkSetUp(port); err != nil {
		t.Fatal(err)
	}
	if peer, err := netlink.LinkByName("lan0-peer"); err == nil {
		_ = netlink.LinkSetUp(peer) // a carrier, as on a LAN port with its cable
	}
	own, _ := netlink.ParseAddr(ownAddr)
	own.Flags |= unix.IFA_F_NODAD // usable at once (no duplicate detection on a namespace of its own)
	if err := netlink.AddrAdd(port, own); err != nil {
		t.Fatal(err)
	}
	a := &Address{Prefix: netip.MustParsePrefix(service), ProcSys: "/proc/sys"}
	if err := a.Hold(); err != nil {
		t.Fatal(err)
	}
	if a.Prefix.Addr().Is6() {
		if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/lan0/ndisc_notify"); err != nil || strings.TrimSpace(string(b)) != "1" {
			t.Errorf("lan0 does not announce its IPv6 addresses: %q %v", b, err)
		}
	}
	l, err := net.Listen("tcp", netip.AddrPortFrom(a.Prefix.Addr(), 5432).String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// IPv6 addresses and their local routes may take a moment to be usable after they are added.
	var client *net.TCPConn
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		client, err = net.DialTCP("tcp", &net.TCPAddr{IP: net.ParseIP(strings.Split(ownAddr, "/")[0])}, net.TCPAddrFromAddrPort(netip.AddrPortFrom(a.Prefix.Addr(), 5432)))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	server, err := l.Accept()
	if err != nil {
		client.Close()
		t.Fatal(err)
	}
	return a, port, client, server
}
