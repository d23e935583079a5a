package database

// The database follows the pair: the active unit runs production, the standby unit mirrors it, a fenced
// unit serves read-only. This file turns the pair's role into the server's mode and keeps the production
// side ready for its mirror (replication role, slot, synchronous mode).

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/pgsql"
)

// Pair is the unit's pair as the database sees it (appliance/pair.Node).
type Pair interface {
	PeerAddrs() []string
	Secret(label string) []byte
	SetRole(ctx context.Context, role string, force bool) error
	Pair() appliance.PairStatus // whether the peer is reachable
}

// Server modes.
const (
	production = "production"
	mirror     = "mirror"
	readOnly   = "read-only" // a standby with nothing to follow: a fenced unit, or one waiting for its partner
)

// mode is what the server runs as.
type mode struct {
	Kind string
	Up   *upstream // mirror: whom it follows
}

func (a mode) same(b mode) bool {
	return a.Kind == b.Kind && (a.Up == nil) == (b.Up == nil) && (a.Up == nil || *a.Up == *b.Up)
}

// Names the partner mirror uses on the production unit.
const (
	replicaUser = "lawbox_replica"
	replicaSlot = "lawbox_mirror" // also its application_name, named in synchronous_standby_names
)

// paired is whether the pair decides the role.
func (m *Manager) paired() bool { return m.Pair != nil && m.role().Paired() }

// role is the pair's role as last published ("" when the unit follows no pair).
func (m *Manager) role() appliance.PairRole {
	if m.Roles == nil {
		return ""
	}
	return m.Roles.Get()
}

// followRoles wakes the server's loop at every change of the pair's role until ctx ends.
func (m *Manager) followRoles(ctx context.Context) {
	for {
		_, changed := m.Roles.Watch()
		select {
		case <-ctx.Done():
			return
		case <-changed:
			m.Kick()
		}
	}
}

// desired is the mode the server should run in now.
func (m *Manager) desired() mode {
	if m.Pair != nil {
		switch m.role() {
		case appliance.PairActive:
			return mode{Kind: production}
		case appliance.PairStandby:
			if up := m.partner(); up != nil {
				return mode{Kind: mirror, Up: up}
			}
			return mode{Kind: readOnly}
		case appliance.PairFenced:
			return mode{Kind: readOnly}
		}
	}
	if c := m.roleConfig(); c.Role == mirror && c.Upstream != nil {
		return mode{Kind: mirror, Up: c.Upstream}
	}
	return mode{Kind: production}
}

// partner is the production server on the other unit: every address it announced (libpq tries them in
// turn), the replication role whose password both units derive from the pair key.
func (m *Manager) partner() *upstream {
	addrs := m.Pair.PeerAddrs()
	secret := m.Pair.Secret("postgres replication")
	if len(addrs) == 0 || secret == nil {
		return nil
	}
	port := m.PeerPort
	if port == 0 {
		port = m.Port
	}
	return &upstream{Host: strings.Join(addrs, ","), Port: port, User: replicaUser, Password: hex.EncodeToString(secret[:24]),
		Slot: replicaSlot, Partner: true}
}

// conninfo is a libpq connection string to the upstream (values are checked or generated: no quoting).
func (u *upstream) conninfo(db string) string {
	s := fmt.Sprintf("host=%s port=%d user=%s dbname=%s application_name=%s connect_timeout=5", u.Host, u.Port, u.User, db, replicaSlot)
	switch {
	case u.Partner:
		// TLS, and SCRAM channel binding: the peer proves it knows the shared password over this very TLS
		// session, so a machine in the middle cannot pose as the production unit.
		s += " sslmode=require channel_binding=require target_session_attrs=read-write"
	case u.CAFile != "":
		// An external server: TLS with the certificate the admin confirmed (its chain is the only root), and
		// SCRAM channel binding.
		s += " sslmode=verify-ca sslrootcert=" + u.CAFile + " channel_binding=require"
	default: // set by an older firmware: at least TLS and channel binding
		s += " sslmode=require channel_binding=require"
	}
	return s
}

