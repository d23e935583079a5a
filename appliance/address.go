package appliance

import (
	"net/netip"

	"github.com/lawbox/appliance/netcfg/vipconn"
)

// AddressRequest is what the pair asks of the part that holds the service address (appliance/network's
// ServiceAddress): hold it and announce it, or not. The zero request holds nothing.
type AddressRequest struct {
	Prefix netip.Prefix // the pair's service address; not valid: none (the unit is not paired)
	Hold   bool         // this unit serves on it
	// Tickle lists, while Hold, the previous holder's clients: when the address is taken they are told
	// their connection is gone (they would otherwise wait for their keep-alive).
	Tickle []vipconn.Conn
}
