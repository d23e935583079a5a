package pair

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
)

func testCert(t *testing.T) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "unit"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	c := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c, nil }
}

func freeTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serveLink runs n's link on ip:port with h.
func serveLink(t *testing.T, n *Node, ip string, port int, h http.HandlerFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Link{Log: n.Log, Node: n, Handler: h, Cert: testCert(t), Listen: net.JoinHostPort(ip, fmt.Sprint(port))}
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, 5*time.Second, "link listening", func() error {
		c, err := net.Dial("tcp", l.Listen)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// The link between two paired units: a request proven with the pair key is served and its answer proven
// back; a request without the proof is refused; an answer from a server that lacks the pair key (one that
// took the partner's address) is not believed.
func TestLink(t *testing.T) {
	port, linkPort := freeUDPPort(t), freeTCPPort(t)
	withLink := func(n *Node) { n.LinkPort = linkPort }
	a := startNode(t, "unit-a", "127.0.0.1", port, nil, withLink)
	b := startNode(t, "unit-b", "127.0.0.2", port, nil, withLink)
	ctx := context.Background()
	code, err := a.Invite(ctx, appliance.PairSettings{VIP: "192.0.2.100/24", Mode: Manual})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Join(ctx, "127.0.0.1", code); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "B knows A's address", func() error {
		if len(b.PeerAddrs()) == 0 {
			return errors.New("no address")
		}
		return nil
	})
	serveLink(t, a.Node, "127.0.0.1", linkPort, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
	})

	resp, err := b.Call(ctx, "POST", "/echo", strings.NewReader("bundle"), 6)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != "POST /echo bundle" {
		t.Errorf("answer = %d %q", resp.StatusCode, got)
	}

	// Without the proof (any TLS client on the LAN): refused, and counted.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	r2, err := hc.Post(fmt.Sprintf("https://127.0.0.1:%d/echo", linkPort), "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusForbidden || a.Pair().Rejected["link"] != 1 {
		t.Errorf("a request without proof = %d, rejected %v", r2.StatusCode, a.Pair().Rejected)
	}

	// A server on A's address that lacks the key (a replaced box, someone in the middle): its answer is
	// refused as not the partner's, whatever it says.
	impostor := &Node{Log: a.Log, Name: "unit-a"}
	impostor.cfg = &Config{Name: "unit-a", Peer: "unit-b", Key: []byte("another pair's key, 32 bytes....")}
	fakePort := freeTCPPort(t)
	serveLink(t, impostor, "127.0.0.1", fakePort, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	b.LinkPort = fakePort
	if resp, err := b.Call(ctx, "GET", "/echo", nil, 0); !errors.Is(err, ErrLink) {
		if resp != nil {
			resp.Body.Close()
		}
		t.Errorf("the impostor's answer: %v, want %v", err, ErrLink)
	}
}

// The link tries first the partner's addresses its heartbeats arrive on: a cut cable (packets dropped)
// costs a connection timeout only when nothing else is heard.
func TestLinkTriesHeardPathsFirst(t *testing.T) {
	now := time.Now()
	n := &Node{Now: func() time.Time { return now }}
	n.cfg = &Config{TimeoutMS: 1000, PeerAddrs: []string{"198.51.100.2", "192.0.2.11", "192.0.2.12"}}
	if got := fmt.Sprint(n.linkAddrs()); got != "[198.51.100.2 192.0.2.11 192.0.2.12]" {
		t.Errorf("nothing heard: %s, want the partner's order", got)
	}
	n.peer.paths = map[string]time.Time{"198.51.100.2": now.Add(-5 * time.Second), "192.0.2.12": now.Add(-100 * time.Millisecond)}
	if got := fmt.Sprint(n.linkAddrs()); got != "[192.0.2.12 198.51.100.2 192.0.2.11]" {
		t.Errorf("the cable silent, the second LAN address heard: %s", got)
	}
}
