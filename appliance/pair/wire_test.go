package pair

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
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
	if err := r.Check(got); err != nil {
		t.Fatal(err)
	}
	if err := r.Check(got); !errors.Is(err, ErrReplay) {
		t.Errorf("the same message twice: %v", err)
	}
	// A restarted sender starts from the clock, so it is still newer.
	var fresh Sequence
	if n := fresh.Next(now.Add(time.Second)); n <= m.Seq {
		t.Errorf("restarted sequence %d not above %d", n, m.Seq)
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
