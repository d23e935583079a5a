// Package certs gives the unit its HTTPS certificate: a self-signed ECDSA certificate made at first boot,
// or one the office uploads, kept in the state store. It does not serve anything.
package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

const certKey, keyKey = "tls_cert", "tls_key"

// LoadOrCreate returns the unit's certificate, creating and storing a self-signed one for hostname if the
// store has none. The certificate also names the given IP addresses.
func LoadOrCreate(st *state.Store, hostname string, ips []net.IP, now time.Time) (tls.Certificate, error) {
	certPEM, err1 := st.Get(state.BucketConfig, certKey)
	keyPEM, err2 := st.Get(state.BucketConfig, keyKey)
	if err1 == nil && err2 == nil {
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("load TLS certificate: %w", err)
		}
		return c, nil
	}
	if !errors.Is(err1, state.ErrNotFound) && err1 != nil {
		return tls.Certificate{}, err1
	}
	certPEM, keyPEM, err := selfSigned(hostname, ips, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := errors.Join(st.Put(state.BucketConfig, keyKey, keyPEM), st.Put(state.BucketConfig, certKey, certPEM)); err != nil {
		return tls.Certificate{}, fmt.Errorf("save TLS certificate: %w", err)
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func selfSigned(hostname string, ips []net.IP, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostname, Organization: []string{"Appliance self-signed"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{hostname, hostname + ".local", "localhost"},
		IPAddresses:  append([]net.IP{net.IPv4(127, 0, 0, 1)}, ips...),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create TLS certificate: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode TLS key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// Fingerprint returns the SHA-256 fingerprint of a certificate's leaf, as browsers show it (AB:CD:...).
func Fingerprint(c tls.Certificate) string {
	if len(c.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(c.Certificate[0])
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// PEM returns the stored certificate and key, for servers that read files (PostgreSQL).
func PEM(st *state.Store) (certPEM, keyPEM []byte, err error) {
	if certPEM, err = st.Get(state.BucketConfig, certKey); err != nil {
		return nil, nil, err
	}
	if keyPEM, err = st.Get(state.BucketConfig, keyKey); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

// Keeper holds the certificate the HTTPS server presents, and replaces it: with one the office uploads
// (its own CA's, or a public one), or with a new self-signed one. The server picks up a change at the next
// connection (GetCertificate). It implements appliance.Certificates.
type Keeper struct {
	st       *state.Store
	hostname string
	ips      []net.IP
	now      func() time.Time

	// OnChange, when set, is called after the certificate was replaced (other servers presenting it).
	OnChange func()

	mu  sync.RWMutex
	cur tls.Certificate
}

var _ appliance.Certificates = (*Keeper)(nil)

// NewKeeper loads the stored certificate, making a self-signed one if there is none.
func NewKeeper(st *state.Store, hostname string, ips []net.IP, now func() time.Time) (*Keeper, error) {
	c, err := LoadOrCreate(st, hostname, ips, now())
	if err != nil {
		return nil, err
	}
	return &Keeper{st: st, hostname: hostname, ips: ips, now: now, cur: c}, nil
}

// GetCertificate is tls.Config.GetCertificate.
func (k *Keeper) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	c := k.cur
	return &c, nil
}

// Current returns the certificate presented now.
func (k *Keeper) Current() tls.Certificate {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.cur
}

// Certificate describes the certificate presented now.
func (k *Keeper) Certificate(context.Context) (appliance.CertInfo, error) {
	c := k.Current()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return appliance.CertInfo{}, fmt.Errorf("TLS certificate: %w", err)
	}
	return appliance.CertInfo{Subject: leaf.Subject.String(), Issuer: leaf.Issuer.String(), Names: names(leaf),
		NotAfter: leaf.NotAfter, Fingerprint: Fingerprint(c), SelfSigned: selfSignedLeaf(leaf)}, nil
}

// selfSignedLeaf: issued by itself (checked by signature: the unit's own is no CA, so CheckSignatureFrom refuses it).
func selfSignedLeaf(leaf *x509.Certificate) bool {
	return bytes.Equal(leaf.RawIssuer, leaf.RawSubject) && leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil
}

func names(leaf *x509.Certificate) []string {
	out := append([]string{}, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// SetCertificate replaces the certificate with an uploaded one: PEM certificate (the server's first, then
// its intermediates) and its private key. Refused, and nothing changed, when they do not match, the
// certificate is expired or not yet valid, or it is not for servers.
func (k *Keeper) SetCertificate(_ context.Context, certPEM, keyPEM string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", appliance.ErrBadInput, fmt.Sprintf(format, args...))
	}
	c, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return bad("certificate and key: %v", err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return bad("certificate: %v", err)
	}
	now := k.now()
	if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return bad("the certificate is valid from %s to %s, not now", leaf.NotBefore.Format(time.DateOnly), leaf.NotAfter.Format(time.DateOnly))
	}
	if len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return bad("the certificate is not for web servers (no serverAuth usage)")
	}
	return k.store([]byte(certPEM), []byte(keyPEM), c)
}

// ResetCertificate goes back to a new self-signed certificate.
func (k *Keeper) ResetCertificate(context.Context) error {
	certPEM, keyPEM, err := selfSigned(k.hostname, k.ips, k.now())
	if err != nil {
		return err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	return k.store(certPEM, keyPEM, c)
}

func (k *Keeper) store(certPEM, keyPEM []byte, c tls.Certificate) error {
	k.mu.Lock()
	err := errors.Join(k.st.Put(state.BucketConfig, keyKey, keyPEM), k.st.Put(state.BucketConfig, certKey, certPEM))
	if err == nil {
		k.cur = c
	}
	k.mu.Unlock()
	if err != nil {
		return fmt.Errorf("save TLS certificate: %w", err)
	}
	if k.OnChange != nil {
		k.OnChange()
	}
	return nil
}
