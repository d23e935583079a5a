package database

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lawbox/appliance/appliance"
)

// Lag history: a sample every lagEvery, an hour kept; and for the day, the highest of every lagDayEvery.
const (
	lagEvery    = 10 * time.Second
	lagKeep     = 360
	lagDayEvery = 5 * time.Minute
	lagDayKeep  = 288
)

// recordLag samples the mirror's lag: the production's view of its mirror, or the mirror's own.
func (m *Manager) recordLag(ctx context.Context) {
	st, err := m.Database(ctx)
	if err != nil || st.LagBytes == nil {
		return
	}
	p := appliance.LagPoint{Time: time.Now(), Bytes: *st.LagBytes}
	if st.LagSeconds != nil {
		p.Seconds = *st.LagSeconds
	}
	m.addLag(p)
}

// The lag samples are kept in the state store, so that a restart does not empty the graphs: every sample
// of the hour, and each 5 minutes of the day once they are over.
const (
	bucketLag    = "db-lag"
	bucketLagDay = "db-lag-day"
)

func (m *Manager) addLag(p appliance.LagPoint) {
	m.mu.Lock()
	m.lagHistory = append(m.lagHistory, p)
	if len(m.lagHistory) > lagKeep {
		m.lagHistory = slices.Delete(m.lagHistory, 0, len(m.lagHistory)-lagKeep)
	}
	done := m.addLagDay(p)
	m.mu.Unlock()
	if m.Store == nil {
		return
	}
	if err := m.Store.Append(bucketLag, p.Time, p, lagKeep); err != nil {
		m.Log.Warn("save the mirror's lag", "err", err)
	}
	if done != nil {
		if err := m.Store.Append(bucketLagDay, done.Time, *done, lagDayKeep); err != nil {
			m.Log.Warn("save the mirror's lag", "err", err)
		}
	}
}

// addLagDay folds a sample into the day's series, the highest lag of each lagDayEvery (stamped with its
// start), and returns the period it closed, if it did. m.mu is held.
func (m *Manager) addLagDay(p appliance.LagPoint) *appliance.LagPoint {
	start := p.Time.Truncate(lagDayEvery)
	n := len(m.lagDay)
	if n > 0 && m.lagDay[n-1].Time.Equal(start) {
		last := &m.lagDay[n-1]
		last.Seconds, last.Bytes = max(last.Seconds, p.Seconds), max(last.Bytes, p.Bytes)
		return nil
	}
	var done *appliance.LagPoint
	if n > 0 {
		d := m.lagDay[n-1]
		done = &d
	}
	m.lagDay = append(m.lagDay, appliance.LagPoint{Time: start, Seconds: p.Seconds, Bytes: p.Bytes})
	if len(m.lagDay) > lagDayKeep {
		m.lagDay = slices.Delete(m.lagDay, 0, len(m.lagDay)-lagDayKeep)
	}
	return done
}

// loadLag reads back the samples of the hour, and the periods of the day, before now that an earlier run
// saved.
func (m *Manager) loadLag(now time.Time) {
	hour := m.readLag(bucketLag, now, lagEvery*lagKeep, lagKeep)
	day := m.readLag(bucketLagDay, now, lagDayEvery*lagDayKeep, lagDayKeep)
	m.mu.Lock()
	m.lagHistory, m.lagDay = hour, day
	m.mu.Unlock()
}

// readLag reads the newest samples of a bucket, at most keep and none older than within, oldest first.
func (m *Manager) readLag(bucket string, now time.Time, within time.Duration, keep int) []appliance.LagPoint {
	if m.Store == nil {
		return nil
	}
	var pts []appliance.LagPoint
	err := m.Store.Last(bucket, func(v []byte) (bool, error) {
		var p appliance.LagPoint
		if err := json.Unmarshal(v, &p); err != nil {
			return false, fmt.Errorf("lag sample: %w", err)
		}
		if now.Sub(p.Time) > within {
			return false, nil
		}
		pts = append(pts, p)
		return len(pts) < keep, nil
	})
	if err != nil {
		m.Log.Warn("read the saved lag samples", "err", err)
	}
	slices.Reverse(pts)
	return pts
}