// errVersion is an upstream of another major version: nothing to wait for.
var errVersion = fmt.Errorf("wrong major version: %w", appliance.ErrBadInput)

// upstreamSystem opens a replication connection to the upstream (what the mirror will use) and returns its
// cluster's system identifier. It fails with appliance.ErrBadInput on what an admin must fix (a refused
// password, no pg_hba.conf entry, another major version) and with a plain error when the upstream is down
// or is a mirror itself.
func (m *Manager) upstreamSystem(ctx context.Context, u *upstream) (string, error) {
	cfg, err := pgconn.ParseConfig(u.conninfo("postgres"))
	if err != nil {
		return "", err
	}
	cfg.Password = u.Password
	pgsql.Pin(cfg)
	cfg.RuntimeParams["replication"] = "true"
	cfg.ValidateConnect = nil // target_session_attrs: checked below from what the server reports
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000") {
			return "", fmt.Errorf("%s:%d refused user %s: %s: %w", u.Host, u.Port, u.User, pe.Message, appliance.ErrBadInput)
		}
		return "", err
	}
	defer c.Close(context.Background())
	v := c.ParameterStatus("server_version")
	if major, _, _ := strings.Cut(v, "."); major != "15" {
		return "", fmt.Errorf("%s:%d runs PostgreSQL %s; a mirror needs the same major version, 15: %w", u.Host, u.Port, v, errVersion)
	}
	if c.ParameterStatus("in_hot_standby") == "on" {
		return "", errors.New("it is a mirror itself, not production")
	}
	res, err := c.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	if err != nil {
		return "", fmt.Errorf("identify the upstream: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 1 {
		return "", errors.New("identify the upstream: unexpected answer")
	}
	id := string(res[0].Rows[0][0])
	if u.Partner {
		// A promotion writes the new timeline into pg_control only at its next checkpoint, and pg_rewind
		// reads pg_control: without this, a rewind right after a switchover finds "the same timeline".
		pc, err := pgx.ParseConfig(u.conninfo("postgres"))
		if err != nil {
			return "", err
		}
		pc.Password = u.Password
		pgsql.Pin(&pc.Config)
		conn, err := pgx.ConnectConfig(ctx, pc)
		if err != nil {
			return "", err
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
			return "", fmt.Errorf("checkpoint on the upstream: %w", err)
		}
	}
	return id, nil
}

// ensureReplica gives the partner mirror what it needs on production: its role (replication, and the
// functions pg_rewind reads files with) with the password derived from the pair key, and its slot, so WAL it
// has not received yet is kept (up to max_slot_wal_keep_size). Unpaired, the slot is dropped.
func (m *Manager) ensureReplica(ctx context.Context, c *pgx.Conn) error {
	if !m.paired() {
		_, err := c.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", replicaSlot)
		return err
	}
	up := m.partner()
	if up == nil {
		return nil
	}
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", replicaUser).Scan(&exists); err != nil {
		return err
	}
	stmts := []string{fmt.Sprintf("ALTER ROLE %s REPLICATION LOGIN PASSWORD '%s'", replicaUser, up.Password)}
	if !exists {
		stmts[0] = fmt.Sprintf("CREATE ROLE %s REPLICATION LOGIN PASSWORD '%s'", replicaUser, up.Password)
	}
	if m.replicaPassword != up.Password || !exists {
		stmts = append(stmts, "GRANT pg_checkpoint TO "+replicaUser) // pg_rewind needs the promotion's checkpoint
		for _, f := range []string{"pg_ls_dir(text, boolean, boolean)", "pg_stat_file(text, boolean)", "pg_read_binary_file(text)",
			"pg_read_binary_file(text, bigint, bigint, boolean)"} {
			stmts = append(stmts, fmt.Sprintf("GRANT EXECUTE ON FUNCTION pg_catalog.%s TO %s", f, replicaUser))
		}
		for _, s := range stmts {
			if _, err := c.Exec(ctx, s); err != nil {
				return fmt.Errorf("replication role: %w", err)
			}
		}
		m.replicaPassword = up.Password
	}
	_, err := c.Exec(ctx, "SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", replicaSlot)
	if err != nil {
		return fmt.Errorf("replication slot: %w", err)
	}
	return nil
}

