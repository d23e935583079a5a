package database

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/durable"
	"github.com/lawbox/appliance/appliance/pgsql"
	"github.com/lawbox/appliance/appliance/state"
)

const (
	configKey      = "database"
	partnerCopyKey = "database.partner-copy" // set once this unit started copying its partner's database
	// unfitKey is set while the cluster is being brought in line with the partner's (pg_rewind, or a new
	// copy): a rewind that stops half-way leaves a cluster that must never start, and a cluster being
	// replaced is not the office's latest data. Cleared when the rewind or copy completes.
	unfitKey = "database.unfit"
	// afreshKey is an admin's request to set a stranded cluster aside (StartAfresh), carried out by Run.
	afreshKey = "database.afresh"
)

// copiedPartner reports whether this unit ever started copying its partner's database.
func (m *Manager) copiedPartner() bool {
	_, err := m.Store.Get(state.BucketConfig, partnerCopyKey)
	return err == nil
}

// Fit reports whether this unit's cluster may serve as production: not while a rewind or a copy from the
// partner is under way or was cut short. The pair asks for the active role only when it is.
func (m *Manager) Fit() bool {
	_, err := m.Store.Get(state.BucketConfig, unfitKey)
	return err != nil
}

// Writable is whether the server runs as production and answers: an active unit takes the service address
// only then, so that no client is answered "read-only transaction" by a unit still promoting its copy.
func (m *Manager) Writable() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur.Kind == production && m.state == "running"
}

func (m *Manager) setFit(fit bool) error {
	if fit {
		return m.Store.Delete(state.BucketConfig, unfitKey)
	}
	return m.Store.Put(state.BucketConfig, unfitKey, []byte("1"))
}

// roleConfig is the database's role, kept in the state store.
type roleConfig struct {
	Role     string    `json:"role"` // "production" (default) or "mirror"
	Upstream *upstream `json:"upstream,omitempty"`
	Since    time.Time `json:"since"`
}

type upstream struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	User     string `json:"user"`
	Password string `json:"password"`
	Slot     string `json:"slot"`
	Partner  bool   `json:"partner,omitempty"` // the other unit of the pair
	// CAFile holds the certificate chain an external upstream presented when the admin confirmed its
	// fingerprint: the only root its TLS connections trust.
	CAFile string `json:"ca_file,omitempty"`
	sealed bool   // an external upstream's password is sealed (the data array's key not given yet)
}

// upstreamPasswordKey is an external upstream's password in the sealed secrets (state.BucketSecrets), not
// with the role: a disk taken out does not give the office's server away.
const upstreamPasswordKey = "database.upstream-password"

func (m *Manager) roleConfig() roleConfig {
	var c roleConfig
	if m.Store != nil {
		if err := m.Store.GetJSON(state.BucketConfig, configKey, &c); err != nil && !errors.Is(err, state.ErrNotFound) {
			m.Log.Error("database settings unreadable", "err", err)
		}
	}
	if c.Role == "" {
		c.Role = "production"
	}
	if up := c.Upstream; up != nil && !up.Partner {
		if up.Password != "" { // kept with the role (an older firmware, or one on trial)
			if m.Store.Sealing() {
				if err := m.saveRole(c); err != nil && !errors.Is(err, state.ErrSealed) { // sealed: moved once unlocked
					m.Log.Warn("the upstream's password stays with the database settings", "err", err)
				}
			}
			return c
		}
		pw, err := m.Store.Secret(upstreamPasswordKey)
		switch {
		case errors.Is(err, state.ErrSealed):
			up.sealed = true
		case err != nil:
			m.Log.Error("the upstream's password is unreadable", "err", err)
		}
		up.Password = pw
	}
	return c
}

// saveRole stores c: an external upstream's password among the sealed secrets once the store seals them,
// else with the role, where a firmware this one may go back to reads it.
func (m *Manager) saveRole(c roleConfig) error {
	if up := c.Upstream; up != nil && !up.Partner {
		sealed, err := m.Store.KeepSecret(upstreamPasswordKey, up.Password)
		if err != nil {
			return fmt.Errorf("save the upstream's password: %w", err)
		}
		if sealed {
			kept := *up
			kept.Password = ""
			c.Upstream = &kept
		}
	}
	return m.Store.PutJSON(state.BucketConfig, configKey, c)
}

