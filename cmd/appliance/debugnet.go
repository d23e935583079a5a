package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance/pair"
	"github.com/lawbox/appliance/netcfg/static"
)

// The network half of the debug console, used by the pair tests on a third VM that plays the office PC:
//
//	addr PORT PREFIX       give a port a fixed address (e.g. addr eth1 192.0.2.30/24)
//	witness KEYHEX         run the witness program (cmd/witness) on UDP 7947
//	probe IP:PORT          open a TCP connection every 20 ms; print the elapsed ms and the MAC address that
//	                       answered (the neighbour entry of IP) whenever that changes. TCP only: a TLS
//	                       handshake 50 times a second would load the unit being measured.
//	mark                   print the probe clock now (the tests send it right after a kill -9)
type netDebug struct {
	mu    sync.Mutex // guards start
	start time.Time  // the probe clock's zero
}

func (d *netDebug) command(f []string, out io.Writer) bool {
	switch {
	case f[0] == "addr" && len(f) == 3:
		p, err := netip.ParsePrefix(f[2])
		if err == nil {
			port := []static.Port{{Name: f[1], Addresses: []netip.Prefix{p}}}
			var cur map[string]static.Current
			if cur, err = static.Read([]string{f[1]}); err == nil {
				err = static.Apply(static.Diff(cur, port, nil))
			}
		}
		fmt.Fprintf(out, "debug: addr %s %s: %v\n", f[1], f[2], err)
	case f[0] == "witness" && len(f) == 2:
		key, err := hex.DecodeString(f[1])
		var conn net.PacketConn
		if err == nil {
			conn, err = net.ListenPacket("udp", fmt.Sprintf(":%d", pair.WitnessPort))
		}
		if err == nil {
			s := &pair.WitnessServer{Key: key, Log: slog.New(slog.NewTextHandler(out, nil)), Now: time.Now, Name: "witness"}
			go s.Serve(context.Background(), conn)
		}
		fmt.Fprintf(out, "debug: witness: %v\n", err)
	case f[0] == "probe" && len(f) == 2:
		d.mu.Lock()
		d.start = time.Now()
		d.mu.Unlock()
		go d.probe(f[1], out)
		fmt.Fprintf(out, "debug: probing %s\n", f[1])
	case f[0] == "mark":
		fmt.Fprintf(out, "debug: mark %d\n", d.elapsed())
	default:
		return false
	}
	return true
}

func (d *netDebug) elapsed() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Since(d.start).Milliseconds()
}

// probe opens a TCP connection every 20 ms (each may take up to 2 s, so a dead holder does not delay the
// next attempt) and prints who answered, in the order the answers come.
func (d *netDebug) probe(addr string, out io.Writer) {
	var mu sync.Mutex
	last := ""
	host, _, _ := net.SplitHostPort(addr)
	for range time.Tick(20 * time.Millisecond) {
		go func() {
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				return
			}
			c.Close()
			name := neighbour(host)
			mu.Lock()
			defer mu.Unlock()
			if name != last {
				last = name
				fmt.Fprintf(out, "debug: probe %d %s\n", d.elapsed(), name)
			}
		}()
	}
}

// neighbour returns the MAC address the kernel's ARP table holds for ip.
func neighbour(ip string) string {
	b, _ := os.ReadFile("/proc/net/arp")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == ip {
			return f[3]
		}
	}
	return "unknown"
}
