package database

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/durable"
	"github.com/lawbox/appliance/appliance/pgsql"
	"github.com/lawbox/appliance/appliance/state"
)

// Manager runs PostgreSQL. Long-running: Run(ctx).
type Manager struct {
	Log      *slog.Logger
	BinDir   string      // "/usr/lib/postgresql/15/bin"
	DataDir  string      // "/data/postgresql/15/main"
	Socket   string      // "/run/postgresql"
	Archive  string      // where finished WAL segments are archived for the backups ("/data/wal-archive"); "" for none
	Port     int         // 5432
	PeerPort int         // the partner unit's port; 0: Port
	Ready    func() bool // storage is mounted and persistent
	TLS      func() (cert, key []byte, err error)
	Host     func() string                       // the address clients use, for connection strings
	Store    *state.Store                        // the role (production or mirror) and the upstream, when unpaired
	Pair     Pair                                // nil: never paired; otherwise the pair's role decides the server's
	Roles    *appliance.Feed[appliance.PairRole] // the pair's role, as the pair publishes it

	restart chan struct{}
	cred    *syscall.Credential // the postgres user
	mu      sync.Mutex
	state   string // what the server is doing, for the status
	version string
	cur     mode      // what the running server is
	sync    syncState // production: the mirror and synchronous mode
	// the replication role's password last set (production, paired)
	replicaPassword string
	lastPromotion   float64 // seconds the last promotion took
	lagHistory      []appliance.LagPoint
	lagDay          []appliance.LagPoint
	streamWait      time.Duration    // how long a switchover waits for the mirror to stream; 0: 30 s
	plain           []string         // the databases open without TLS in the pg_hba.conf written last (nil: none yet)
	asideSizes      map[string]int64 // set-aside cluster -> bytes, counted once
	detail          string           // what the server's last failure said
}

// stateFailed is the state of a server that failed and is started again; the status's Detail says why.
const stateFailed = "failed; starting it again (the unit's log says why)"

func (m *Manager) setState(s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != s {
		m.Log.Info("database", "state", s)
	}
	m.state = s
}

func (m *Manager) current() mode {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur
}

// Kick makes the server follow a role change now rather than at its next check (within a second).
func (m *Manager) Kick() {
	m.mu.Lock()
	r := m.restart
	m.mu.Unlock()
	if r == nil {
		return
	}
	select {
	case r <- struct{}{}:
	default:
	}
}

// waiting is an error that only means "not yet": the server is retried in 2 s (or at the next role change).
type waiting struct{ why string }

func (w waiting) Error() string { return w.why }

