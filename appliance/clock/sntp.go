// Package clock keeps the unit's clock right: it asks the office's time servers (SNTP, RFC 4330) and
// steps the clock when it is off. The pair's leases and every TLS certificate check depend on it.
package clock

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// Sample is one server's answer.
type Sample struct {
	Server  string
	Offset  time.Duration // add it to the local clock to get the server's
	RTT     time.Duration
	Stratum int
}

// ntpEpoch is 1900-01-01, where NTP time starts.
var ntpEpoch = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

func fromNTP(v uint64) time.Time {
	sec, frac := v>>32, v&0xffffffff
	return ntpEpoch.Add(time.Duration(sec)*time.Second + time.Duration(frac*uint64(time.Second)>>32))
}

// ErrBadAnswer is an answer that does not count: not a server's, not to our question, or from a server
// that is not synchronised itself.
var ErrBadAnswer = errors.New("not a usable time server answer")

// Query asks server ("host" or "host:port", port 123 by default) for the time; now is the local clock.
func Query(ctx context.Context, server string, now func() time.Time) (Sample, error) {
	addr := server
	if _, _, err := net.SplitHostPort(server); err != nil {
		addr = net.JoinHostPort(server, "123")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return Sample{}, fmt.Errorf("time server %s: %w", server, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)

	// The transmit timestamp we send is random: the answer must echo it (as its origin), which a
	// spoofed or stale answer cannot; the real send time is kept here.
	var req [48]byte
	req[0] = 0<<6 | 4<<3 | 3 // no leap warning, version 4, mode 3 (client)
	if _, err := rand.Read(req[40:48]); err != nil {
		return Sample{}, err
	}
	t1 := now()
	if _, err := conn.Write(req[:]); err != nil {
		return Sample{}, fmt.Errorf("time server %s: %w", server, err)
	}
	var resp [48]byte
	for {
		n, err := conn.Read(resp[:])
		if err != nil {
			return Sample{}, fmt.Errorf("time server %s: %w", server, err)
		}
		if n >= 48 && binary.BigEndian.Uint64(resp[24:32]) == binary.BigEndian.Uint64(req[40:48]) {
			break // an answer to this question; anything else is ignored
		}
	}
	t4 := now()
	li, mode, stratum := resp[0]>>6, resp[0]&7, int(resp[1])
	switch {
	case mode != 4:
		return Sample{}, fmt.Errorf("time server %s: mode %d: %w", server, mode, ErrBadAnswer)
	case li == 3 || stratum == 0 || stratum > 15:
		return Sample{}, fmt.Errorf("time server %s: not synchronised itself (stratum %d): %w", server, stratum, ErrBadAnswer)
	}
	t2 := fromNTP(binary.BigEndian.Uint64(resp[32:40])) // the server received
	t3 := fromNTP(binary.BigEndian.Uint64(resp[40:48])) // the server sent
	if t3.Before(t2) {
		return Sample{}, fmt.Errorf("time server %s: sent before it received: %w", server, ErrBadAnswer)
	}
	return Sample{
		Server:  server,
		Offset:  (t2.Sub(t1) + t3.Sub(t4)) / 2,
		RTT:     t4.Sub(t1) - t3.Sub(t2),
		Stratum: stratum,
	}, nil
}
