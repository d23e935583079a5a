package pair

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// MaxLease bounds what a unit may ask for.
const MaxLease = 10 * time.Second

// WitnessServer answers lease requests over UDP (cmd/witness).
type WitnessServer struct {
	Key  []byte
	Log  *slog.Logger
	Now  func() time.Time
	Name string // "witness"

	mu     sync.Mutex
	w      Witness
	replay Replay
	seq    Sequence
}

// Handle answers one datagram; nil means drop it (forged, replayed, malformed).
func (s *WitnessServer) Handle(b []byte) []byte {
	m, err := Open(s.Key, b)
	if err == nil {
		err = s.replay.Check(m)
	}
	if err == nil && m.Kind != "release" && m.Kind != "ping" && (m.Kind != "lease" || m.LeaseMS <= 0 || time.Duration(m.LeaseMS)*time.Millisecond > MaxLease) {
		err = errors.New("not a valid lease request")
	}
	if err != nil {
		s.Log.Warn("dropped a message", "err", err)
		return nil
	}
	now := s.Now()
	s.mu.Lock()
	var granted bool
	var holder string
	switch m.Kind {
	case "release":
		s.w.Release(m.From)
		holder = s.w.holder
	case "ping": // a standby asking who holds it
		holder = s.w.holder
		if !now.Before(s.w.expires) {
			holder = ""
		}
	default:
		granted, holder = s.w.Request(m.From, now, time.Duration(m.LeaseMS)*time.Millisecond)
	}
	s.mu.Unlock()
	out, err := Seal(s.Key, Message{Kind: "grant", From: s.Name, Seq: s.seq.Next(now), Time: now, Echo: m.Seq, Granted: granted, Holder: holder})
	if err != nil {
		return nil
	}
	return out
}

// Serve answers on conn until ctx ends.
func (s *WitnessServer) Serve(ctx context.Context, conn net.PacketConn) error {
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	buf := make([]byte, 4096)
	for {
		n, addr, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if out := s.Handle(buf[:n]); out != nil {
			_, _ = conn.WriteTo(out, addr)
		}
	}
}
