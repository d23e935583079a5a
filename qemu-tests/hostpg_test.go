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
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// hostPG is a throwaway PostgreSQL 15 cluster on 127.0.0.1, run as the host's postgres user: the "office's
// own server" a unit can mirror.
type hostPG struct {
	Port        int
	Password    string // of its postgres superuser
	Fingerprint string // SHA-256 of its self-signed TLS certificate, AB:CD:...
	cmd         *exec.Cmd
	done        chan struct{}
}

const pgBin = "/usr/lib/postgresql/15/bin"

func startHostPG(t *testing.T) *hostPG {
	t.Helper()
	pu, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("host postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(pu.Uid)
	gid, _ := strconv.Atoi(pu.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	dir, err := os.MkdirTemp("", "hostpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	pg := &hostPG{Password: "upstream-superuser-pw", done: make(chan struct{})}
	if pg.Port, err = freeTCPPort(); err != nil {
		t.Fatal(err)
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(pg.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(pwfile, uid, gid)
	data := filepath.Join(dir, "data")
	run := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(filepath.Join(pgBin, name), args...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		c.Env = []string{"PATH=/usr/bin:/bin", "LANG=C"}
		return c
	}
	if out, err := run("initdb", "-D", data, "-U", "postgres", "--pwfile", pwfile, "--auth-local=trust",
		"--auth-host=scram-sha-256", "--locale=C", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	if pg.Fingerprint, err = selfSignedFiles(filepath.Join(data, "server.crt"), filepath.Join(data, "server.key"), uid, gid); err != nil {
		t.Fatal(err)
	}
	pg.cmd = run("postgres", "-D", data, "-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(pg.Port), "-c", "ssl=on",
		"-c", "unix_socket_directories="+dir, "-c", "wal_level=replica", "-c", "max_wal_senders=5")
	pg.cmd.Stdout, pg.cmd.Stderr = nil, nil
	if err := pg.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { pg.cmd.Wait(); close(pg.done) }()
	t.Cleanup(pg.Stop)
	eventually(t, 30*time.Second, "host PostgreSQL up", func() error {
		c, err := pg.Connect(context.Background(), "postgres")
		if err != nil {
			return err
		}
		return c.Close(context.Background())
	})
	return pg
}

// Connect opens a superuser session to database db.
func (pg *hostPG) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", pg.Password, pg.Port, db))
}

// Stop shuts the server down (fast) and waits for it.
func (pg *hostPG) Stop() {
	select {
	case <-pg.done:
		return
	default:
	}
	_ = pg.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-pg.done:
	case <-time.After(30 * time.Second):
		_ = pg.cmd.Process.Kill()
		<-pg.done
	}
}

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
