package wire

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// A holder on a real UDP socket: only the asker with the channel's key gets the secret, and what travels
// does not hold it.
func TestKeyShareRoundTrip(t *testing.T) {
	key, other := []byte("0123456789abcdef0123456789abcdef"), []byte("another pair's key, not this one")
	secret := bytes.Repeat([]byte{7}, ShareSize)
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var (
		mu   sync.Mutex
		seen [][]byte
	)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := Open(key, buf[:n])
			if err != nil || m.Kind != "keyshare" || m.From != "unit-a" {
				continue
			}
			out, err := ShareAnswer(key, WitnessName, m, secret)
			if err != nil {
				continue
			}
			mu.Lock()
			seen = append(seen, out)
			mu.Unlock()
			_, _ = conn.WriteTo(out, from)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := AskShare(ctx, key, "unit-a", WitnessName, conn.LocalAddr().String())
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("share = %x, %v", got, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range seen {
		if bytes.Contains(b, secret) {
			t.Fatal("the answer carries the secret in the clear")
		}
	}
	short, cancel2 := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel2()
	if _, err := AskShare(short, other, "unit-a", WitnessName, conn.LocalAddr().String()); err == nil {
		t.Fatal("a request under another key was answered")
	}
	if _, err := AskShare(short, key, "unit-b", WitnessName, conn.LocalAddr().String()); err == nil {
		t.Fatal("the holder answered for a unit it does not keep a share for")
	}
}
