// Package vipconn is the one type the pair's wire format shares with netcfg/vip, without its netlink: a
// client's connection to the service address, as the heartbeats carry it (so the witness program, which
// speaks that format, links no netlink).
package vipconn

import "net/netip"

// Conn is a client's TCP connection to the service address.
type Conn struct {
	Port   uint16         `json:"port"`   // the service's (local) port
	Client netip.AddrPort `json:"client"` // the client's address and port
}
