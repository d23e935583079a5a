package link

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The watcher's bookkeeping over a sequence of kernel messages (the kernel's side is proven in QEMU,
// where a NIC's link is switched off and on).
func TestUpdate(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	w := &Watcher{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }}
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	eth := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "eth1", HardwareAddr: mac}}
	lo := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "lo", Flags: net.FlagLoopback}}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth0"}}
	up := uint32(unix.IFF_UP | unix.IFF_LOWER_UP)

	w.Update(false, 1, up, lo)
	w.Update(false, 5, up, veth)
	w.Update(false, 2, unix.IFF_UP, eth) // no cable yet
	if s := w.States(); len(s) != 1 || s[0].Name != "eth1" || s[0].Carrier || s[0].Seen || s[0].MAC != mac.String() {
		t.Fatalf("a port without its cable: %+v", s)
	}
	now = now.Add(time.Minute)
	w.Update(false, 2, up, eth)
	now = now.Add(time.Minute)
	w.Update(false, 2, up, eth) // another message (e.g. an address change): no state change
	if s := w.States()[0]; !s.Carrier || !s.Seen || !s.Changed.Equal(now.Add(-time.Minute)) {
		t.Fatalf("cable plugged in: %+v", s)
	}
	now = now.Add(time.Minute)
	w.Update(false, 2, unix.IFF_UP, eth)
	if s := w.States()[0]; s.Carrier || !s.Seen || !s.Changed.Equal(now) {
		t.Fatalf("cable pulled: %+v", s)
	}
	w.Update(true, 2, 0, eth)
	if s := w.States(); len(s) != 0 {
		t.Fatalf("a removed port stays: %+v", s)
	}
}
