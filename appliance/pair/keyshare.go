package pair

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"strconv"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/pair/wire"
)

// answerShare gives the partner the secret this unit keeps for the partner's disks (made and saved at the
// first request): the partner wraps its unit key with it and asks for it at boot (wire.AskShare). n.mu is
// held.
func (n *Node) answerShare(m wire.Message, to net.Addr) {
	c := n.cfg
	if c.PeerShare == nil {
		c.PeerShare = make([]byte, wire.ShareSize)
		rand.Read(c.PeerShare)
		n.save()
		n.Log.Info("keeping a key share for the other unit's disks")
	}
	out, err := wire.ShareAnswer(c.Key, c.Name, m, c.PeerShare)
	if err != nil {
		n.reject("keyshare")
		return
	}
	_, _ = n.conn.WriteTo(out, to)
}

// KeyHolders are who keeps a secret for this unit's disks: the partner unit, and the witness when the
// pair has one; none while unpaired.
func (n *Node) KeyHolders() []appliance.KeyHolder {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg == nil {
		return nil
	}
	c := *n.cfg
	port := n.port()
	out := []appliance.KeyHolder{{Name: "partner", Share: func(ctx context.Context) ([]byte, error) {
		var errs []error
		for _, a := range c.PeerAddrs {
			share, err := wire.AskShare(ctx, c.Key, c.Name, c.Peer, net.JoinHostPort(a, strconv.Itoa(port)))
			if err == nil {
				return share, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}}}
	if c.Witness != "" {
		out = append(out, appliance.KeyHolder{Name: "witness", Share: func(ctx context.Context) ([]byte, error) {
			return wire.AskShare(ctx, wire.WitnessKey(c.Key), c.Name, wire.WitnessName, c.Witness)
		}})
	}
	return out
}
