package witness

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance/pair/wire"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func TestWitnessServerOverUDP(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &WitnessServer{Key: key, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now, Name: "witness"}
	go s.Serve(ctx, conn)

	c, err := net.Dial("udp", conn.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var seq wire.Sequence
	ask := func(from string, k []byte) (wire.Message, error) {
		req, _ := wire.Seal(k, wire.Message{Kind: "lease", From: from, Seq: seq.Next(time.Now()), Time: time.Now(), LeaseMS: 2000})
		c.Write(req)
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			return wire.Message{}, err
		}
		return wire.Open(key, buf[:n])
	}
	if g, err := ask("A", key); err != nil || !g.Granted || g.Holder != "A" {
		t.Fatalf("A: %+v %v", g, err)
	}
	if g, err := ask("B", key); err != nil || g.Granted || g.Holder != "A" {
		t.Fatalf("B while A holds it: %+v %v", g, err)
	}
	if _, err := ask("B", []byte("a forger's key.................")); err == nil {
		t.Error("a forged request got an answer")
	}
	// A replayed request gets no answer.
	req, _ := wire.Seal(key, wire.Message{Kind: "lease", From: "A", Seq: 1, Time: time.Now(), LeaseMS: 2000})
	c.Write(req)
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Read(make([]byte, 100)); err == nil {
		t.Error("a replayed request got an answer")
	}
}

// TestWitnessRemembersAcrossRestart: the last holder and the epoch survive a restart of the witness, so a
// unit with older data is still refused afterwards.
func TestWitnessRemembersAcrossRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "witness.state")
	now := time.Now()
	start := func() *WitnessServer {
		s := &WitnessServer{Key: key, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }, Name: "witness", StateFile: file}
		if err := s.Load(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	var seq wire.Sequence
	ask := func(s *WitnessServer, from string, epoch uint64) wire.Message {
		req, _ := wire.Seal(key, wire.Message{Kind: "lease", From: from, Seq: seq.Next(now), Time: now, LeaseMS: 1000, Epoch: epoch})
		g, err := wire.Open(key, s.Handle(req))
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	s := start()
	if g := ask(s, "A", 0); !g.Granted || g.Epoch != 1 {
		t.Fatalf("A: %+v", g)
	}
	now = now.Add(2 * time.Second)
	if g := ask(s, "B", 1); !g.Granted || g.Epoch != 2 {
		t.Fatalf("B after A's lease ran out: %+v", g)
	}
	now = now.Add(2 * time.Second)
	s = start() // the office PC rebooted
	if g := ask(s, "A", 1); g.Granted || !g.Stale || g.Epoch != 2 {
		t.Fatalf("stale A after the witness restarted: %+v", g)
	}
	if g := ask(s, "B", 2); !g.Granted {
		t.Fatalf("B after the witness restarted: %+v", g)
	}
	if err := os.WriteFile(file, []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (&WitnessServer{StateFile: file}).Load(); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("a damaged state file: %v", err)
	}
}

// The witness keeps one secret per unit, the same across its restarts, and gives it only over its key.
func TestWitnessKeepsKeySharesAcrossRestarts(t *testing.T) {
	state := filepath.Join(t.TempDir(), "witness.state")
	serve := func() (string, context.CancelFunc) {
		conn, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := &WitnessServer{Key: key, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now, Name: wire.WitnessName, StateFile: state}
		if err := s.Load(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go s.Serve(ctx, conn)
		return conn.LocalAddr().String(), cancel
	}
	ask := func(addr, unit string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		b, err := wire.AskShare(ctx, key, unit, wire.WitnessName, addr)
		if err != nil || len(b) != wire.ShareSize {
			t.Fatalf("%s: share %x, %v", unit, b, err)
		}
		return b
	}
	addr, stop := serve()
	a, b := ask(addr, "unit-a"), ask(addr, "unit-b")
	if string(a) == string(b) {
		t.Fatal("two units got the same share")
	}
	if again := ask(addr, "unit-a"); string(again) != string(a) {
		t.Fatal("a unit's share changed between two requests")
	}
	stop()
	addr, stop = serve()
	defer stop()
	if again := ask(addr, "unit-a"); string(again) != string(a) {
		t.Fatal("a unit's share did not survive a restart of the witness: the unit could not unlock")
	}
}
