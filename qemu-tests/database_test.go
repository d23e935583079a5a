package qemutests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

type newDatabase struct {
	Name, Owner, Password, URL string
}

// connect opens a session to the unit's PostgreSQL through the forwarded port, with the credentials of a
// connection string the unit gave out.
func (u *unit) connect(ctx context.Context, connURL string) (*pgx.Conn, error) {
	p, err := url.Parse(connURL)
	if err != nil {
		return nil, err
	}
	p.Host = u.Postgres
	return pgx.Connect(ctx, p.String())
}

// The production database on one unit: it starts on the data array once storage is up, an admin creates a
// database and gets a connection string, a client connects over TLS with scram-sha-256 and commits rows; a
// wrong password is refused; after a power-off and a new boot every committed row is there.
func TestDatabaseProduction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	disks := []Disk{
		{ID: "a", Kind: Virtio, Serial: "PG-A", SizeMiB: 1024, Path: filepath.Join(dir, "a.img")},
		{ID: "b", Kind: Virtio, Serial: "PG-B", SizeMiB: 1024, Path: filepath.Join(dir, "b.img")},
	}
	u := boot(t, Config{Disks: disks})
	tok := u.setupAndLogin()
	eventually(t, 3*time.Minute, "database running", func() error {
		code, body := u.call("GET", "/api/v1/database", tok, "")
		if code != 200 || !strings.Contains(body, `"state":"running"`) || !strings.Contains(body, `"role":"production"`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	if code, body := u.call("POST", "/api/v1/database/databases", tok, `{"name":"Practice; DROP","owner":"app"}`); code != 400 {
		t.Errorf("bad name = %d %s", code, body)
	}
	code, body := u.call("POST", "/api/v1/database/databases", tok, `{"name":"practice","owner":"practice_app"}`)
	var nd newDatabase
	if code != 201 || json.Unmarshal([]byte(body), &nd) != nil || !strings.HasSuffix(nd.URL, "/practice?sslmode=require") {
		t.Fatalf("create = %d %s", code, body)
	}
	if code, _ := u.call("POST", "/api/v1/database/databases", tok, `{"name":"practice","owner":"other"}`); code != 409 {
		t.Errorf("create again = %d, want 409", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := u.connect(ctx, nd.URL)
	if err != nil {
		t.Fatalf("connect with the given connection string: %v", err)
	}
	var tlsOn bool
	if err := c.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&tlsOn); err != nil || !tlsOn {
		t.Errorf("session not over TLS (%v)", err)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE matters (id int PRIMARY KEY, client text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	const rows = 500
	for i := range rows {
		if _, err := c.Exec(ctx, "INSERT INTO matters VALUES ($1, $2)", i, fmt.Sprintf("client %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close(ctx)
	bad := strings.Replace(nd.URL, ":"+nd.Password+"@", ":wrong-password@", 1)
	if c, err := u.connect(ctx, bad); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		if c != nil {
			c.Close(ctx)
		}
		t.Errorf("a wrong password: %v", err)
	}

	if code, _ := u.call("POST", "/api/v1/system/poweroff", tok, ""); code != 202 {
		t.Fatalf("power off = %d", code)
	}
	if err := u.Wait(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	u = boot(t, Config{Disks: disks})
	tok = u.login()
	var n int
	eventually(t, 3*time.Minute, "the rows after a new boot", func() error {
		c, err := u.connect(ctx, nd.URL)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		return c.QueryRow(ctx, "SELECT count(*) FROM matters").Scan(&n)
	})
	if n != rows {
		t.Errorf("%d rows after the restart, want %d", n, rows)
	}
	if code, body := u.call("GET", "/api/v1/database", tok, ""); code != 200 || !strings.Contains(body, `"name":"practice"`) {
		t.Errorf("database = %d %s", code, body)
	}
}