// slots lists the replication slots and the WAL each retains.
func slots(ctx context.Context, c *pgx.Conn) ([]appliance.ReplicationSlot, error) {
	rows, err := c.Query(ctx, `SELECT slot_name, active, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint,
		coalesce(wal_status, 'lost'), safe_wal_size FROM pg_replication_slots ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("replication slots: %w", err)
	}
	var out []appliance.ReplicationSlot
	for rows.Next() {
		var s appliance.ReplicationSlot
		if err := rows.Scan(&s.Name, &s.Active, &s.RetainedBytes, &s.WALStatus, &s.SafeBytes); err != nil {
			return nil, fmt.Errorf("replication slots: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Database reports the server and its databases.
func (m *Manager) Database(ctx context.Context) (appliance.DatabaseStatus, error) {
	m.mu.Lock()
	cur, sy := m.cur, m.sync
	st := appliance.DatabaseStatus{Role: cur.Kind, State: m.state, Detail: m.detail, Version: m.version, Databases: []appliance.DatabaseInfo{},
		LastPromotionS: m.lastPromotion, Policy: DefaultPolicy, LagHistory: slices.Clone(m.lagHistory), LagDay: slices.Clone(m.lagDay)}
	m.mu.Unlock()
	aside, err := m.setAside()
	if err != nil {
		return st, err
	}
	st.SetAside = aside
	st.Stranded = m.stranded()
	if m.running() != nil {
		st.Role = "none"
		return st, nil
	}
	switch {
	case cur.Kind == readOnly:
		st.Role, st.State = mirror, "running read-only, following nobody"
	case cur.Up != nil && cur.Up.Partner:
		st.Upstream = "partner unit (" + cur.Up.Host + ")"
	case cur.Up != nil:
		st.Upstream = net.JoinHostPort(cur.Up.Host, strconv.Itoa(cur.Up.Port))
	}
	c, err := m.connect(ctx, "postgres")
	if err != nil {
		return st, fmt.Errorf("database status: %w", err)
	}
	defer c.Close(ctx)
	st.Policy = readPolicy(ctx, c)
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
	plain, err := readPlain(ctx, c)
	if err != nil {
		return st, fmt.Errorf("databases open without TLS: %w", err)
	}
	for i := range st.Databases {
		st.Databases[i].Plain = slices.Contains(plain, st.Databases[i].Name)
	}
	_ = c.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").Scan(&st.Connections)
	if cur.Kind == production {
		if st.Slots, err = slots(ctx, c); err != nil {
			return st, err
		}
		st.Mirror, st.LagBytes, st.LagSeconds = sy.mirror, sy.lagBytes, sy.lagSecs
		st.Sync = "async"
		if sy.on && sy.behindFrom == 0 {
			st.Sync = "sync"
		} else if sy.on {
			st.Sync = "catching up" // new commits wait for the mirror; some acknowledged before may not be there yet
		} else if st.Policy.Sync && m.paired() {
			st.Sync = "degraded"
		}
		return st, nil
	}
	st.Sync = "async"
	if st.Policy.Sync {
		st.Sync = "sync"
	}
	// Bytes the upstream reported as written but not yet replayed here, and the age of the last replayed
	// transaction when something is still to replay.
	var lag int64
	var secs float64
	err = c.QueryRow(ctx, `SELECT coalesce((SELECT pg_wal_lsn_diff(latest_end_lsn, pg_last_wal_replay_lsn()) FROM pg_stat_wal_receiver), 0)::bigint,
		CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
		     ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8`).Scan(&lag, &secs)
	if err == nil {
		lag = max(lag, 0)
		st.LagBytes, st.LagSeconds = &lag, &secs
	}
	return st, nil
}
