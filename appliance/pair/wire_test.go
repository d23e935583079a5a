package pair

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func TestSealOpenForgedReplayed(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var seq Sequence
	m := Message{Kind: "heartbeat", From: "A", Seq: seq.Next(now), Time: now, Role: Active}
	b, err := Seal(key, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(key, b)
	if err != nil || got.Role != Active || got.Seq != m.Seq {
		t.Fatalf("open: %+v %v", got, err)
	}
	forged := append([]byte(nil), b...)
	forged[10] ^= 1
	if _, err := Open(key, forged); !errors.Is(err, ErrBadTag) {
		t.Errorf("a changed message: %v", err)
	}
	if _, err := Open([]byte("another key, another pair......."), b); !errors.Is(err, ErrBadTag) {
		t.Errorf("another pair's key: %v", err)
	}
	var r Replay
	if err := r.Check("pair/A", got.Seq); err != nil {
		t.Fatal(err)
	}
	if err := r.Check("pair/A", got.Seq); !errors.Is(err, ErrReplay) {
		t.Errorf("the same message twice: %v", err)
	}
	// Another key's window is another window: the witness key cannot move the pair key's.
	if err := r.Check("witness/A", ^uint64(0)); err != nil {
		t.Fatal(err)
	}
	if err := r.Check("pair/A", got.Seq+1); err != nil {
		t.Errorf("a heartbeat after a huge number on the witness key: %v", err)
	}
	// Restored after a restart, the windows still refuse what was seen.
	var restarted Replay
	restarted.Load(r.Windows())
	if err := restarted.Check("pair/A", got.Seq); !errors.Is(err, ErrReplay) {
		t.Errorf("a recorded message after a restart of the receiver: %v", err)
	}
}

// A sender's numbers keep rising across restarts whatever its clock says (a unit without a battery-backed
// clock boots in the past), and a new high-water mark is asked for before the saved one is reached.
func TestSequenceIgnoresTheClockOnceStarted(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var saved uint64
	var s Sequence
	saved = s.Start(saved, now)
	s.Reserve = func(mark uint64) { saved = mark }
	var last uint64
	for range seqBlock {
		last = s.Next(now)
		if last >= saved {
			t.Fatalf("number %d at or past the saved mark %d", last, saved)
		}
	}
	// Rebooted with the clock years back: it continues above every number used.
	var again Sequence
	again.Start(saved, now.AddDate(-6, 0, 0))
	if n := again.Next(now.AddDate(-6, 0, 0)); n <= last {
		t.Errorf("after a restart with the clock behind: %d, not above %d", n, last)
	}
}

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
	var seq Sequence
	ask := func(from string, k []byte) (Message, error) {
		req, _ := Seal(k, Message{Kind: "lease", From: from, Seq: seq.Next(time.Now()), Time: time.Now(), LeaseMS: 2000})
		c.Write(req)
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			return Message{}, err
		}
		return Open(key, buf[:n])
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
	req, _ := Seal(key, Message{Kind: "lease", From: "A", Seq: 1, Time: time.Now(), LeaseMS: 2000})
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
	var seq Sequence
	ask := func(s *WitnessServer, from string, epoch uint64) Message {
		req, _ := Seal(key, Message{Kind: "lease", From: from, Seq: seq.Next(now), Time: now, LeaseMS: 1000, Epoch: epoch})
		g, err := Open(key, s.Handle(req))
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
