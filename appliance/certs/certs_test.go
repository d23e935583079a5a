package certs

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance/state"
)

func TestLoadOrCreateKeepsTheCertificate(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	c1, err := LoadOrCreate(st, "appliance-abc", []net.IP{net.ParseIP("192.0.2.10")}, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c1.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("appliance-abc"); err != nil {
		t.Errorf("VerifyHostname: %v", err)
	}
	if err := leaf.VerifyHostname("192.0.2.10"); err != nil {
		t.Errorf("VerifyHostname(IP): %v", err)
	}
	c2, err := LoadOrCreate(st, "other-name", nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if Fingerprint(c1) != Fingerprint(c2) {
		t.Error("second LoadOrCreate made a new certificate; want the stored one")
	}
	fp := Fingerprint(c1)
	if want := fmt.Sprintf("%02X", sha256.Sum256(c1.Certificate[0])); strings.ReplaceAll(fp, ":", "") != want {
		t.Errorf("Fingerprint = %s, want %s with colons", fp, want)
	}
}
