package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

// issue makes a certificate for unit.office.example signed by a test CA, and its key, in PEM.
func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, from, to time.Time, eku x509.ExtKeyUsage) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "unit.office.example"},
		NotBefore: from, NotAfter: to, DNSNames: []string{"unit.office.example"}, ExtKeyUsage: []x509.ExtKeyUsage{eku},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

// The office's own certificate replaces the self-signed one (and stays across a restart); a key that does
// not match, an expired certificate or one not for servers is refused with the reason and changes nothing;
// a reset makes a new self-signed one.
func TestKeeper(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	k, err := NewKeeper(st, "appliance-1", []net.IP{net.IPv4(192, 0, 2, 10)}, clock)
	if err != nil {
		t.Fatal(err)
	}
	changes := 0 // other servers (PostgreSQL) are told of each replacement, and only of those
	k.OnChange = func() { changes++ }
	ctx := context.Background()
	first, _ := k.Certificate(ctx)
	if !first.SelfSigned || !strings.Contains(strings.Join(first.Names, " "), "192.0.2.10") {
		t.Errorf("first certificate %+v", first)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Office CA"}, NotBefore: now.AddDate(-1, 0, 0),
		NotAfter: now.AddDate(5, 0, 0), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)

	good, goodKey := issue(t, ca, caKey, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0), x509.ExtKeyUsageServerAuth)
	_, otherKey := issue(t, ca, caKey, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0), x509.ExtKeyUsageServerAuth)
	expired, expiredKey := issue(t, ca, caKey, now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0), x509.ExtKeyUsageServerAuth)
	client, clientKey := issue(t, ca, caKey, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0), x509.ExtKeyUsageClientAuth)
	for name, c := range map[string][2]string{"mismatched key": {good, otherKey}, "expired": {expired, expiredKey},
		"client certificate": {client, clientKey}, "garbage": {"not a certificate", goodKey}} {
		if err := k.SetCertificate(ctx, c[0], c[1]); !errors.Is(err, appliance.ErrBadInput) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if c, _ := k.Certificate(ctx); c.Fingerprint != first.Fingerprint || changes != 0 {
		t.Fatalf("a refused certificate replaced the current one (%d changes told)", changes)
	}
	if err := k.SetCertificate(ctx, good, goodKey); err != nil {
		t.Fatal(err)
	}
	c, _ := k.Certificate(ctx)
	if c.SelfSigned || c.Issuer != "CN=Office CA" || c.Names[0] != "unit.office.example" {
		t.Errorf("uploaded certificate %+v", c)
	}
	if served, _ := k.GetCertificate(nil); Fingerprint(*served) != c.Fingerprint {
		t.Error("the server is not given the uploaded certificate")
	}
	k2, err := NewKeeper(st, "appliance-1", nil, clock)
	if err != nil {
		t.Fatal(err)
	}
	if c2, _ := k2.Certificate(ctx); c2.Fingerprint != c.Fingerprint {
		t.Error("the uploaded certificate did not survive a restart")
	}
	if err := k.ResetCertificate(ctx); err != nil {
		t.Fatal(err)
	}
	if c3, _ := k.Certificate(ctx); !c3.SelfSigned || c3.Fingerprint == first.Fingerprint || c3.Fingerprint == c.Fingerprint {
		t.Errorf("after reset %+v", c3)
	}
	if changes != 2 {
		t.Errorf("%d changes told, want 2 (the upload and the reset)", changes)
	}
}
