package vip

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestDropResetsConnections holds a service address on a veth port in a fresh network namespace, opens a
// TCP connection to it, and drops it: the client must see a reset at once, not wait on a dead connection.
func TestDropResetsConnections(t *testing.T) {
	runtime.LockOSThread() // the namespace belongs to this thread; it is thrown away with it
	orig, err := netns.Get()
	if err != nil {
		t.Skipf("network namespaces: %v", err)
	}
	ns, err := netns.New()
	if err != nil {
		t.Skipf("a network namespace needs root: %v", err)
	}
	defer func() {
		netns.Set(orig)
		ns.Close()
		orig.Close()
	}()
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
	own, _ := netlink.ParseAddr("192.0.2.11/24")
	if err := netlink.AddrAdd(port, own); err != nil {
		t.Fatal(err)
	}
	a := &Address{Prefix: netip.MustParsePrefix("192.0.2.100/24"), ProcSys: "/proc/sys"}
	if err := a.Hold(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "192.0.2.100:5432")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 11)}, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 100), Port: 5432})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	if err := a.Drop(); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = client.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the client's read after the drop: %v, want a reset", err)
	}
	if addrs, _ := netlink.AddrList(port, netlink.FAMILY_V4); len(addrs) != 1 {
		t.Errorf("addresses left: %v", addrs)
	}
}
