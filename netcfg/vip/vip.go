// Package vip holds and releases the service address: the one address the office's clients use, which
// always leads to the active unit. Holding it adds it to the port on its network and announces it
// (gratuitous ARP for IPv4; for IPv6 the kernel sends unsolicited neighbour advertisements when ndisc_notify
// is set), so clients and switches forget the old holder at once.
package vip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/mdlayher/arp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/lawbox/appliance/netcfg/static"
	"github.com/lawbox/appliance/netcfg/vipconn"
)

// Address is one service address.
type Address struct {
	Prefix  netip.Prefix
	ProcSys string // "/proc/sys"
}

// Port returns the port that has another address on the service address's network.
func (a *Address) Port() (netlink.Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list ports: %w", err)
	}
	for _, l := range links {
		addrs, err := netlink.AddrList(l, unix.AF_UNSPEC)
		if err != nil {
			continue
		}
		for _, ad := range addrs {
			p, ok := static.Prefix(ad.IPNet.IP, ad.IPNet.Mask)
			if ok && p.Addr() != a.Prefix.Addr() && p.Masked().Contains(a.Prefix.Addr()) {
				return l, nil
			}
		}
	}
	return nil, fmt.Errorf("no port has an address on %s: configure the LAN port first", a.Prefix.Masked())
}

// Hold adds the address (if missing) and announces it.
func (a *Address) Hold() error {
	l, err := a.Port()
	if err != nil {
		return err
	}
	ad := static.Addr(a.Prefix)
	if a.Prefix.Addr().Is6() {
		ad.Flags |= unix.IFA_F_NODAD // the witness lease, not DAD, says it is ours
		path := filepath.Join(a.ProcSys, "net/ipv6/conf", l.Attrs().Name, "ndisc_notify")
		if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("enable neighbour announcements on %s: %w", l.Attrs().Name, err)
		}
	}
	if err := netlink.AddrAdd(l, ad); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add service address %s to %s: %w", a.Prefix, l.Attrs().Name, err)
	}
	return a.Announce()
}

// Announce tells the LAN the address is here (IPv4: a gratuitous ARP request and reply).
func (a *Address) Announce() error {
	if !a.Prefix.Addr().Is4() {
		return nil // the kernel announced it when it was added (ndisc_notify)
	}
	l, err := a.Port()
	if err != nil {
		return err
	}
	ifi, err := net.InterfaceByIndex(l.Attrs().Index)
	if err != nil {
		return fmt.Errorf("announce %s: %w", a.Prefix.Addr(), err)
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return fmt.Errorf("announce %s on %s: %w", a.Prefix.Addr(), ifi.Name, err)
	}
	defer c.Close()
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	ip := a.Prefix.Addr()
	for _, op := range []arp.Operation{arp.OperationRequest, arp.OperationReply} {
		p, err := arp.NewPacket(op, ifi.HardwareAddr, ip, bcast, ip)
		if err != nil {
			return err
		}
		if err := c.WriteTo(p, bcast); err != nil {
			return fmt.Errorf("announce %s on %s: %w", ip, ifi.Name, err)
		}
	}
	return nil
}

// Drop removes the address from every port. TCP connections to it are reset first, while the address can
// still send: once it is gone the kernel cannot answer on them, and a client (the office's application)
// would wait on a dead connection until its retransmissions reach the new holder, many seconds later.
func (a *Address) Drop() error {
	a.resetConnections()
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("list ports: %w", err)
	}
	for _, l := range links {
		err := netlink.AddrDel(l, static.Addr(a.Prefix))
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("drop service address %s from %s: %w", a.Prefix, l.Attrs().Name, err)
		}
	}
	return nil
}

// resetConnections aborts the TCP connections whose local address is the service address (SOCK_DESTROY:
// the kernel sends each peer a reset). Best effort: without the tcp_diag module clients just wait longer.
func (a *Address) resetConnections() {
	family, socks, _ := a.sockets()
	for _, s := range socks {
		_ = destroy(family, s.ID)
	}
}

// sockets lists the TCP connections whose local address is the service address.
func (a *Address) sockets() (uint8, []*netlink.Socket, error) {
	family := uint8(a.family())
	socks, err := netlink.SocketDiagTCP(family)
	if err != nil {
		return family, nil, fmt.Errorf("list connections to %s: %w", a.Prefix.Addr(), err)
	}
	out := socks[:0]
	for _, s := range socks {
		local, ok := netip.AddrFromSlice(s.ID.Source)
		if !ok || local.Unmap() != a.Prefix.Addr() || s.ID.Destination == nil || s.ID.Destination.IsUnspecified() {
			continue // another address, or a listening socket
		}
		out = append(out, s)
	}
	return family, out, nil
}

// Conn is a client's TCP connection to the service address.
type Conn = vipconn.Conn

