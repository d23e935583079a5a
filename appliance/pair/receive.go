package pair

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/lawbox/appliance/appliance/pair/wire"
	"github.com/lawbox/appliance/appliance/state"
)

// keepAudit stores the partner's audit entries out of the heartbeat path, and says once when they do not
// continue the copy this unit keeps (the partner's log was rewritten, or entries were lost).
func (n *Node) keepAudit(items []state.Chained) {
	n.write(func() {
		head, err := n.AuditKeep(items)
		n.mu.Lock()
		defer n.mu.Unlock()
		n.auditHead = head
		problem := ""
		if err != nil {
			problem = err.Error()
		}
		if problem != n.auditProblem && problem != "" {
			n.event("warning", "the other unit's audit log does not continue the copy kept here (it was rewritten there, or that unit is new or was reset): its new entries are not kept, the copy of the earlier ones is: "+problem)
		}
		n.auditProblem = problem
	})
}

func (n *Node) receive(conn net.PacketConn) {
	buf := make([]byte, 8192)
	for {
		sz, from, err := conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		b := bytes.Clone(buf[:sz])
		n.mu.Lock()
		n.handle(b, from)
		n.mu.Unlock()
	}
}

func (n *Node) reject(why string) {
	if n.rejected == nil {
		n.rejected = map[string]int{}
	}
	n.rejected[why]++
}

func (n *Node) handle(b []byte, from net.Addr) {
	if len(b) == 0 {
		return
	}
	switch b[0] {
	case kindJoin:
		n.handleJoin(b, from)
		return
	case kindWelcome:
		if j := n.joining; j != nil {
			var w welcome
			if openJoin(j.key, b, &w) == nil && bytes.Equal(w.Nonce, j.nonce) {
				select {
				case j.got <- w:
				default:
				}
				return
			}
		}
		n.reject("join")
		return
	}
	c := n.cfg
	if c == nil {
		n.reject("unknown_sender")
		return
	}
	m, err := wire.Open(c.Key, b)
	key := "pair"
	if errors.Is(err, wire.ErrBadTag) {
		m, err = wire.Open(wire.WitnessKey(c.Key), b)
		key = "witness"
	}
	if err != nil {
		n.reject("bad_tag")
		return
	}
	if key == "pair" && m.Kind == "keyshare" && m.From == c.Peer {
		n.answerShare(m, from)
		return
	}
	if (key == "pair" && (m.Kind != "heartbeat" || m.From != c.Peer)) || (key == "witness" && (m.Kind != "grant" || m.From != wire.WitnessName)) {
		n.reject("unknown_sender")
		return
	}
	now := n.Now()
	if key == "witness" {
		n.handleGrant(c, m, now)
		return
	}
	if !wire.Compatible(m.Proto) {
		n.reject("incompatible")
		n.event("critical", fmt.Sprintf("the other unit runs firmware %s, which speaks pair protocol %d; this one (%s) takes %d to %d: "+
			"update the older unit to the same firmware (its heartbeats are ignored until then)", m.Firmware, m.Proto, n.Version, wire.MinProto, wire.Proto))
		return
	}
	if err := n.replay.Check("pair/"+m.From, m.Seq); err != nil {
		n.reject("replay")
		return
	}
	n.peer.seen, n.peer.role, n.peer.firmware, n.peer.proto = now, m.Role, m.Firmware, m.Proto
	n.peer.hearsUs, n.peer.yields, n.peer.claim, n.peer.epoch = m.HearsPeer, m.Yield, m.Claim, m.Epoch
	n.peer.claimID, n.peer.ack, n.peer.conns = m.ClaimID, m.Ack, m.Conns
	n.peer.auditAck = m.AuditAck
	if len(m.Audit) > 0 && n.AuditKeep != nil {
		n.keepAudit(m.Audit)
	}
	if n.peer.paths == nil {
		n.peer.paths = map[string]time.Time{}
	}
	if ua, ok := from.(*net.UDPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ua.IP); ok {
			n.peer.paths[ip.Unmap().String()] = now
		}
	}
	if addrs := n.foreign(m.Addrs); len(addrs) > 0 && !slices.Equal(addrs, c.PeerAddrs) {
		c.PeerAddrs = addrs // the peer's addresses changed (DHCP, a new cable): follow them
		n.save()
	}
}

// handleGrant takes the witness's answer to a lease request. n.mu is held.
func (n *Node) handleGrant(c *Config, m wire.Message, now time.Time) {
	// A grant counts only as the first answer to a request sent and not yet answered: one replayed,
	// or made up by whoever holds the witness key, answers nothing.
	if _, ok := n.witness.asked[m.Echo]; !ok {
		n.reject("replay")
		return
	}
	delete(n.witness.asked, m.Echo)
	n.witness.seen, n.witness.holder = now, m.Holder
	sent, ok := n.witness.pending[m.Echo]
	bumped := n.witness.bumps[m.Echo]
	delete(n.witness.pending, m.Echo)
	delete(n.witness.bumps, m.Echo)
	if ok && m.Granted && m.Holder == c.Name {
		if until := sent.Add(c.lease()); until.After(n.witness.leaseUntil) {
			n.witness.leaseUntil = until
		}
		n.m.Granted(m.Epoch, bumped)
	}
	if ok && m.Stale != n.witness.stale {
		n.witness.stale = m.Stale
		if m.Stale {
			n.event("critical", "the witness refuses to make this unit active: the other unit was active after this unit's last copy "+
				"of the data. This unit waits for it; if it is lost for good, an admin can force this unit active (what the other unit saved since would be lost).")
		}
	}
}