// DefaultPolicy: synchronous, with a 10 s degrade timeout: longer than a mirror restart, short enough that
// the office's application does not time out. Asynchronous was the default once: a unit cut off from its
// peer and the witness acknowledged commits for up to a second before it fenced itself, and lost them when
// it rejoined. The policy lives in the cluster (database postgres, schema lawbox), so the mirror has it by
// replication and keeps it when promoted; a unit that never stored one follows this default.
var DefaultPolicy = appliance.DatabasePolicy{Sync: true, DegradeAfterS: 10}

const policySchema = `CREATE SCHEMA IF NOT EXISTS lawbox;
CREATE TABLE IF NOT EXISTS lawbox.policy (id int PRIMARY KEY CHECK (id = 1), sync boolean NOT NULL, degrade_after_s int NOT NULL)`

func readPolicy(ctx context.Context, c *pgx.Conn) appliance.DatabasePolicy {
	p := DefaultPolicy
	_ = c.QueryRow(ctx, "SELECT sync, degrade_after_s FROM lawbox.policy WHERE id = 1").Scan(&p.Sync, &p.DegradeAfterS)
	return p
}

// SetPolicy stores the synchronous-mode policy (production only).
func (m *Manager) SetPolicy(ctx context.Context, p appliance.DatabasePolicy) error {
	if p.DegradeAfterS < 0 || p.DegradeAfterS > 3600 {
		return fmt.Errorf("degrade_after_s: 0 (wait for the mirror) to 3600: %w", appliance.ErrBadInput)
	}
	if err := m.running(); err != nil {
		return err
	}
	if m.current().Kind != production {
		return fmt.Errorf("the policy is set on the production unit (the mirror receives it by replication): %w", appliance.ErrConflict)
	}
	c, err := m.connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("set policy: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, policySchema); err != nil {
		return fmt.Errorf("set policy: %w", err)
	}
	if _, err := c.Exec(ctx, `INSERT INTO lawbox.policy VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET sync = $1, degrade_after_s = $2`, p.Sync, p.DegradeAfterS); err != nil {
		return fmt.Errorf("set policy: %w", err)
	}
	m.Log.Warn("database replication policy", "sync", p.Sync, "degrade_after_s", p.DegradeAfterS)
	m.Kick()
	return nil
}

// syncState is the production server's view of its mirror, refreshed every second.
type syncState struct {
	policy appliance.DatabasePolicy
	on     bool // synchronous_standby_names is set
	// behindFrom is production's WAL position once sync took effect; until the mirror has flushed up to
	// it, commits acknowledged before (asynchronously, while it was away) may still be lost: the status
	// says "catching up", not "sync". 0 once covered; MaxUint64 until the position is read.
	behindFrom uint64
	lastInSync time.Time // when the mirror was last streaming and caught up
	// released: the mirror restarts on purpose (ReleaseMirror); gone: it went away since
	released time.Time
	gone     bool
	mirror   string // "streaming from 192.0.2.12", "" when none is connected
	lagBytes *int64
	lagSecs  *float64
}

