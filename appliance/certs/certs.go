// Package certs gives the unit its HTTPS certificate: a self-signed ECDSA certificate made at first boot
// and kept in the state store. It does not serve anything.
package certs

import (
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
	"strings"
	"time"

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
