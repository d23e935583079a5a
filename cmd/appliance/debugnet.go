//go:build lawboxtest

package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lawbox/appliance/appliance/pair/wire"
	"github.com/lawbox/appliance/appliance/witness"
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
//	reach IP:PORT          open one TCP connection (2 s at most) and print the error, <nil> when it worked
//	relay PORT IP:PORT     accept TCP connections on PORT and carry each to IP:PORT: the host's SMB client
//	                       reaches the service address through the PC as an office PC would
//	pgload URL             commit one row after another through URL (see pgLoad)
//	pgload stop            stop it and print the ids whose commits were acknowledged
//	pgwait URL             wait for a 10-minute query through URL with TCP keep-alive off (a client that
//	                       learns of a dead server only from the network); print the probe clock and the
//	                       error when it ends
type netDebug struct {
	mu    sync.Mutex // guards start and load
	start time.Time  // the probe clock's zero
	load  *pgLoad
}

func (d *netDebug) command(f []string, out io.Writer) bool {
	switch {
	case f[0] == "addr" && len(f) == 3:
		p, err := netip.ParsePrefix(f[2])
		if err == nil {
			port := []static.Port{{Name: f[1], Addresses: []netip.Prefix{p}}}
			var cur map[string]static.Current
			if cur, err = static.Read(port); err == nil {
				err = static.Apply(static.Diff(cur, port, nil))
			}
		}
		fmt.Fprintf(out, "debug: addr %s %s: %v\n", f[1], f[2], err)
	case f[0] == "witness" && len(f) == 2:
		key, err := hex.DecodeString(f[1])
		var conn net.PacketConn
		if err == nil {
			conn, err = net.ListenPacket("udp", fmt.Sprintf(":%d", wire.WitnessPort))
		}
		if err == nil {
			s := &witness.WitnessServer{Key: key, Log: slog.New(slog.NewTextHandler(out, nil)), Now: time.Now, Name: "witness"}
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
	case f[0] == "reach" && len(f) == 2:
		c, err := net.DialTimeout("tcp", f[1], 2*time.Second)
		if err == nil {
			c.Close()
		}
		fmt.Fprintf(out, "debug: reach %s: %v\n", f[1], err)
	case f[0] == "relay" && len(f) == 3:
		l, err := net.Listen("tcp", ":"+f[1])
		if err == nil {
			go relay(l, f[2])
		}
		fmt.Fprintf(out, "debug: relay %s %s: %v\n", f[1], f[2], err)
	case f[0] == "pgload" && len(f) == 2 && f[1] == "stop":
		d.mu.Lock()
		l := d.load
		d.load = nil
		d.mu.Unlock()
		if l == nil {
			fmt.Fprintln(out, "debug: pgload: not running")
			break
		}
		fmt.Fprintf(out, "debug: pgload acked %s\n", l.stop())
	case f[0] == "pgload" && len(f) == 2:
		d.mu.Lock()
		if d.start.IsZero() {
			d.start = time.Now()
		}
		l := &pgLoad{url: f[1], out: out, clock: d.elapsed, done: make(chan struct{})}
		if d.load == nil {
			d.load = l
			l.ctx, l.cancel = context.WithCancel(context.Background())
			go l.run()
		}
		d.mu.Unlock()
		fmt.Fprintln(out, "debug: pgload started")
	case f[0] == "pgwait" && len(f) == 2:
		go func() {
			cfg, err := pgx.ParseConfig(f[1])
			if err == nil {
				cfg.DialFunc = (&net.Dialer{KeepAlive: -1, Timeout: 5 * time.Second}).DialContext
				var c *pgx.Conn
				if c, err = pgx.ConnectConfig(context.Background(), cfg); err == nil {
					fmt.Fprintln(out, "debug: pgwait waiting")
					_, err = c.Exec(context.Background(), "SELECT pg_sleep(600)")
					c.Close(context.Background())
				}
			}
			fmt.Fprintf(out, "debug: pgwait ended at %d: %v\n", d.elapsed(), err)
		}()
	default:
		return false
	}
	return true
}

// relay carries every connection accepted on l to target, both ways, until either side closes.
func relay(l net.Listener, target string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			t, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				return
			}
			defer t.Close()
			done := make(chan struct{}, 2)
			for _, p := range [][2]net.Conn{{t, c}, {c, t}} {
				go func() {
					_, _ = io.Copy(p[0], p[1])
					done <- struct{}{}
				}()
			}
			<-done // one side ended: close both
		}()
	}
}

func (d *netDebug) elapsed() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Since(d.start).Milliseconds()
}

// pgLoad is the office application in the database tests: it commits INSERT INTO load VALUES (n), one after
// another with a new n each time (a commit whose answer was lost is never retried with the same n), and
// reconnects on any error. It prints the probe clock at the first failure and at the first commit after
// one, every error a server answered (SQLSTATE and message), and a count every 100 commits; stop returns the acknowledged ids as ranges ("1-530,532-900").
type pgLoad struct {
	url    string
	out    io.Writer
	clock  func() int64
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	acked  []int64
}

func (l *pgLoad) run() {
	defer close(l.done)
	var c *pgx.Conn
	failing := false
	// ids continue from the clock, so a second load never collides with the rows of a first one
	for n := time.Now().UnixMicro(); l.ctx.Err() == nil; n++ {
		began := time.Now()
		err := func() error {
			ctx, cancel := context.WithTimeout(l.ctx, 30*time.Second)
			defer cancel()
			if c == nil {
				var err error
				if c, err = pgx.Connect(ctx, l.url); err != nil {
					return err
				}
			}
			_, err := c.Exec(ctx, "INSERT INTO load (id) VALUES ($1)", n)
			if err != nil {
				c.Close(context.Background())
				c = nil
			}
			return err
		}()
		var pe *pgconn.PgError
		if errors.As(err, &pe) && l.ctx.Err() == nil {
			// an answer from a server, not a lost connection: what an office application would show
			fmt.Fprintf(l.out, "debug: pgload sql error %s at %d: %s\n", pe.Code, l.clock(), pe.Message)
		}
		switch {
		case err != nil && l.ctx.Err() == nil:
			if !failing {
				fmt.Fprintf(l.out, "debug: pgload failing at %d: %v\n", l.clock(), err)
			}
			failing = true
			time.Sleep(50 * time.Millisecond)
		case err == nil:
			if failing {
				fmt.Fprintf(l.out, "debug: pgload resumed at %d\n", l.clock())
			} else if took := time.Since(began); took > time.Second {
				// a commit that waited (for a mirror gone, say): the client saw it hang that long
				fmt.Fprintf(l.out, "debug: pgload slow commit at %d: %d ms\n", l.clock(), took.Milliseconds())
			}
			failing = false
			l.acked = append(l.acked, n)
			if len(l.acked)%100 == 0 {
				fmt.Fprintf(l.out, "debug: pgload commits %d at %d\n", len(l.acked), l.clock())
			}
		}
	}
	if c != nil {
		c.Close(context.Background())
	}
}

func (l *pgLoad) stop() string {
	l.cancel()
	<-l.done
	var b strings.Builder
	for i := 0; i < len(l.acked); {
		j := i
		for j+1 < len(l.acked) && l.acked[j+1] == l.acked[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d-%d", l.acked[i], l.acked[j])
		i = j + 1
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
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