// MaxConns bounds the connections Conns lists (they travel in every heartbeat).
const MaxConns = 64

// Conns lists the established client connections to the service address (at most MaxConns), for the other
// unit to tickle should this one die (Tickle).
func (a *Address) Conns() ([]Conn, error) {
	_, socks, err := a.sockets()
	var out []Conn
	for _, s := range socks {
		client, ok := netip.AddrFromSlice(s.ID.Destination)
		if s.State != netlink.TCP_ESTABLISHED || !ok || len(out) == MaxConns {
			continue
		}
		out = append(out, Conn{Port: s.ID.SourcePort, Client: netip.AddrPortFrom(client.Unmap(), s.ID.DestinationPort)})
	}
	return out, err
}

// Tickle ends, on the clients' side, connections the previous holder of the service address had when it
// died: a client waiting for an answer on one (a commit, a long query) sends nothing, so nothing reaches this
// unit to be reset, and it waits for its keep-alive (15 s to 2 hours). Each gets a TCP ACK from the service
// address that is outside its window; the client answers with an ACK carrying its real sequence numbers,
// which this unit's kernel, knowing no such connection, answers with a reset the client accepts. The unit
// must hold the address.
func (a *Address) Tickle(conns []Conn) error {
	ip := a.Prefix.Addr()
	fd, err := unix.Socket(a.family(), unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return fmt.Errorf("tickle clients of %s: %w", ip, err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, sockaddr(ip)); err != nil { // the source the checksum covers, not the port's own address
		return fmt.Errorf("tickle clients of %s: %w", ip, err)
	}
	var errs []error
	for _, c := range conns {
		if c.Client.Addr().Is6() != ip.Is6() {
			continue
		}
		if err := unix.Sendto(fd, tickleSegment(ip, c), 0, sockaddr(c.Client.Addr())); err != nil {
			errs = append(errs, fmt.Errorf("tickle %s: %w", c.Client, err))
		}
	}
	return errors.Join(errs...)
}

// family is the address family of the service address.
func (a *Address) family() int {
	if a.Prefix.Addr().Is6() {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// sockaddr is ip with no port, for a raw socket.
func sockaddr(ip netip.Addr) unix.Sockaddr {
	if ip.Is6() {
		return &unix.SockaddrInet6{Addr: ip.As16()}
	}
	return &unix.SockaddrInet4{Addr: ip.As4()}
}

// tickleSegment is a bare TCP ACK (sequence and acknowledgement 0) from the service address's port to the
// client, with its checksum; the kernel adds the IP header from the socket.
func tickleSegment(from netip.Addr, c Conn) []byte {
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], c.Port)
	binary.BigEndian.PutUint16(seg[2:], c.Client.Port())
	seg[12] = 5 << 4 // header length: 5 words
	seg[13] = 0x10   // ACK
	binary.BigEndian.PutUint16(seg[14:], 1024)
	binary.BigEndian.PutUint16(seg[16:], tcpChecksum(from, c.Client.Addr(), seg))
	return seg
}

// tcpChecksum is the Internet checksum of seg with its pseudo-header (RFC 793, RFC 8200 8.1).
func tcpChecksum(src, dst netip.Addr, seg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	sum += unix.IPPROTO_TCP + uint32(len(seg))
	add(seg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// destroy aborts one TCP socket (SOCK_DESTROY). netlink.SocketDestroy knows only IPv4; this is the same
// request for both families: inet_diag_req_v2 naming the socket by its addresses, ports and cookie.
func destroy(family uint8, id netlink.SocketID) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_INET_DIAG)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	msg := make([]byte, unix.NLMSG_HDRLEN+56)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], 21) // SOCK_DESTROY
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	req := msg[unix.NLMSG_HDRLEN:]
	req[0], req[1] = family, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(req[4:], 0xfff) // any state
	binary.BigEndian.PutUint16(req[8:], id.SourcePort)
	binary.BigEndian.PutUint16(req[10:], id.DestinationPort)
	for i, ip := range []net.IP{id.Source, id.Destination} {
		if v4 := ip.To4(); family == unix.AF_INET && v4 != nil {
			ip = v4
		}
		copy(req[12+16*i:], ip)
	}
	binary.NativeEndian.PutUint32(req[44:], id.Interface)
	binary.NativeEndian.PutUint32(req[48:], id.Cookie[0])
	binary.NativeEndian.PutUint32(req[52:], id.Cookie[1])
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	if n >= unix.NLMSG_HDRLEN+4 && binary.NativeEndian.Uint16(buf[4:]) == unix.NLMSG_ERROR {
		if e := int32(binary.NativeEndian.Uint32(buf[unix.NLMSG_HDRLEN:])); e != 0 {
			return unix.Errno(-e)
		}
	}
	return nil
}
