package qemutests

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lawbox/appliance/appliance/certs"
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

// exec runs sql on the database of connURL on u.
func (u *unit) exec(t testing.TB, connURL, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := u.connect(ctx, connURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// The production database on one unit: it starts on the data array once storage is up, an admin creates a
// database and gets a connection string, a client connects over TLS with scram-sha-256 and commits rows; a
// wrong password is refused; a certificate made anew in the UI is the server's at the next connection; after
// a power-off and a new boot every committed row is there.
func TestDatabaseProduction(t *testing.T) {
	parallel(t)
	disks := keep(t, Disk{ID: "a", Kind: Virtio, Serial: "PG-A", SizeMiB: 1024}, Disk{ID: "b", Kind: Virtio, Serial: "PG-B", SizeMiB: 1024})
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
	if code != 201 || json.Unmarshal([]byte(body), &nd) != nil || !strings.HasSuffix(nd.URL, "/practice?sslmode=require&channel_binding=require") {
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

	// A certificate made anew in the UI reaches the database server at once: the next connection meets it.
	code, body = u.call("DELETE", "/api/v1/tls", tok, "")
	var cert struct{ Fingerprint string }
	if code != 200 || json.Unmarshal([]byte(body), &cert) != nil || cert.Fingerprint == u.fingerprint {
		t.Fatalf("a new certificate = %d %s", code, body)
	}
	u.fingerprint, u.http = cert.Fingerprint, u.HTTPClient(cert.Fingerprint)
	eventually(t, time.Minute, "the database server presents the new certificate", func() error {
		c, err := u.connect(ctx, nd.URL)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		tc, ok := c.PgConn().Conn().(*tls.Conn)
		if !ok {
			return fmt.Errorf("not over TLS: %T", c.PgConn().Conn())
		}
		if got := certs.Fingerprint(tls.Certificate{Certificate: [][]byte{tc.ConnectionState().PeerCertificates[0].Raw}}); got != cert.Fingerprint {
			return fmt.Errorf("certificate %s, the web UI's is %s", got, cert.Fingerprint)
		}
		return nil
	})

	u.shutdown(tok, "poweroff")
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

// The unit mirrors the office's own PostgreSQL 15 (a real server on the host, reached through guestfwd):
// it copies it, streams new commits, refuses writes, and after the upstream dies a promotion makes it the
// production server with every committed row.
func TestDatabaseMirrorOfExternal(t *testing.T) {
	parallel(t)
	pg := startHostPG(t)
	app := externalPractice(t, pg)
	defer app.Close(context.Background())

	cfg := Config{
		Disks:    keep(t, Disk{ID: "a", Kind: Virtio, Serial: "MR-A", SizeMiB: 1024}, Disk{ID: "b", Kind: Virtio, Serial: "MR-B", SizeMiB: 1024}),
		GuestFwd: []string{fmt.Sprintf("tcp:198.18.0.100:5432-cmd:socat - TCP:127.0.0.1:%d", pg.Port)}, // a process per connection
	}
	u := boot(t, cfg)
	// The clock of the rest starts once the unit is up (a boot on a loaded machine can take minutes).
	ctx, cancel := context.WithTimeout(context.Background(), 11*time.Minute)
	defer cancel()
	tok := u.setupAndLogin()
	dbStatus := func() (string, string) {
		code, body := u.call("GET", "/api/v1/database", tok, "")
		return fmt.Sprint(code), body
	}
	eventually(t, 3*time.Minute, "local database running", func() error {
		if code, body := dbStatus(); code != "200" || !strings.Contains(body, `"state":"running"`) {
			return fmt.Errorf("%s %s", code, body)
		}
		return nil
	})
	// TLS only, with the certificate the admin confirms: the first answer names its fingerprint.
	upstream := `{"host":"198.18.0.100","port":5432,"user":"repl","password":"replication-pw"`
	if code, body := u.call("PUT", "/api/v1/database/upstream", tok, upstream+`}`); code != 400 || !strings.Contains(body, pg.Fingerprint) {
		t.Fatalf("upstream without a fingerprint = %d %s, want 400 naming %s", code, body, pg.Fingerprint)
	}
	if code, body := u.call("PUT", "/api/v1/database/upstream", tok, upstream+`,"fingerprint":"`+pg.Fingerprint+`"}`); code != 202 {
		t.Fatalf("upstream = %d %s", code, body)
	}
	eventually(t, 3*time.Minute, "mirror running with the upstream's database", func() error {
		if _, body := dbStatus(); !strings.Contains(body, `"role":"mirror"`) || !strings.Contains(body, `"state":"running"`) || !strings.Contains(body, `"name":"practice"`) {
			return fmt.Errorf("%s", body)
		}
		return nil
	})
	// The copied restore_command never ran: the unit's settings replaced the upstream's.
	if got := u.debug("sum /data/postgresql/15/main/owned-by-upstream", `debug: sum \S+: (\S*) (.*)`, time.Minute); !strings.Contains(got[2], "no such file") {
		t.Errorf("the upstream's restore_command ran on the unit: %q", got)
	}
	setAsideListedAndDeleted(t, u, tok, dbStatus)
	if _, err := app.Exec(ctx, "INSERT INTO matters SELECT generate_series(101, 150)"); err != nil {
		t.Fatal(err)
	}
	mirrorURL := fmt.Sprintf("postgres://postgres:%s@%s/practice?sslmode=require", pg.Password, u.Postgres)
	count := func() (int, error) {
		c, err := pgx.Connect(ctx, mirrorURL)
		if err != nil {
			return 0, err
		}
		defer c.Close(ctx)
		var n int
		err = c.QueryRow(ctx, "SELECT count(*) FROM matters").Scan(&n)
		return n, err
	}
	eventually(t, time.Minute, "the new rows streamed to the mirror", func() error {
		if n, err := count(); err != nil || n != 150 {
			return fmt.Errorf("%d rows (%v)", n, err)
		}
		return nil
	})
	if c, err := pgx.Connect(ctx, mirrorURL); err != nil {
		t.Fatal(err)
	} else {
		if _, err := c.Exec(ctx, "INSERT INTO matters VALUES (999)"); err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("a write on the mirror: %v", err)
		}
		c.Close(ctx)
	}
	if code, body := u.call("POST", "/api/v1/database/databases", tok, `{"name":"other","owner":"other_app"}`); code != 409 {
		t.Errorf("create a database on the mirror = %d %s", code, body)
	}
	// Restarted, the unit reads the upstream's password (sealed on the system array with a key on the data
	// array) once its data array is open, and follows the upstream again.
	u.shutdown(tok, "poweroff")
	u = boot(t, cfg)
	tok = u.login()
	mirrorURL = fmt.Sprintf("postgres://postgres:%s@%s/practice?sslmode=require", pg.Password, u.Postgres)
	if _, err := app.Exec(ctx, "CREATE TABLE after_restart AS SELECT 1 AS one"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "the mirror following the upstream again after its restart", func() error {
		c, err := pgx.Connect(ctx, mirrorURL)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		var n int
		return c.QueryRow(ctx, "SELECT one FROM after_restart").Scan(&n)
	})

	promotedUnderLoad(t, ctx, u, tok, pg, app, mirrorURL)
	c, err := pgx.Connect(ctx, mirrorURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "INSERT INTO matters VALUES (151)"); err != nil {
		t.Errorf("write after the promotion: %v", err)
	}
	if n, err := count(); err != nil || n != 151 {
		t.Errorf("%d rows after the promotion (%v), want 151", n, err)
	}
	if _, body := dbStatus(); !strings.Contains(body, `"role":"production"`) {
		t.Errorf("after the promotion: %s", body)
	}
}

// promotedUnderLoad: a client commits one row at a time on the office's server, which is killed (kill -9) in
// the middle of it. Replication is asynchronous, so the newest acknowledged rows may be lost; what the mirror
// has must be exactly the first k of them, in order, with no row that was not acknowledged.
func promotedUnderLoad(t *testing.T, ctx context.Context, u *unit, tok string, pg *hostPG, app *pgx.Conn, mirrorURL string) {
	if _, err := app.Exec(ctx, "CREATE TABLE load (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	var acked atomic.Int64
	loading := make(chan struct{})
	go func() {
		defer close(loading)
		for i := int64(1); ; i++ {
			if _, err := app.Exec(ctx, "INSERT INTO load VALUES ($1)", i); err != nil {
				return // the server is gone
			}
			acked.Store(i)
		}
	}()
	time.Sleep(5 * time.Second)
	pg.pg.Stop(syscall.SIGKILL, time.Minute) // the upstream dies: no shutdown checkpoint
	<-loading
	app.Close(ctx)
	pg.Stop()
	code, body := u.call("POST", "/api/v1/database/promote", tok, "")
	if code != 200 {
		t.Fatalf("promote = %d %s", code, body)
	}
	t.Logf("promotion: %s", body)
	var have, last int64
	if c, err := pgx.Connect(ctx, mirrorURL); err != nil {
		t.Fatal(err)
	} else {
		err = c.QueryRow(ctx, "SELECT count(*), coalesce(max(id), 0) FROM load").Scan(&have, &last)
		c.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
	}
	if have != last || last > acked.Load() {
		t.Errorf("the promoted mirror has %d load rows up to id %d, %d acknowledged: not the first k in order", have, last, acked.Load())
	}
	t.Logf("asynchronous mirror of an external server under load, kill -9 of the server: %d commits acknowledged, %d survived, %d lost", acked.Load(), have, acked.Load()-have)
}

// setAsideListedAndDeleted: the unit's own (empty) cluster was moved aside, not deleted: listed, and deleted on
// request.
func setAsideListedAndDeleted(t *testing.T, u *unit, tok string, dbStatus func() (string, string)) {
	var st struct {
		SetAside []struct {
			Name      string `json:"name"`
			SizeBytes int64  `json:"size_bytes"`
		} `json:"set_aside"`
	}
	if _, body := dbStatus(); json.Unmarshal([]byte(body), &st) != nil || len(st.SetAside) != 1 || st.SetAside[0].SizeBytes < 1<<20 {
		t.Errorf("set aside: %s", body)
	} else {
		if code, body := u.call("DELETE", "/api/v1/database/set-aside/"+st.SetAside[0].Name, tok, ""); code != 204 {
			t.Errorf("delete the set-aside cluster = %d %s", code, body)
		}
		if _, body := dbStatus(); !strings.Contains(body, `"set_aside":[]`) {
			t.Errorf("after the delete: %s", body)
		}
	}
}

// externalPractice readies the office's server: a replication role, the practice database with 100 matters,
// and a hostile setting that travels in a copy (postgresql.auto.conf): a mirror would run it. It answers the
// application's connection.
func externalPractice(t *testing.T, pg *hostPG) *pgx.Conn {
	setup, cancelSetup := context.WithTimeout(context.Background(), time.Minute)
	defer cancelSetup()
	up, err := pg.Connect(setup, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE ROLE repl REPLICATION LOGIN PASSWORD 'replication-pw'",
		"CREATE DATABASE practice",
		// A hostile server's settings travel in the copy (postgresql.auto.conf): a mirror would run them.
		"ALTER SYSTEM SET restore_command = 'echo owned > owned-by-upstream; false'",
	} {
		if _, err := up.Exec(setup, q); err != nil {
			t.Fatal(err)
		}
	}
	up.Close(setup)
	app, err := pg.Connect(setup, "practice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(setup, "CREATE TABLE matters (id int PRIMARY KEY); INSERT INTO matters SELECT generate_series(1, 100)"); err != nil {
		t.Fatal(err)
	}
	return app
}
