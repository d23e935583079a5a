package database

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// presented returns the certificate chain the PostgreSQL server at addr presents: an SSLRequest, then a
// TLS handshake that checks nothing itself (the admin compares the fingerprint, as with SSH). A server
// that does not offer TLS is an error.
func presented(ctx context.Context, addr string) ([]*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	req := binary.BigEndian.AppendUint32(nil, 8)
	req = binary.BigEndian.AppendUint32(req, 80877103) // SSLRequest
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	answer := make([]byte, 1)
	if _, err := io.ReadFull(c, answer); err != nil {
		return nil, err
	}
	if answer[0] != 'S' {
		return nil, fmt.Errorf("%s does not offer TLS: turn ssl on in its postgresql.conf (the unit mirrors over TLS only): %w", addr, appliance.ErrBadInput)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) // checked by fingerprint
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS with %s: %w", addr, err)
	}
	chain := tc.ConnectionState().PeerCertificates
	if len(chain) == 0 {
		return nil, fmt.Errorf("%s presents no certificate: %w", addr, appliance.ErrBadInput)
	}
	return chain, nil
}

// fingerprint is a certificate's SHA-256 as openssl and browsers show it (AB:CD:...).
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// sameFingerprint compares fingerprints however they are written (case, colons, spaces, "sha256 Fingerprint=").
func sameFingerprint(a, b string) bool {
	norm := func(s string) string {
		if i := strings.LastIndex(s, "="); i >= 0 {
			s = s[i+1:]
		}
		return strings.ToUpper(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s)))
	}
	return norm(a) != "" && norm(a) == norm(b)
}

// pinUpstream checks that the external server up presents the certificate whose fingerprint the admin
// confirmed, and keeps its chain in up.CAFile, the only root the mirror's connections trust from then on.
// Without a fingerprint, or with another, the answer names the fingerprint the server presents.
func (m *Manager) pinUpstream(ctx context.Context, up *upstream, confirmed string) error {
	if m.cred == nil {
		return fmt.Errorf("upstream: the database server is not running yet: %w", appliance.ErrUnavailable)
	}
	addr := net.JoinHostPort(up.Host, strconv.Itoa(up.Port))
	chain, err := presented(ctx, addr)
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	fp := fingerprint(chain[0])
	if !sameFingerprint(confirmed, fp) {
		return fmt.Errorf("upstream %s presents the TLS certificate with SHA-256 fingerprint %s: compare it with the server's own "+
			"(openssl x509 -noout -fingerprint -sha256 -in server.crt) and send it as the fingerprint to confirm: %w", addr, fp, appliance.ErrBadInput)
	}
	var b bytes.Buffer
	for _, c := range chain {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	if err := writeAtomic(up.CAFile, b.Bytes(), m.cred); err != nil {
		return fmt.Errorf("upstream: keep its certificate: %w", err)
	}
	return nil
}