// maintain runs every second on production: the partner's role and slot, and synchronous mode. Sync is
// switched on only once the mirror streams and is within 1 MB (a commit never waits for a catch-up), and
// off after DegradeAfterS without it.
func (m *Manager) maintain(ctx context.Context) error {
	c, err := m.connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	if err := m.ensureReplica(ctx, c); err != nil {
		return err
	}
	if err := m.applyPlain(ctx, c); err != nil {
		return err
	}
	pol := readPolicy(ctx, c)
	var addr, state string
	var behind int64
	var lagSecs *float64
	var current, flushed uint64
	var silent float64 // seconds since the mirror last reported
	if err := c.QueryRow(ctx, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").Scan(&current); err != nil {
		return err
	}
	// What counts is what the mirror has on its disk (flush_lsn): its replay may wait for a backup's dump.
	err = c.QueryRow(ctx, `SELECT coalesce(host(client_addr), 'local'), state, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn), 0)::bigint,
		extract(epoch FROM flush_lag)::float8, coalesce(pg_wal_lsn_diff(flush_lsn, '0/0'), 0)::bigint,
		coalesce(extract(epoch FROM now() - reply_time), 1e9)::float8
		FROM pg_stat_replication WHERE application_name = $1 ORDER BY backend_start DESC LIMIT 1`, replicaSlot).Scan(&addr, &state, &behind, &lagSecs, &flushed, &silent)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	now := time.Now()
	m.mu.Lock()
	s := m.sync
	s.policy = pol
	s.mirror, s.lagBytes, s.lagSecs = "", nil, nil
	if err == nil {
		s.mirror, s.lagBytes, s.lagSecs = state+" from "+addr, &behind, lagSecs
	}
	// A mirror that stopped without closing its connection stays "streaming" until wal_sender_timeout, with
	// only the waiting commits unreplayed: it counts as in sync only while it reports (every second).
	inSync := err == nil && state == "streaming" && behind < 1<<20 && silent < 3
	if inSync {
		s.lastInSync = now
	}
	// Released, commits do not wait for a mirror that restarts on purpose: from the release until it is back
	// in sync (or a minute, if it never went away).
	if !s.released.IsZero() {
		s.gone = s.gone || !inSync
		if s.gone && inSync || !s.gone && now.Sub(s.released) > time.Minute {
			s.released, s.gone = time.Time{}, false
		}
	}
	want := pol.Sync && s.released.IsZero() && (inSync || pol.DegradeAfterS == 0 || (s.on && now.Sub(s.lastInSync) < time.Duration(pol.DegradeAfterS)*time.Second))
	was := s.on
	s.on = want
	switch {
	case want && !was:
		s.behindFrom = math.MaxUint64 // the position is read at the next round, after the reload
	case s.behindFrom == math.MaxUint64:
		s.behindFrom = current // at least every commit acknowledged before sync took effect
	case s.behindFrom != 0 && flushed >= s.behindFrom:
		s.behindFrom = 0
	}
	m.sync = s
	m.mu.Unlock()
	if want == was {
		return nil
	}
	if err := m.writeSyncConf(want); err != nil {
		return err
	}
	if _, err := c.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return err
	}
	switch {
	case want:
		m.Log.Info("synchronous replication on: commits wait for the mirror")
	case pol.Sync:
		m.Log.Warn("synchronous replication suspended: the mirror is missing; commits no longer wait for it", "after_s", pol.DegradeAfterS)
	default:
		m.Log.Info("asynchronous replication")
	}
	return nil
}

// ReleaseMirror tells production its mirror is about to restart on purpose (a firmware update): commits
// stop waiting for it at once, rather than stall DegradeAfterS until production gives up on it; they wait
// again once it is back and caught up, as after any absence. What is committed meanwhile is on production
// alone, as when the mirror is lost.
func (m *Manager) ReleaseMirror() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sync.released, m.sync.gone = time.Now(), false
	m.Log.Warn("synchronous replication released: the mirror restarts on purpose")
}

// writeSyncConf writes conf.d/sync.conf.
func (m *Manager) writeSyncConf(on bool) error {
	conf := "# Written by the appliance: asynchronous.\n"
	if on {
		// on (the mirror has the commit on its disk), not remote_apply: a promotion replays every WAL record
		// on the mirror's disk, so nothing acknowledged is lost, and a commit never waits for the mirror's
		// replay, which a backup's dump on the mirror may hold up (replicationConf).
		conf = fmt.Sprintf("# Written by the appliance: synchronous.\nsynchronous_standby_names = '%s'\nsynchronous_commit = on\n", replicaSlot)
	}
	return writeAtomic(filepath.Join(m.DataDir, "conf.d", "sync.conf"), []byte(conf), m.cred)
}

// hasFile reports whether the data directory holds name.
func (m *Manager) hasFile(name string) bool {
	_, err := os.Stat(filepath.Join(m.DataDir, name))
	return err == nil
}
