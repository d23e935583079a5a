package appliance

import (
	"context"
	"time"
)

// NetworkPort is a statically configured port.
type NetworkPort struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses"` // "192.0.2.11/24"
	Gateway   string   `json:"gateway,omitempty"`
	DNS       []string `json:"dns,omitempty"`     // name servers for the unit
	Members   []string `json:"members,omitempty"` // an active-backup bond of these ports (Name is the bond's)
}

// Network is the unit's port configuration (ports not listed use DHCP).
type Network interface {
	Ports() []NetworkPort
	SetPorts(ctx context.Context, ports []NetworkPort) error
	// Nameservers are the name servers in effect (the static ones, or the last DHCP lease's).
	Nameservers() []string
	// Links are the ports' link states.
	Links() []NetworkLink
	// TryPorts applies ports on probation: unless ConfirmPorts is called within window, the unit puts the
	// configuration it had back by itself (a wrong address must not take the unit off the LAN for good).
	TryPorts(ctx context.Context, ports []NetworkPort, window time.Duration, user string) error
	ConfirmPorts(ctx context.Context, user string) error
	// Trial is the change on probation, or the last one if it was put back; nil when neither.
	Trial() *NetworkTrial
}

// NetworkTrial is a network change on probation, or the last one, put back.
type NetworkTrial struct {
	By    string    `json:"by"`
	Until time.Time `json:"until"` // put back by itself then, unless confirmed
	// Reverted: the change was put back (Why says why) and nothing changed since.
	Reverted bool   `json:"reverted,omitempty"`
	Why      string `json:"why,omitempty"`
}

// NetworkLink is a port's link: carrier means a cable to a live switch port.
type NetworkLink struct {
	Name    string    `json:"name"`
	MAC     string    `json:"mac"`
	Carrier bool      `json:"carrier"`
	Seen    bool      `json:"seen"`  // had a link since the unit started
	Since   time.Time `json:"since"` // of the current state
}

// NetworkAlerts: a port that had its link and lost it (a port never plugged in is not a problem).
func NetworkAlerts(links []NetworkLink) []Alert {
	var out []Alert
	for _, l := range links {
		if l.Seen && !l.Carrier {
			out = append(out, NewAlert("warning", "network port %s (%s) lost its link: check its cable and the switch port", l.Name, l.MAC))
		}
	}
	return out
}