// Run waits for the data array, initialises the cluster the first time, and keeps postgres running in the
// mode the pair (or the unit's settings) asks for, until ctx ends; then shuts it down fast (SIGINT: no new
// transactions, committed ones kept).
func (m *Manager) Run(ctx context.Context) error {
	m.setState("waiting for storage")
	m.mu.Lock()
	if m.restart == nil {
		m.restart = make(chan struct{}, 1)
	}
	m.mu.Unlock()
	if m.Roles != nil {
		go m.followRoles(ctx)
	}
	for !m.Ready() {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	m.loadLag(time.Now())
	cred, err := pgsql.PostgresUser()
	if err != nil {
		m.setState("failed: the firmware has no postgres user")
		return fmt.Errorf("database: %w", err)
	}
	m.cred = cred
	backoff := time.Second
	for {
		start := time.Now()
		err := m.runOnce(ctx)
		if ctx.Err() != nil {
			m.setState("stopped")
			return nil
		}
		if errors.Is(err, errRestart) {
			continue
		}
		wait := 2 * time.Second
		var w waiting
		if errors.As(err, &w) {
			m.setState(w.why)
		} else {
			m.setState(stateFailed)
			m.mu.Lock()
			m.detail = err.Error()
			m.mu.Unlock()
			m.Log.Error("postgres exited", "err", err)
			if time.Since(start) > time.Minute {
				backoff = time.Second
			}
			wait, backoff = backoff, min(2*backoff, 30*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.restart:
		case <-time.After(wait):
		}
	}
}

// errRestart ends runOnce when the role changed.
var errRestart = errors.New("restart with the new role")

// runOnce prepares the cluster for the mode wanted now, runs postgres, and follows changes of mode until
// postgres exits, a change needs a restart, or ctx ends. A mirror (or read-only server) asked to be
// production is promoted in place; production asked to be anything else stops at once (fencing) and
// restarts in its new mode.
func (m *Manager) runOnce(ctx context.Context) error {
	cur, err := m.prepare(ctx, m.desired())
	if err != nil {
		return err
	}
	out, logs := io.Pipe()
	m.setState("starting")
	pg, err := m.cluster().Start(logs)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.cur, m.sync = cur, syncState{}
	m.mu.Unlock()
	m.Log.Info("postgres started", "mode", cur.Kind)
	go m.logLines(out)
	exited := pg.Exited()
	go func() { <-exited; logs.Close() }()
	go m.waitReady(ctx, pg)
	stop := func() {
		m.setState("stopping")
		pg.Stop(syscall.SIGINT, 20*time.Second)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastSample := time.Now()
	for {
		select {
		case <-exited:
			return fmt.Errorf("postgres: %w", pg.Err())
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case <-m.restart:
		case <-tick.C:
		}
		next := m.desired()
		ready := m.running() == nil
		switch {
		case !next.same(cur) && next.Kind == production:
			if !ready {
				continue // promoted once it answers
			}
			if err := m.promote(ctx); err != nil {
				m.Log.Error("promotion failed; restarting", "err", err)
				stop()
				return err
			}
			cur = next
			m.mu.Lock()
			m.cur = cur
			m.mu.Unlock()
			m.Kick() // prepare the mirror's side at once
		case !next.same(cur):
			m.Log.Warn("database leaves its mode", "was", cur.Kind, "now", next.Kind)
			stop()
			return errRestart
		case cur.Kind == production && ready:
			if err := m.maintain(ctx); err != nil {
				m.Log.Warn("production upkeep", "err", err)
			}
		}
		if ready && time.Since(lastSample) >= lagEvery {
			lastSample = time.Now()
			m.recordLag(ctx)
		}
	}
}

func (m *Manager) logLines(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m.Log.Info(sc.Text(), "from", "postgres")
	}
}

// waitReady marks the server running once it answers a query.
func (m *Manager) waitReady(ctx context.Context, pg *pgsql.Process) {
	var v string
	err := pg.Ready(ctx, func(ctx context.Context) error {
		c, err := m.connect(ctx, "postgres")
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		return c.QueryRow(ctx, "SHOW server_version").Scan(&v)
	}, 200*time.Millisecond, time.Minute)
	if err != nil {
		return // the server exited (runOnce says why), the unit stops, or it never answered (its log says why)
	}
	m.mu.Lock()
	m.version = v
	m.mu.Unlock()
	m.setState("running")
	m.Kick()
}

// prepare readies the data directory for want and returns the mode the server starts in: a copy that was a
// standby starts read-only and is promoted once it runs (a new timeline, so its history can never be
// mistaken for the old production's).
func (m *Manager) prepare(ctx context.Context, want mode) (mode, error) {
	if want.Up != nil && want.Up.sealed {
		return want, waiting{"waiting for the data array's key: the upstream server's password is kept encrypted on it"}
	}
	cred := m.cred
	for _, d := range []string{filepath.Dir(filepath.Dir(m.DataDir)), filepath.Dir(m.DataDir), m.Socket} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return want, err
		}
		if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
			return want, err
		}
	}
	start := want
	if want.Kind != mirror {
		if err := m.afresh(); err != nil {
			return want, err
		}
	}
	if want.Kind != mirror && !m.Fit() {
		if !m.paired() {
			return want, waiting{"this unit's copy of the database is incomplete (its update from a former partner unit was interrupted) and it is no longer paired: set it aside and start an empty database, then restore a backup"}
		}
		// A rewind or a copy from the partner was cut short: this cluster never starts again (a
		// half-rewound cluster does not even hold a valid checkpoint); the next mirror role copies anew.
		return want, waiting{"this unit's copy of the database is incomplete (its update from the partner unit was interrupted): it cannot serve until the partner is back"}
	}
	switch want.Kind {
	case mirror:
		if err := m.follow(ctx, want.Up); err != nil {
			return want, err
		}
	case readOnly:
		if !m.hasFile("PG_VERSION") {
			return want, waiting{"no copy of the database on this unit yet: waiting for the production unit"}
		}
		if err := writeAtomic(filepath.Join(m.DataDir, "standby.signal"), nil, cred); err != nil {
			return want, err
		}
	case production:
		if !m.hasFile("PG_VERSION") {
			if m.paired() && m.copiedPartner() {
				// Its copy of the partner's database never completed: a new empty cluster here would
				// become "the" database of the office while the real one waits on the partner's disks.
				return want, waiting{"this unit holds no complete copy of the partner's database: it cannot be production until the partner is back"}
			}
			if err := m.initdb(ctx); err != nil {
				return want, err
			}
		}
		if m.hasFile("standby.signal") {
			start = mode{Kind: readOnly}
		}
	}
	if err := m.writeSettings(ctx, start, cred); err != nil {
		return want, err
	}
	// Synchronous mode starts off: production turns it on once its mirror streams (maintain).
	return start, m.writeSyncConf(false)
}