// ForOlderFirmware puts an external upstream's password back with the role once the store no longer
// seals (its Clear): before the unit goes back to a firmware that does not read the sealed secrets.
func (m *Manager) ForOlderFirmware() error {
	c := m.roleConfig()
	if c.Upstream == nil || c.Upstream.Partner {
		return nil
	}
	if c.Upstream.sealed {
		return fmt.Errorf("the upstream's password: %w", state.ErrSealed)
	}
	return m.saveRole(c)
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9.:_-]{1,253}$`)

// SetUpstream makes the unit a mirror of an external PostgreSQL 15 server: its own cluster is moved aside
// (never deleted) and replaced by a copy of the upstream's, which then streams through a replication slot.
func (m *Manager) SetUpstream(ctx context.Context, u appliance.Upstream) error {
	if !hostRE.MatchString(u.Host) || u.Port < 1 || u.Port > 65535 || !nameRE.MatchString(u.User) || u.Password == "" ||
		strings.ContainsAny(u.Password, "'\\\n") {
		return fmt.Errorf("upstream: host, port 1-65535, user (lower-case letters, digits, _) and a password without quotes or backslashes are required: %w", appliance.ErrBadInput)
	}
	if m.paired() {
		return fmt.Errorf("upstream: this unit is paired and mirrors its partner; unpair it first: %w", appliance.ErrConflict)
	}
	if st, err := m.Database(ctx); err == nil && len(st.Databases) > 0 && u.Confirm != "erase" {
		var names []string
		for _, d := range st.Databases {
			names = append(names, d.Name)
		}
		return fmt.Errorf("this unit holds databases (%s); confirm with \"erase\" to move them aside and mirror %s: %w",
			strings.Join(names, ", "), u.Host, appliance.ErrConflict)
	}
	host, _ := os.Hostname()
	slot := "lawbox_" + regexp.MustCompile(`[^a-z0-9_]`).ReplaceAllString(strings.ToLower(host), "_")
	up := &upstream{Host: u.Host, Port: u.Port, User: u.User, Password: u.Password, Slot: slot,
		CAFile: filepath.Join(filepath.Dir(m.DataDir), "upstream-ca.crt")}
	if err := m.pinUpstream(ctx, up, u.Fingerprint); err != nil {
		return err
	}
	// Try it now: a wrong password or version is the admin's to fix, and better said here than in a state.
	if _, err := m.upstreamSystem(ctx, up); err != nil {
		if errors.Is(err, appliance.ErrBadInput) {
			return fmt.Errorf("upstream: %w", err)
		}
		return fmt.Errorf("upstream %s: %v: %w", net.JoinHostPort(u.Host, strconv.Itoa(u.Port)), err, appliance.ErrUnavailable)
	}
	c := roleConfig{Role: "mirror", Since: time.Now(), Upstream: up}
	if err := m.saveRole(c); err != nil {
		return err
	}
	m.Log.Warn("database becomes a mirror", "upstream", net.JoinHostPort(u.Host, fmt.Sprint(u.Port)), "slot", slot)
	m.Kick()
	return nil
}

// Promote makes this unit the production server. Paired, it is a switchover: the pair makes this unit
// active (the old production stands down and stops taking writes if it can be reached), and the database
// follows: the mirror replays everything it received, then takes writes. Unpaired, the mirror of an external
// server is promoted and stops following it.
func (m *Manager) Promote(ctx context.Context) (appliance.Promotion, error) {
	if m.current().Kind == production && m.running() == nil {
		return appliance.Promotion{}, fmt.Errorf("promote: this unit is already the production server: %w", appliance.ErrConflict)
	}
	start := time.Now()
	if m.paired() {
		if !m.hasFile("PG_VERSION") {
			return appliance.Promotion{}, fmt.Errorf("promote: this unit holds no copy of the database yet: %w", appliance.ErrConflict)
		}
		if err := m.waitStreaming(ctx); err != nil {
			return appliance.Promotion{}, err
		}
		m.checkpointPartner(ctx)
		if err := m.Pair.SetRole(ctx, "active", false); err != nil {
			return appliance.Promotion{}, fmt.Errorf("promote: %w", err)
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		for m.current().Kind != production || m.running() != nil {
			select {
			case <-ctx.Done():
				return appliance.Promotion{}, fmt.Errorf("promote: the database did not become production within 2 minutes (%s): %w", m.stateNow(), appliance.ErrUnavailable)
			case <-time.After(20 * time.Millisecond):
			}
		}
	} else {
		c := m.roleConfig()
		if c.Role != mirror {
			return appliance.Promotion{}, fmt.Errorf("promote: this unit is not a mirror: %w", appliance.ErrConflict)
		}
		if err := m.running(); err != nil {
			return appliance.Promotion{}, err
		}
		if err := m.promote(ctx); err != nil {
			return appliance.Promotion{}, err
		}
		c.Role, c.Since = production, time.Now()
		if err := m.saveRole(c); err != nil {
			return appliance.Promotion{}, err
		}
		m.Kick()
	}
	p := appliance.Promotion{Seconds: time.Since(start).Seconds()}
	m.Log.Warn("database promoted to production", "took", time.Since(start))
	return p, nil
}

// checkpointPartner asks the production unit, while it still serves, to write its dirty pages: its
// shutdown at the switchover then has little left to write, and the switchover waits for that shutdown.
// Best effort: skipped when the partner cannot be reached.
func (m *Manager) checkpointPartner(ctx context.Context) {
	up := m.partner()
	if p := m.Pair.Pair(); up == nil || p.Peer == nil || !p.Peer.Reachable {
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cfg, err := pgx.ParseConfig(up.conninfo("postgres"))
	if err != nil {
		return
	}
	cfg.Password = up.Password
	pgsql.Pin(&cfg.Config)
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		_, err = c.Exec(ctx, "CHECKPOINT")
		c.Close(ctx)
	}
	m.Log.Info("checkpoint on the production unit before the switchover", "took", time.Since(start), "err", err)
}

// waitStreaming holds a planned switchover until this mirror streams from the production unit (up to 30 s,
// streamWait in tests):
// only then does the old production's shutdown hand over its last WAL. A mirror still rejoining (pg_rewind,
// starting) would be promoted without the commits production made meanwhile, and they would be rewound
// away when the old production rejoins. Skipped when the partner cannot be reached (a failover).
func (m *Manager) waitStreaming(ctx context.Context) error {
	wait := m.streamWait
	if wait == 0 {
		wait = 30 * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		if p := m.Pair.Pair(); p.Peer == nil || !p.Peer.Reachable {
			return nil
		}
		var streaming bool
		if c, err := m.connect(ctx, "postgres"); err == nil {
			_ = c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')").Scan(&streaming)
			c.Close(ctx)
		}
		if streaming {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("promote: this mirror is not streaming from the production unit (%s): promoting it now would lose the commits it has not received; try again once it streams: %w", m.stateNow(), appliance.ErrConflict)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (m *Manager) stateNow() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// promote ends recovery on the running server: it replays all WAL it has, starts a new timeline and takes
// writes. A server not in recovery is left alone.
func (m *Manager) promote(ctx context.Context) error {
	start := time.Now()
	c, err := m.connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	defer c.Close(ctx)
	var recovery bool
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&recovery); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	if recovery && m.paired() {
		// A switchover: the old production is shutting down and sends its last WAL as it does. Promote once
		// that stream ended (every commit it acknowledged is here), or at once when the partner is gone.
		waitStart := time.Now()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			var streaming bool
			if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')").Scan(&streaming); err != nil {
				return fmt.Errorf("promote: %w", err)
			}
			if p := m.Pair.Pair(); !streaming || p.Peer == nil || !p.Peer.Reachable {
				break
			}
		}
		m.Log.Info("the old production's stream ended", "waited", time.Since(waitStart))
	}
	if recovery {
		// The replay may be waiting for a query here (a backup's dump holds locks and the replay never
		// cancels it: replicationConf); the promotion must not.
		var ended int
		if err := c.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()").Scan(&ended); err != nil {
			return fmt.Errorf("promote: end the mirror's queries: %w", err)
		}
		if ended > 0 {
			m.Log.Warn("promotion: the mirror's connections were ended (a backup on it fails)", "connections", ended)
		}
		var ok bool
		if err := c.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&ok); err != nil || !ok {
			return fmt.Errorf("promote: not finished within 60 s (%v)", err)
		}
	}
	// The next start is as production: no upstream.
	if err := writeAtomic(filepath.Join(m.DataDir, "conf.d", "replication.conf"), nil, m.cred); err != nil {
		return err
	}
	m.mu.Lock()
	m.lastPromotion = time.Since(start).Seconds()
	m.mu.Unlock()
	m.Log.Warn("database promoted", "took", time.Since(start))
	return nil
}

// follow readies the data directory to mirror u. The partner unit's copy is brought in line with pg_rewind
// (a former production unit's diverging history is wound back: this is the rejoin), or copied again when
// rewind cannot work or the cluster is not a copy of the partner's; an external upstream is copied once.
func (m *Manager) follow(ctx context.Context, u *upstream) error {
	if !u.Partner {
		if !m.hasFile("standby.signal") {
			if err := m.clone(ctx, u); err != nil {
				return err
			}
		}
		return nil
	}
	id, err := m.upstreamSystem(ctx, u)
	if errors.Is(err, errVersion) {
		return err
	}
	if err != nil { // down, not production yet, or its replication role not made yet: all pass
		return waiting{fmt.Sprintf("waiting for the production database on the partner unit (%v)", err)}
	}
	if m.Fit() && m.hasFile("PG_VERSION") && m.systemID(ctx) == id {
		if err := m.settle(ctx); err != nil {
			m.Log.Warn("this unit's copy stopped abruptly and could not be brought to a clean stop", "err", err)
		}
		// A dry run first: it changes nothing, so when the production unit goes away meanwhile (a switchover
		// straight back to this unit), this unit keeps its data, and its fitness to serve, and tries again.
		if err := m.rewind(ctx, u, true); err != nil {
			if _, gone := m.upstreamSystem(ctx, u); gone != nil {
				return waiting{fmt.Sprintf("waiting for the production database on the partner unit (%v)", gone)}
			}
			m.Log.Warn("rewind cannot work: copying the partner's database again", "err", err)
			return m.clone(ctx, u)
		}
		if err := m.setFit(false); err != nil {
			return err
		}
		err := m.rewind(ctx, u, false)
		if err == nil {
			err = writeAtomic(filepath.Join(m.DataDir, "standby.signal"), nil, m.cred)
		}
		if err == nil {
			return m.setFit(true)
		}
		m.Log.Warn("rewind failed: copying the partner's database again", "err", err)
	}
	return m.clone(ctx, u)
}

// systemID is the local cluster's system identifier ("" when unreadable).
func (m *Manager) systemID(ctx context.Context) string {
	return m.control(ctx, "Database system identifier")
}

// control is one line of pg_controldata's report on the local cluster ("" when unreadable).
func (m *Manager) control(ctx context.Context, key string) string {
	out, err := m.cluster().Command(ctx, "pg_controldata", "-D", m.DataDir).Output()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// settleWait bounds how long a mirror that stopped abruptly may take to replay its own WAL.
const settleWait = 5 * time.Minute

// settle brings a mirror that stopped abruptly (a power cut, a kill) to a clean stop, which pg_rewind
// needs to judge it: pg_rewind's own recovery runs the server in single-user mode, which refuses a
// standby, and every mirror that lost power was then copied again in full. The server starts as a
// standby that follows nobody and lets nobody in, replays its own WAL until it is consistent (it then
// answers on its socket) and stops: "shut down in recovery", no WAL of its own written. A cluster that
// was stopped cleanly, or is no standby, is left alone.
func (m *Manager) settle(ctx context.Context) error {
	if !m.hasFile("standby.signal") || m.control(ctx, "Database cluster state") != "in archive recovery" {
		return nil
	}
	m.setState("recovering this unit's copy after an abrupt stop")
	out := &strings.Builder{}
	pg, err := m.cluster().Start(out, "-c", "primary_conninfo=", "-c", "primary_slot_name=",
		"-c", "listen_addresses=", "-c", "hot_standby=on", "-c", "port="+strconv.Itoa(m.Port))
	if err != nil {
		return fmt.Errorf("recover this unit's copy: %w", err)
	}
	err = pg.Ready(ctx, func(ctx context.Context) error {
		c, err := m.connect(ctx, "postgres")
		if err == nil {
			c.Close(ctx)
		}
		return err
	}, 500*time.Millisecond, settleWait)
	pg.Stop(syscall.SIGINT, 2*time.Minute) // fast shutdown: a restartpoint, no WAL written
	switch {
	case errors.Is(err, pgsql.ErrExited):
		return fmt.Errorf("postgres recovering this unit's copy exited: %w: %s", err, lastLines(out.String(), 5))
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fmt.Errorf("this unit's copy did not become consistent within %v: %s", settleWait, lastLines(out.String(), 5))
	case pg.Err() != nil:
		return fmt.Errorf("stop postgres after its recovery: %v: %s", pg.Err(), lastLines(out.String(), 5))
	}
	m.Log.Info("this unit's copy recovered after an abrupt stop", "state", m.control(ctx, "Database cluster state"))
	return nil
}

// lastLines is the end of a program's output, for an error.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// pgEnv is the environment of the PostgreSQL client programs.
func (m *Manager) pgEnv(u *upstream) []string {
	return append(pgsql.Env(m.BinDir), "PGPASSWORD="+u.Password, "PGCONNECT_TIMEOUT=10")
}

// rewind winds the local cluster back to where it left the upstream's history (nothing when it never left
// it). pg_rewind recovers a cluster that was not shut down cleanly first. A dry run changes nothing.
func (m *Manager) rewind(ctx context.Context, u *upstream, dry bool) error {
	m.setState("rejoining: winding back to the production unit's history (pg_rewind)")
	args := []string{"--target-pgdata=" + m.DataDir, "--source-server=" + u.conninfo("postgres")}
	if dry {
		args = append(args, "--dry-run")
	}
	cmd := m.cluster().Command(ctx, "pg_rewind", args...)
	cmd.Env = m.pgEnv(u)
	cmd.Dir = m.DataDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_rewind: %w: %s", err, strings.TrimSpace(string(out)))
	}
	if !dry {
		m.Log.Info("rewind done", "output", strings.TrimSpace(string(out)))
	}
	return nil
}

// clone copies the upstream cluster with pg_basebackup into a new directory, then swaps it in; the old
// cluster is renamed, not deleted. The state shows pg_basebackup's progress.
func (m *Manager) clone(ctx context.Context, u *upstream) error {
	from := u.Host
	if u.Partner {
		from = "the partner unit"
	}
	m.setState("copying from " + from)
	if u.Partner {
		if err := m.Store.Put(state.BucketConfig, partnerCopyKey, []byte("1")); err != nil {
			return err
		}
		if err := m.setFit(false); err != nil {
			return err
		}
	}
	tmp := m.DataDir + ".clone"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	run := func(createSlot bool) (string, error) {
		args := []string{"-d", u.conninfo("postgres"), "-D", tmp, "-X", "stream", "-c", "fast", "-S", u.Slot, "-w", "-P"}
		if createSlot {
			args = append(args, "-C")
		}
		cmd := m.cluster().Command(ctx, "pg_basebackup", args...)
		cmd.Env = m.pgEnv(u)
		r, err := cmd.StderrPipe()
		if err != nil {
			return "", err
		}
		if err := cmd.Start(); err != nil {
			return "", err
		}
		background(cmd)
		var tail []string
		sc := bufio.NewScanner(r)
		sc.Split(scanLinesOrReturns)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if pct := progressRE.FindStringSubmatch(line); pct != nil {
				m.setState(fmt.Sprintf("copying from %s: %s %%", from, pct[1]))
			} else if line != "" {
				tail = append(tail, line)
			}
		}
		return strings.Join(tail, "; "), cmd.Wait()
	}
	out, err := run(!u.Partner)                                // the partner's slot is made by its production side
	if err != nil && strings.Contains(out, "already exists") { // our slot from an earlier copy
		_ = os.RemoveAll(tmp)
		out, err = run(false)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("copy from %s: %w: %s", u.Host, err, out)
	}
	// standby.signal makes the copy start as a standby (until a promotion removes it), not as a second primary.
	if err := writeAtomic(filepath.Join(tmp, "standby.signal"), nil, m.cred); err != nil {
		return err
	}
	if err := m.moveAside(); err != nil {
		return err
	}
	if err := os.Rename(tmp, m.DataDir); err != nil {
		return err
	}
	if err := durable.SyncDir(filepath.Dir(m.DataDir)); err != nil {
		return err
	}
	return m.setFit(true)
}

// background lowers a bulk copy's CPU priority (nice 10): the pair's heartbeats on the same unit must not
// wait behind it.
func background(cmd *exec.Cmd) {
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, 10)
}

// progressRE finds the percentage in pg_basebackup -P's "1234/5678 kB (21%), 0/1 tablespace".
var progressRE = regexp.MustCompile(`\(([0-9]+)%\)`)

// scanLinesOrReturns splits at \n or \r (progress lines end in \r).
func scanLinesOrReturns(data []byte, atEOF bool) (int, []byte, error) {
	for i, b := range data {
		if b == '\n' || b == '\r' {
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
