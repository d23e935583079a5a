package database

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/certs"
)

// productionWithDatabase runs a single unit's production server with the database practice.
func productionWithDatabase(t *testing.T) (*hostUnit, appliance.NewDatabase) {
	t.Helper()
	u := startHostUnit(t, "a", freePort(t), 0, "single")
	u.waitStatus(t, "production", func(s appliance.DatabaseStatus) bool { return s.Role == production && s.State == "running" })
	nd, err := u.CreateDatabase(context.Background(), "practice", "practice_app")
	if err != nil {
		t.Fatal(err)
	}
	return u, nd
}

// A certificate replaced in the web UI reaches the running server: a client's next connection meets it,
// without a restart (and without ReloadTLS it would not).
func TestCertificateReload(t *testing.T) {
	u, nd := productionWithDatabase(t)
	ctx := context.Background()
	presented := func() ([]byte, error) {
		c, err := pgx.Connect(ctx, nd.URL)
		if err != nil {
			return nil, err
		}
		defer c.Close(ctx)
		tc, ok := c.PgConn().Conn().(*tls.Conn)
		if !ok {
			return nil, fmt.Errorf("not a TLS connection: %T", c.PgConn().Conn())
		}
		return tc.ConnectionState().PeerCertificates[0].Raw, nil
	}
	old, err := presented()
	if err != nil {
		t.Fatal(err)
	}

	k, err := certs.NewKeeper(u.Store, "a", []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.ResetCertificate(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := k.Current().Certificate[0]
	if bytes.Equal(fresh, old) {
		t.Fatal("the keeper made the same certificate again")
	}
	if got, err := presented(); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("before the reload the server presents the certificate it started with: %v", err)
	}
	if err := u.ReloadTLS(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the new certificate presented", func() error {
		got, err := presented()
		if err == nil && !bytes.Equal(got, fresh) {
			err = fmt.Errorf("still another certificate")
		}
		return err
	})
}

// Every database takes TLS connections only, unless an admin opens one; the verifying connection string
// checks the server's certificate and channel binding.
func TestTLSOnlyByDefault(t *testing.T) {
	u, nd := productionWithDatabase(t)
	ctx := context.Background()
	if !strings.Contains(nd.URL, "channel_binding=require") || !strings.Contains(nd.VerifyURL, "sslmode=verify-") || !strings.Contains(nd.CA, "BEGIN CERTIFICATE") {
		t.Errorf("connection strings %q %q, CA %.40q", nd.URL, nd.VerifyURL, nd.CA)
	}
	plainURL := strings.Replace(nd.URL, "sslmode=require&channel_binding=require", "sslmode=disable", 1)
	connect := func(url string) error {
		c, err := pgx.Connect(ctx, url)
		if err == nil {
			c.Close(ctx)
		}
		return err
	}
	if err := connect(plainURL); err == nil {
		t.Error("a connection without TLS was accepted")
	}
	if err := connect(nd.URL); err != nil {
		t.Errorf("the connection string: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lawbox-ca.crt"), []byte(nd.CA), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := connect(strings.Replace(nd.VerifyURL, "sslrootcert=lawbox-ca.crt", "sslrootcert="+filepath.Join(dir, "lawbox-ca.crt"), 1)); err != nil {
		t.Errorf("the verifying connection string: %v", err)
	}
	if err := u.SetPlain(ctx, "nope", true); !errors.Is(err, appliance.ErrNotFound) {
		t.Errorf("SetPlain of a missing database: %v", err)
	}
	if err := u.SetPlain(ctx, "practice", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a connection without TLS once opened", func() error { return connect(plainURL) })
	if st, err := u.Database(ctx); err != nil || len(st.Databases) != 1 || !st.Databases[0].Plain {
		t.Errorf("status after opening: %+v %v", st.Databases, err)
	}
	if err := u.SetPlain(ctx, "practice", false); err != nil {
		t.Fatal(err)
	}
	if err := connect(plainURL); err == nil {
		t.Error("a connection without TLS after closing again")
	}
}
