package database

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/certs"
)

// A certificate replaced in the web UI reaches the running server: a client's next connection meets it,
// without a restart (and without ReloadTLS it would not).
func TestCertificateReload(t *testing.T) {
	port := freePort(t)
	u := startHostUnit(t, "a", port, 0, "single")
	ctx := context.Background()
	u.waitStatus(t, "production", func(s appliance.DatabaseStatus) bool { return s.Role == production && s.State == "running" })
	nd, err := u.CreateDatabase(ctx, "practice", "practice_app")
	if err != nil {
		t.Fatal(err)
	}
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
