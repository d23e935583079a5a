package database

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

// Manager runs PostgreSQL. Long-running: Run(ctx).
type Manager struct {
	Log     *slog.Logger
	BinDir  string      // "/usr/lib/postgresql/15/bin"
	DataDir string      // "/data/postgresql/15/main"
	Socket  string      // "/run/postgresql"
	Port    int         // 5432
	Ready   func() bool // storage is mounted and persistent
	TLS     func() (cert, key []byte, err error)
	Host    func() string // the address clients use, for connection strings
	Store   *state.Store  // the role (production or mirror) and the upstream

	restart chan struct{}
	mu      sync.Mutex
	state   string // what the server is doing, for the status
	version string
}

func (m *Manager) setState(s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != s {
		m.Log.Info("database", "state", s)
	}
	m.state = s
}

// Run waits for the data array, initialises the cluster the first time, and keeps postgres running (restart
// with backoff) until ctx ends, then shuts it down fast (SIGINT: no new transactions, committed ones kept).
func (m *Manager) Run(ctx context.Context) error {
	m.setState("waiting for storage")
	m.mu.Lock()
	if m.restart == nil {
		m.restart = make(chan struct{}, 1)
	}
	m.mu.Unlock()
	for !m.Ready() {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		m.setState("failed: no postgres user")
		return fmt.Errorf("database: %w", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	backoff := time.Second
	for {
		start := time.Now()
		err := m.runOnce(ctx, cred)
		if ctx.Err() != nil {
			m.setState("stopped")
			return nil
		}
		if errors.Is(err, errRestart) {
			continue
		}
		m.setState(fmt.Sprintf("failed: %v; restarting", err))
		m.Log.Error("postgres exited", "err", err)
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// errRestart ends runOnce when the role changed.
var errRestart = errors.New("restart with the new role")

// runOnce prepares the cluster and runs postgres until it exits or ctx ends.
func (m *Manager) runOnce(ctx context.Context, cred *syscall.Credential) error {
	if err := m.prepare(ctx, cred); err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(m.BinDir, "postgres"), "-D", m.DataDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	cmd.Env = []string{"PATH=" + m.BinDir + ":/bin", "TZ=UTC", "LANG=C"}
	out, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = cmd.Stderr
	m.setState("starting")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	go m.logLines(out)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	go m.waitReady(ctx, done)
	stop := func() {
		m.setState("stopping")
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	select {
	case err := <-done:
		return fmt.Errorf("postgres: %w", err)
	case <-m.restart:
		stop()
		return errRestart
	case <-ctx.Done():
		stop()
		return ctx.Err()
	}
}

func (m *Manager) logLines(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m.Log.Info(sc.Text(), "from", "postgres")
	}
}

// waitReady marks the server running once it answers a query.
func (m *Manager) waitReady(ctx context.Context, done <-chan error) {
	for range 300 {
		c, err := m.connect(ctx, "postgres")
		if err == nil {
			var v string
			_ = c.QueryRow(ctx, "SHOW server_version").Scan(&v)
			c.Close(ctx)
			m.mu.Lock()
			m.version = v
			m.mu.Unlock()
			m.setState("running")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// prepare runs initdb the first time, then writes the managed configuration and TLS files.
func (m *Manager) prepare(ctx context.Context, cred *syscall.Credential) error {
	for _, d := range []string{filepath.Dir(filepath.Dir(m.DataDir)), filepath.Dir(m.DataDir), m.Socket} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	role := m.roleConfig()
	if _, err := os.Stat(filepath.Join(m.DataDir, "standby.signal")); role.Role == "mirror" && errors.Is(err, os.ErrNotExist) {
		if err := m.clone(ctx, cred, role.Upstream); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(m.DataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		m.setState("initialising")
		// initdb into a side directory, renamed into place when complete: a unit that loses power during
		// initdb starts over instead of finding half a cluster.
		tmp := m.DataDir + ".init"
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("remove unfinished initdb: %w", err)
		}
		if err := os.Remove(m.DataDir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("data directory %s is not empty and holds no cluster: %w", m.DataDir, err)
		}
		cmd := exec.CommandContext(ctx, filepath.Join(m.BinDir, "initdb"), "-D", tmp, "-U", "postgres",
			"--auth-local=peer", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--data-checksums")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Env = []string{"PATH=" + m.BinDir + ":/bin", "TZ=UTC", "LANG=C"}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("initdb: %w: %s", err, out)
		}
		if err := os.Rename(tmp, m.DataDir); err != nil {
			return fmt.Errorf("move the new cluster into place: %w", err)
		}
		if err := syncDir(filepath.Dir(m.DataDir)); err != nil {
			return err
		}
		m.Log.Info("database cluster initialised", "dir", m.DataDir)
	}
	// initdb's postgresql.conf, or none at all in a copy of a Debian cluster (Debian keeps it in /etc):
	// either way it must include conf.d.
	conf := filepath.Join(m.DataDir, "postgresql.conf")
	if b, err := os.ReadFile(conf); err != nil || !strings.Contains(string(b), "\ninclude_dir = 'conf.d'") {
		if err := writeAtomic(conf, append(b, "\ninclude_dir = 'conf.d'\n"...), cred); err != nil {
			return err
		}
	}
	repl := ""
	if role.Role == "mirror" {
		out, err := exec.CommandContext(ctx, filepath.Join(m.BinDir, "pg_controldata"), "-D", m.DataDir).Output()
		if err != nil {
			return fmt.Errorf("pg_controldata: %w", err)
		}
		repl = replicationConf(role.Upstream, controlLimits(string(out)))
	}
	cert, key, err := m.TLS()
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{"conf.d/appliance.conf", []byte(managedConf(m.Port))},
		{"pg_hba.conf", []byte(managedHBA)},
		{"pg_ident.conf", []byte(managedIdent)},
		{"server.crt", cert},
		{"server.key", key},
		{"conf.d/replication.conf", []byte(repl)},
	}
	for _, f := range files {
		p := filepath.Join(m.DataDir, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.Chown(filepath.Dir(p), int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("chown %s: %w", filepath.Dir(p), err)
		}
		if err := writeAtomic(p, f.data, cred); err != nil {
			return err
		}
	}
	return nil
}

// writeAtomic replaces path with data owned by cred (mode 0600): a temporary file, fsync, rename, fsync of
// the directory. A power cut leaves the old file or the new one, never a torn one (a torn
// postgresql.conf stops PostgreSQL from starting).
func writeAtomic(path string, data []byte, cred *syscall.Credential) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chown(int(cred.Uid), int(cred.Gid))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// connect opens a superuser session over the root-only unix socket.
func (m *Manager) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable connect_timeout=5", m.Socket, m.Port, db))
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg)
}

func (m *Manager) running() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != "running" {
		return fmt.Errorf("the database server is %s: %w", m.state, appliance.ErrUnavailable)
	}
	return nil
}

// Database reports the server and its databases.
func (m *Manager) Database(ctx context.Context) (appliance.DatabaseStatus, error) {
	role := m.roleConfig()
	m.mu.Lock()
	st := appliance.DatabaseStatus{Role: role.Role, State: m.state, Version: m.version, Databases: []appliance.DatabaseInfo{}}
	m.mu.Unlock()
	if u := role.Upstream; role.Role == "mirror" && u != nil {
		st.Upstream, st.Sync = net.JoinHostPort(u.Host, strconv.Itoa(u.Port)), "async"
	}
	if m.running() != nil {
		st.Role = "none"
		return st, nil
	}
	c, err := m.connect(ctx, "postgres")
	if err != nil {
		return st, fmt.Errorf("database status: %w", err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, `SELECT d.datname, r.rolname, pg_database_size(d.oid) FROM pg_database d
		JOIN pg_roles r ON r.oid = d.datdba WHERE NOT d.datistemplate AND d.datname <> 'postgres' ORDER BY 1`)
	if err != nil {
		return st, fmt.Errorf("list databases: %w", err)
	}
	for rows.Next() {
		var d appliance.DatabaseInfo
		if err := rows.Scan(&d.Name, &d.Owner, &d.SizeBytes); err != nil {
			return st, fmt.Errorf("list databases: %w", err)
		}
		st.Databases = append(st.Databases, d)
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("list databases: %w", err)
	}
	_ = c.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").Scan(&st.Connections)
	if role.Role == "mirror" {
		// Bytes the upstream reported as written but not yet replayed here, and the age of the last replayed
		// transaction when something is still to replay.
		var lag int64
		var secs float64
		err := c.QueryRow(ctx, `SELECT coalesce((SELECT pg_wal_lsn_diff(latest_end_lsn, pg_last_wal_replay_lsn()) FROM pg_stat_wal_receiver), 0)::bigint,
			CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
			     ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8`).Scan(&lag, &secs)
		if err == nil {
			lag = max(lag, 0)
			st.LagBytes, st.LagSeconds = &lag, &secs
		}
	}
	return st, nil
}

// CreateDatabase creates an owner role with a new random password and a database it owns; only the owner
// (and the appliance) may connect to it. The password is returned once, inside the connection string.
func (m *Manager) CreateDatabase(ctx context.Context, name, owner string) (appliance.NewDatabase, error) {
	if err := errors.Join(checkName("database", name), checkName("owner", owner)); err != nil {
		return appliance.NewDatabase{}, fmt.Errorf("%w: %w", appliance.ErrBadInput, err)
	}
	if err := m.running(); err != nil {
		return appliance.NewDatabase{}, err
	}
	if m.roleConfig().Role == "mirror" {
		return appliance.NewDatabase{}, fmt.Errorf("create database %s: this unit is a read-only mirror; promote it first: %w", name, appliance.ErrConflict)
	}
	c, err := m.connect(ctx, "postgres")
	if err != nil {
		return appliance.NewDatabase{}, fmt.Errorf("create database %s: %w", name, err)
	}
	defer c.Close(ctx)
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) OR EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2)", name, owner).Scan(&exists); err != nil {
		return appliance.NewDatabase{}, fmt.Errorf("create database %s: %w", name, err)
	}
	if exists {
		return appliance.NewDatabase{}, fmt.Errorf("create database %s owned by %s: the database or the owner exists already: %w", name, owner, appliance.ErrConflict)
	}
	pw := password()
	// Names are checked against [a-z0-9_] and the password is alphanumeric: nothing here needs quoting.
	for _, q := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", owner, pw),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", name, owner),
		fmt.Sprintf("REVOKE CONNECT, TEMPORARY ON DATABASE %s FROM PUBLIC", name),
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			return appliance.NewDatabase{}, fmt.Errorf("create database %s: %w", name, err)
		}
	}
	m.Log.Info("database created", "name", name, "owner", owner)
	u := url.URL{Scheme: "postgresql", User: url.UserPassword(owner, pw), Host: net.JoinHostPort(m.Host(), strconv.Itoa(m.Port)),
		Path: "/" + name, RawQuery: "sslmode=require"}
	return appliance.NewDatabase{Name: name, Owner: owner, Password: pw, URL: u.String()}, nil
}

// password is 24 random letters and digits (143 bits).
func password() string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
