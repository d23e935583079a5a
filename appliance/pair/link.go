package pair

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/lawbox/appliance/appliance/pair/wire"
)

// The link is the units' requests to each other that do not fit a heartbeat (a firmware bundle, a step
// of a rolling update): HTTP over TLS 1.3 on TCP port Port. Each request and each answer carries a proof
// made with a key derived from the pair key over the TLS session's exported keying material (RFC 5705,
// as RFC 9266's tls-exporter binding): whoever lacks the pair key can neither ask nor answer, and a
// machine in the middle, holding two sessions, cannot pass one side's proof on to the other. The
// certificates are the units' own and are not what is trusted.
const (
	linkProof    = "Lawbox-Link"
	linkFrom     = "Lawbox-Unit"
	linkExporter = "EXPORTER-lawbox-pair-link"
)

// ErrLink is an answer that does not come from the partner (no proof, or a wrong one).
var ErrLink = errors.New("the other unit's answer carries no valid proof of the pair key")

func linkTLS() *tls.Config { return &tls.Config{MinVersion: tls.VersionTLS13} }

// proof is the side's proof over the session's keying material.
func proof(pairKey []byte, side string, cs tls.ConnectionState) (string, error) {
	ekm, err := cs.ExportKeyingMaterial(linkExporter, nil, 32)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, wire.Derive(pairKey, "lawbox link v1"))
	mac.Write([]byte(side))
	mac.Write(ekm)
	return hex.EncodeToString(mac.Sum(nil)), nil
}

// pairKey is the pair's key and the units' names in it, or ok false when unpaired.
func (n *Node) pairKey() (key []byte, name, peer string, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg == nil {
		return nil, "", "", false
	}
	return n.cfg.Key, n.cfg.Name, n.cfg.Peer, true
}

// Link serves the partner's requests (Handler) on the link. Long-running.
type Link struct {
	Log     *slog.Logger
	Node    *Node
	Handler http.Handler
	Cert    func(*tls.ClientHelloInfo) (*tls.Certificate, error) // the unit's certificate
	Listen  string                                               // ":7946" when empty
}

// Run serves the link until ctx ends.
func (l *Link) Run(ctx context.Context) error {
	addr := l.Listen
	if addr == "" {
		addr = ":" + strconv.Itoa(Port)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pair link: %w", err)
	}
	cfg := linkTLS()
	cfg.GetCertificate = l.Cert
	srv := &http.Server{Handler: l.guard(l.Handler), TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(l.Log.Handler(), slog.LevelDebug)}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("pair link: %w", err)
	case <-ctx.Done():
	}
	shctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shctx)
	return nil
}

// guard passes only requests proven with the pair key from the partner, and proves the answers.
func (l *Link) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, _, peer, ok := l.Node.pairKey()
		if !ok || r.TLS == nil {
			http.Error(w, "not paired", http.StatusForbidden)
			return
		}
		want, err := proof(key, "request", *r.TLS)
		if err != nil || r.Header.Get(linkFrom) != peer || !hmac.Equal([]byte(r.Header.Get(linkProof)), []byte(want)) {
			l.Node.mu.Lock()
			l.Node.reject("link")
			l.Node.mu.Unlock()
			http.Error(w, "no valid proof of the pair key", http.StatusForbidden)
			return
		}
		answer, _ := proof(key, "answer", *r.TLS)
		w.Header().Set(linkProof, answer)
		h.ServeHTTP(w, r)
	})
}

// Call sends a request to the partner over the link, trying each of its addresses in turn until one
// connects, those its heartbeats arrive on first (a cut path only costs a connection timeout when no
// other is heard). The answer's proof is checked before it is returned; the caller closes its body. body is sent
// once: an address that fails after it was sent is not tried again with another.
func (n *Node) Call(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Response, error) {
	key, name, _, ok := n.pairKey()
	if !ok {
		return nil, errors.New("not paired")
	}
	port := Port
	if n.LinkPort != 0 {
		port = n.LinkPort
	}
	var errs []error
	for _, a := range n.linkAddrs() {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: linkTLS()}
		d.Config.InsecureSkipVerify = true // the proofs authenticate the session, not the certificate
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(a, strconv.Itoa(port)))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return n.exchange(ctx, c.(*tls.Conn), key, name, method, "https://"+net.JoinHostPort(a, strconv.Itoa(port))+path, body, size)
	}
	return nil, fmt.Errorf("reach the other unit: %w", errors.Join(errs...))
}

// linkAddrs are the partner's addresses, those heard within the heartbeat timeout first, each group in
// the partner's order.
func (n *Node) linkAddrs() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg == nil {
		return nil
	}
	now, timeout := n.Now(), n.cfg.timeout()
	heard := func(a string) bool { t := n.peer.paths[a]; return !t.IsZero() && now.Sub(t) < timeout }
	addrs := slices.Clone(n.cfg.PeerAddrs)
	slices.SortStableFunc(addrs, func(a, b string) int {
		switch ha, hb := heard(a), heard(b); {
		case ha && !hb:
			return -1
		case hb && !ha:
			return 1
		}
		return 0
	})
	return addrs
}

// exchange sends one request on c and reads its answer; c closes with the answer's body.
func (n *Node) exchange(ctx context.Context, c *tls.Conn, key []byte, name, method, url string, body io.Reader, size int64) (*http.Response, error) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	fail := func(err error) (*http.Response, error) {
		stop()
		c.Close()
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	p, err := proof(key, "request", c.ConnectionState())
	if err != nil {
		return fail(err)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return fail(err)
	}
	req.ContentLength = size
	req.Header.Set(linkProof, p)
	req.Header.Set(linkFrom, name)
	req.Close = true
	if err := req.Write(c); err != nil {
		return fail(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return fail(err)
	}
	want, err := proof(key, "answer", c.ConnectionState())
	if err != nil || !hmac.Equal([]byte(resp.Header.Get(linkProof)), []byte(want)) {
		resp.Body.Close()
		return fail(ErrLink)
	}
	resp.Body = closer{resp.Body, func() { stop(); c.Close() }}
	return resp, nil
}

type closer struct {
	io.ReadCloser
	done func()
}

func (c closer) Close() error {
	err := c.ReadCloser.Close()
	c.done()
	return err
}
