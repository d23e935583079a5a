package qemutests

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lawbox/appliance/appliance/pgsql"
)

// hostPG is a throwaway PostgreSQL 15 cluster on 127.0.0.1, run as the host's postgres user: the "office's
// own server" a unit can mirror.
type hostPG struct {
	Port        int
	Password    string // of its postgres superuser
	Fingerprint string // SHA-256 of its self-signed TLS certificate, AB:CD:...
	pg          *pgsql.Process
}

const pgBin = "/usr/lib/postgresql/15/bin"

func startHostPG(t *testing.T) *hostPG {
	t.Helper()
	cred, err := pgsql.PostgresUser()
	if err != nil {
		t.Fatalf("host postgres user: %v", err)
	}
	uid, gid := int(cred.Uid), int(cred.Gid)
	dir, err := os.MkdirTemp("", "hostpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	pg := &hostPG{Password: "upstream-superuser-pw"}
	if pg.Port, err = freeTCPPort(); err != nil {
		t.Fatal(err)
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(pg.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(pwfile, uid, gid)
	cl := &pgsql.Cluster{BinDir: pgBin, DataDir: filepath.Join(dir, "data"), Cred: cred}
	if err := cl.InitDB(context.Background(), "--pwfile", pwfile, "--auth-local=trust", "--auth-host=scram-sha-256"); err != nil {
		t.Fatal(err)
	}
	if pg.Fingerprint, err = selfSignedFiles(filepath.Join(cl.DataDir, "server.crt"), filepath.Join(cl.DataDir, "server.key"), uid, gid); err != nil {
		t.Fatal(err)
	}
	pg.pg, err = cl.Start(nil, "-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(pg.Port), "-c", "ssl=on",
		"-c", "unix_socket_directories="+dir, "-c", "wal_level=replica", "-c", "max_wal_senders=5")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	err = pg.pg.Ready(context.Background(), func(ctx context.Context) error {
		c, err := pg.Connect(ctx, "postgres")
		if err != nil {
			return err
		}
		return c.Close(ctx)
	}, 100*time.Millisecond, 30*time.Second)
	if err != nil {
		t.Fatalf("host PostgreSQL up: %v", err)
	}
	return pg
}

// Connect opens a superuser session to database db.
func (pg *hostPG) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", pg.Password, pg.Port, db))
}

// Stop shuts the server down (fast) and waits for it.
func (pg *hostPG) Stop() { pg.pg.Stop(syscall.SIGINT, 30*time.Second) }

// selfSignedFiles writes a new self-signed certificate and its key for PostgreSQL (owned by uid:gid) and
// returns the certificate's SHA-256 fingerprint.
func selfSignedFiles(certFile, keyFile string, uid, gid int) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "office-db"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", err
	}
	for f, b := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: kder}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			return "", err
		}
		if err := os.Chown(f, uid, gid); err != nil {
			return "", err
		}
	}
	sum := sha256.Sum256(der)
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(hexes, ":"), nil
}
