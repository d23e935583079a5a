package witness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance/durable"
	"github.com/lawbox/appliance/appliance/pair/wire"
)

// MaxLease bounds what a unit may ask for.
const MaxLease = 10 * time.Second

// WitnessServer answers lease requests over UDP (cmd/witness).
type WitnessServer struct {
	Key       []byte
	Log       *slog.Logger
	Now       func() time.Time
	Name      string // "witness"
	StateFile string // where the epoch and the last holder survive a restart ("" keeps them in memory)

	mu     sync.Mutex
	w      Witness
	seen   map[string]uint64 // the replay windows last saved
	shares map[string][]byte // unit -> the secret kept for its disks
	replay wire.Replay
	seq    wire.Sequence
}

// Load reads the state file, if there is one.
func (s *WitnessServer) Load() error {
	if s.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(s.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var f witnessFile
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err != nil {
		return fmt.Errorf("witness state %s: %w", s.StateFile, err)
	}
	s.w.State, s.seen, s.shares = f.WitnessState, f.Seen, f.Shares
	s.replay.Load(f.Seen)
	return nil
}

// witnessFile is the state file: the witness's state, the newest message number seen from each unit
// (Replay's windows), so a request recorded before a restart of the witness is still refused after it,
// and the secret it keeps for each unit's disks (its key share).
type witnessFile struct {
	WitnessState
	Seen   map[string]uint64 `json:"seen,omitempty"`
	Shares map[string][]byte `json:"shares,omitempty"`
}

// share answers a unit's keyshare request with the secret the witness keeps for its disks, made (and
// saved) at the first request: the unit wraps its unit key with it (wire.AskShare).
func (s *WitnessServer) share(m wire.Message) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	secret := s.shares[m.From]
	if secret == nil {
		secret = make([]byte, wire.ShareSize)
		rand.Read(secret)
		if s.shares == nil {
			s.shares = map[string][]byte{}
		}
		s.shares[m.From] = secret
		if err := s.save(); err != nil {
			s.Log.Error("key share not given: cannot save the witness state", "err", err)
			delete(s.shares, m.From)
			return nil
		}
		s.Log.Info("keeping a key share for a unit's disks", "unit", m.From)
	}
	out, err := wire.ShareAnswer(s.Key, s.Name, m, secret)
	if err != nil {
		s.Log.Warn("dropped a key share request", "err", err)
		return nil
	}
	return out
}

// save writes the state file durably (temp, fsync, rename): a witness that forgot the epoch after a power
// cut would let a stale unit become active.
func (s *WitnessServer) save() error {
	if s.StateFile == "" {
		return nil
	}
	if w := s.replay.Windows(); w != nil {
		s.seen = w
	}
	b, err := json.Marshal(witnessFile{s.w.State, s.seen, s.shares})
	if err != nil {
		return err
	}
	return durable.WriteFile(s.StateFile, bytes.NewReader(b), nil)
}

// Handle answers one datagram; nil means drop it (forged, replayed, malformed).
func (s *WitnessServer) Handle(b []byte) []byte {
	m, err := wire.Open(s.Key, b)
	if err == nil && m.Kind == "keyshare" {
		return s.share(m)
	}
	if err == nil {
		err = s.replay.Check("witness/"+m.From, m.Seq)
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
	defer s.mu.Unlock()
	var g Grant
	switch m.Kind {
	case "release":
		s.w.Release(m.From)
		g.Holder = s.w.Holder(now)
	case "ping": // a standby asking who holds it
		g.Holder = s.w.Holder(now)
	default:
		was := s.w.State
		g = s.w.Request(m.From, m.Epoch, m.Force, m.Bump, now, time.Duration(m.LeaseMS)*time.Millisecond)
		if g.Changed {
			if err := s.save(); err != nil {
				// Not granted unless it is remembered.
				s.Log.Error("lease not granted: cannot save the witness state", "err", err)
				s.w = Witness{State: was}
				return nil
			}
			s.Log.Info("lease holder changed", "holder", m.From, "epoch", s.w.State.Epoch, "forced", m.Force)
		}
		if g.Stale {
			s.Log.Warn("lease refused: the unit's copy is older than the last holder's", "unit", m.From,
				"unit_epoch", m.Epoch, "epoch", s.w.State.Epoch, "last", s.w.State.Last)
		}
	}
	out, err := wire.Seal(s.Key, wire.Message{Kind: "grant", From: s.Name, Seq: s.seq.Next(now), Time: now, Echo: m.Seq,
		Granted: g.Granted, Holder: g.Holder, Stale: g.Stale, Epoch: s.w.State.Epoch})
	if err != nil {
		return nil
	}
	return out
}

// Serve answers on conn until ctx ends. The replay windows are saved every few seconds when they moved.
func (s *WitnessServer) Serve(ctx context.Context, conn net.PacketConn) error {
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				w := s.replay.Windows()
				if w == nil {
					continue
				}
				s.mu.Lock()
				s.seen = w
				if err := s.save(); err != nil {
					s.Log.Error("save the witness state", "err", err)
				}
				s.mu.Unlock()
			}
		}
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