// writeSettings writes every file of the server's settings for mode start: the unit's own postgresql.conf
// and conf.d, pg_hba.conf, pg_ident.conf, the TLS certificate and, for a mirror, the replication settings.
func (m *Manager) writeSettings(ctx context.Context, start mode, cred *syscall.Credential) error {
	// Every setting the server reads is the unit's: a copy of another server brings that server's
	// postgresql.conf and postgresql.auto.conf (read last, over conf.d), whose settings would run commands
	// as the unit's postgres user.
	for name, data := range map[string]string{"postgresql.conf": managedMain, "postgresql.auto.conf": managedAuto} {
		if err := writeAtomic(filepath.Join(m.DataDir, name), []byte(data), cred); err != nil {
			return err
		}
	}
	out, err := m.cluster().Command(ctx, "pg_controldata", "-D", m.DataDir).Output()
	if err != nil {
		return fmt.Errorf("pg_controldata: %w", err)
	}
	repl := ""
	if start.Kind != production {
		repl = replicationConf(start.Up, controlLimits(string(out)))
	}
	cert, key, err := m.TLS()
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	m.mu.Lock()
	m.plain = nil // pg_hba.conf is written afresh: production writes the open databases again once it runs
	m.mu.Unlock()
	files := []struct {
		name string
		data []byte
	}{
		{"conf.d/appliance.conf", []byte(managedConf(m.Port, m.Socket, m.slotKeep(), m.Archive))},
		{"pg_hba.conf", []byte(managedHBA(nil))}, // production adds the databases open without TLS once it runs (plain.go)
		{"pg_ident.conf", []byte(managedIdent)},
		{"server.crt", cert},
		{"server.key", key},
		{"conf.d/replication.conf", []byte(repl)},
	}
	if m.Archive != "" {
		if err := os.MkdirAll(m.Archive, 0o700); err != nil {
			return fmt.Errorf("WAL archive: %w", err)
		}
		if err := os.Chown(m.Archive, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("chown %s: %w", m.Archive, err)
		}
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

// initdb creates the cluster in a side directory renamed into place when complete: a unit that loses power
// during initdb starts over instead of finding half a cluster. WAL segments are 1 MB, not 16: with archiving
// on, every segment switch (archive_timeout, and the shutdown of production at a switchover, which the
// mirror waits for) pads the rest of the segment, and the mirror receives that padding over the stream
// (up to 16 MB: 2-3 s of a switchover on a small unit) and the archive stores it.
func (m *Manager) initdb(ctx context.Context) error {
	m.setState("initialising")
	if err := m.cluster().InitDB(ctx, "--auth-local=peer", "--auth-host=scram-sha-256", "--data-checksums", "--wal-segsize=1"); err != nil {
		return err
	}
	m.Log.Info("database cluster initialised", "dir", m.DataDir)
	return nil
}

// cluster is the unit's PostgreSQL cluster, run as the postgres user.
func (m *Manager) cluster() *pgsql.Cluster {
	return &pgsql.Cluster{BinDir: m.BinDir, DataDir: m.DataDir, Cred: m.cred}
}

// slotKeep is max_slot_wal_keep_size: a fifth of the data file system (at most 20 GB), so a mirror that
// is gone for days cannot fill the array; past it, the mirror re-clones.
func (m *Manager) slotKeep() int64 {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(m.DataDir), &fs); err != nil {
		return 1024
	}
	mb := int64(fs.Blocks) * int64(fs.Bsize) / 5 >> 20
	return max(64, min(mb, 20<<10))
}

// writeAtomic replaces path with data owned by cred (mode 0600), durably: a torn postgresql.conf after a
// power cut stops PostgreSQL from starting.
func writeAtomic(path string, data []byte, cred *syscall.Credential) error {
	return durable.WriteFile(path, bytes.NewReader(data), func(f *os.File) error { return f.Chown(int(cred.Uid), int(cred.Gid)) })
}

// ReloadTLS hands the unit's current certificate to the running server: the files are written again and the
// server reads them at a configuration reload, so clients meet a replaced certificate at their next
// connection, without a restart. A server that is not running takes it when it starts. A reload that cannot
// use the files (PostgreSQL logs why) keeps the certificate it had.
func (m *Manager) ReloadTLS(ctx context.Context) error {
	if m.running() != nil {
		return nil
	}
	cert, key, err := m.TLS()
	if err != nil {
		return fmt.Errorf("reload the database's certificate: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"server.key", key}, {"server.crt", cert}} {
		if err := writeAtomic(filepath.Join(m.DataDir, f.name), f.data, m.cred); err != nil {
			return fmt.Errorf("reload the database's certificate: %w", err)
		}
	}
	c, err := m.connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("reload the database's certificate: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reload the database's certificate: %w", err)
	}
	m.Log.Info("the database server presents the new certificate to new connections")
	return nil
}

// connect opens a pinned superuser session over the root-only unix socket.
func (m *Manager) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	return pgsql.Local(ctx, m.Socket, m.Port, db)
}

func (m *Manager) running() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != "running" {
		return fmt.Errorf("the database server is %s: %w", m.state, appliance.ErrUnavailable)
	}
	return nil
}
