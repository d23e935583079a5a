package qemutests

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// The hub forwards between real unixgram sockets standing in for two VMs, and a cut port drops frames.
func TestHubForwardsAndCuts(t *testing.T) {
	dir := t.TempDir()
	h := NewHub(dir)
	defer h.Close()
	vm := func() (*net.UnixConn, *net.UnixAddr) {
		_, vmPath, hubPath, err := h.AddPort()
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: vmPath, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, &net.UnixAddr{Name: hubPath, Net: "unixgram"}
	}
	a, aHub := vm()
	b, _ := vm()
	if _, err := a.WriteToUnix([]byte("frame-1"), aHub); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := b.ReadFromUnix(buf)
	if err != nil || string(buf[:n]) != "frame-1" {
		t.Fatalf("b got %q, %v; want frame-1", buf[:n], err)
	}
	h.SetCut(1, true)
	a.WriteToUnix([]byte("frame-2"), aHub)
	b.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := b.ReadFromUnix(buf); err == nil {
		t.Errorf("cut port received %q", buf[:n])
	}
	if _, dropped := h.Counters(1); dropped != 1 {
		t.Errorf("dropped on port 1 = %d, want 1", dropped)
	}
	h.SetCut(1, false)
	tapped := make(chan string, 1)
	h.SetTap(func(port int, frame []byte) { tapped <- fmt.Sprint(port, string(frame)) })
	a.WriteToUnix([]byte("frame-3"), aHub)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := b.ReadFromUnix(buf); err != nil || string(buf[:n]) != "frame-3" {
		t.Errorf("after restore b got %q, %v", buf[:n], err)
	}
	if got := <-tapped; got != "0frame-3" {
		t.Errorf("tap saw %q, want port 0 frame-3", got)
	}
	h.SetTap(nil)
	if err := h.Inject(1, []byte("forged")); err != nil {
		t.Fatal(err)
	}
	if n, _, err := b.ReadFromUnix(buf); err != nil || string(buf[:n]) != "forged" {
		t.Errorf("injected frame: b got %q, %v", buf[:n], err)
	}
}
