package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql"
)

// RestoreTo brings the databases dbs (every one when empty) back as they were at the moment at, from the
// newest base copy on t before at and the WAL after it, into the local production server; into, replace:
// as for Restore.
func (e *Engine) RestoreTo(ctx context.Context, t target.Target, at time.Time, dbs []string, into string, replace bool) ([]appliance.RestoredDatabase, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id, err := e.Identity()
	if err != nil {
		return nil, err
	}
	base, err := BaseBefore(ctx, t, id, at)
	if err != nil {
		return nil, err
	}
	c, err := e.production(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	sc, err := e.recover(ctx, t, base, at)
	if err != nil {
		return nil, err
	}
	defer sc.stop()
	sctx := context.WithoutCancel(ctx)
	sconn, err := sc.connect(ctx, "postgres")
	if err != nil {
		return nil, err
	}
	defer sconn.Close(sctx)
	if len(dbs) == 0 {
		rows, err := sconn.Query(ctx, "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn AND datname <> 'postgres' ORDER BY 1")
		if err == nil {
			dbs, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			return nil, err
		}
	}
	names, err := e.checkNames(ctx, c, dbs, into, replace)
	if err != nil {
		return nil, err
	}
	for _, db := range dbs {
		if ok, err := databaseExists(ctx, sconn, db); err != nil || !ok {
			return nil, fmt.Errorf("database %q did not exist at %s: %w", db, at.UTC().Format(time.RFC3339), appliance.ErrNotFound)
		}
	}
	roles, err := readRoles(ctx, sconn)
	if err != nil {
		return nil, fmt.Errorf("roles at %s: %w", at.UTC().Format(time.RFC3339), err)
	}
	if err := applyRoles(ctx, c, roles); err != nil {
		return nil, err
	}
	var out []appliance.RestoredDatabase
	for i, db := range dbs {
		r, err := e.restoreFrom(ctx, c, sc, db, names[i])
		if err != nil {
			return out, err
		}
		out = append(out, r)
		e.Log.Warn("database restored to a point in time", "at", at, "base", base.ID, "database", db, "into", r.Into, "kept_as", r.KeptAs, "rows", r.Rows)
	}
	return out, nil
}

// restoreFrom dumps db from the recovered server sc, with its row counts in the dump's snapshot, into the
// production server as name.
func (e *Engine) restoreFrom(ctx context.Context, c *pgx.Conn, sc *scratch, db, name string) (appliance.RestoredDatabase, error) {
	d := DumpedDB{Name: db, Rows: map[string]int64{}}
	sdb, err := sc.connect(ctx, db)
	if err != nil {
		return appliance.RestoredDatabase{}, err
	}
	defer sdb.Close(context.WithoutCancel(ctx))
	tx, err := sdb.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return appliance.RestoredDatabase{}, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var snap string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot(), pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()").Scan(&snap, &d.Owner); err != nil {
		return appliance.RestoredDatabase{}, err
	}
	if err := tableSums(ctx, tx, &d); err != nil {
		return appliance.RestoredDatabase{}, err
	}
	src := func() (io.ReadCloser, error) {
		cmd := sc.Command(ctx, "pg_dump", append(pgsql.ClientArgs(sc.dir, sc.port), "--format=custom", "--compress=0", "--snapshot="+snap, "-d", db)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return target.ReadCloser{Reader: out, OnClose: func() error {
			if err := cmd.Wait(); err != nil {
				return fmt.Errorf("pg_dump %s: %w: %s", db, err, strings.TrimSpace(stderr.String()))
			}
			return nil
		}}, nil
	}
	return e.restoreOne(ctx, c, d, name, src)
}

// BaseBefore is the newest base copy on t taken before at.
func BaseBefore(ctx context.Context, t target.Target, id age.Identity, at time.Time) (*Manifest, error) {
	ms, _, err := Manifests(ctx, t, id)
	if err != nil {
		return nil, err
	}
	base, err := pickBase(ms, at)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Name(), err)
	}
	return base, nil
}

// pickBase returns the newest base copy in ms that was complete at at: recovery from a copy can stop no
// earlier than the copy's end, so one still being taken at that moment cannot serve.
func pickBase(ms []*Manifest, at time.Time) (*Manifest, error) {
	var base, first *Manifest
	for _, m := range ms {
		if m.Kind != KindBase {
			continue
		}
		if first == nil || m.Complete().Before(first.Complete()) {
			first = m
		}
		if !m.Complete().After(at) && (base == nil || m.Complete().After(base.Complete())) {
			base = m
		}
	}
	switch {
	case base != nil:
		return base, nil
	case first == nil:
		return nil, fmt.Errorf("no base copy yet (one is taken every week): no point-in-time restore: %w", appliance.ErrNotFound)
	default:
		return nil, fmt.Errorf("the oldest base copy was complete at %s, after %s: %w", first.Complete().UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339), appliance.ErrNotFound)
	}
}

// Complete is when base copy m was complete: the earliest moment it can be recovered to.
func (m *Manifest) Complete() time.Time {
	if m.Ended.IsZero() {
		return m.Created
	}
	return m.Ended
}

// recover brings the base copy of backup base on t, and the WAL after it, back up in a scratch server
// recovered up to at (or, when at is zero, only to the end of the copy, which proves the copy sound). It
// fails, saying how far the WAL reaches, when at is past the last archived WAL.
func (e *Engine) recover(ctx context.Context, t target.Target, base *Manifest, at time.Time) (*scratch, error) {
	id, err := e.Identity()
	if err != nil {
		return nil, err
	}
	copyObj := Object{}
	for _, o := range base.Objects {
		if strings.HasSuffix(o.Key, "/base.tar.zst.age") {
			copyObj = o
		}
	}
	if copyObj.Key == "" {
		return nil, fmt.Errorf("backup %s holds no base copy", base.ID)
	}
	start, err := base.startSegment()
	if err != nil {
		return nil, err
	}
	sc, err := e.newScratch("recover-")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*scratch, error) {
		sc.stop()
		return nil, err
	}
	r, err := Open(ctx, t, copyObj, id)
	if err != nil {
		return fail(err)
	}
	err = untar(r, sc.DataDir, int(sc.Cred.Uid), int(sc.Cred.Gid))
	r.Close()
	if err != nil {
		return fail(fmt.Errorf("base copy %s: %w", base.ID, err))
	}
	for _, f := range []string{"postmaster.pid", "recovery.signal", "standby.signal", "backup_manifest"} {
		os.Remove(filepath.Join(sc.DataDir, f))
	}
	wal := filepath.Join(sc.DataDir, "pg_wal")
	if err := os.MkdirAll(wal, 0o700); err != nil {
		return fail(err)
	}
	segments, err := fetchWAL(ctx, t, id, start, wal, sc)
	if err != nil {
		return fail(err)
	}
	stopAt := "recovery_target = 'immediate'"
	if !at.IsZero() {
		stopAt = fmt.Sprintf("recovery_target_time = '%s'", at.UTC().Format("2006-01-02 15:04:05.999999+00"))
	}
	conf := strings.Join([]string{
		"listen_addresses = ''", fmt.Sprintf("port = %d", sc.port), fmt.Sprintf("unix_socket_directories = '%s'", sc.dir),
		fmt.Sprintf("hba_file = '%s/hba.conf'", sc.dir), fmt.Sprintf("ident_file = '%s/ident.conf'", sc.dir),
		"fsync = off", "hot_standby = on", "max_connections = 100", "max_wal_senders = 10", "shared_buffers = '32MB'",
		"archive_mode = off", "ssl = off", "logging_collector = off",
		stopAt, "recovery_target_action = 'promote'", "recovery_target_timeline = 'latest'", ""}, "\n")
	files := map[string]string{"recover.conf": conf, "hba.conf": "local all all trust\n", "ident.conf": "", "data/standby.signal": ""}
	for name, text := range files {
		p := filepath.Join(sc.dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			return fail(err)
		}
		os.Chown(p, int(sc.Cred.Uid), int(sc.Cred.Gid))
	}
	if err := sc.start("-c", "config_file="+filepath.Join(sc.dir, "recover.conf")); err != nil {
		return fail(err)
	}
	if err := sc.ready(ctx); err != nil {
		return nil, fmt.Errorf("recover %s with %d WAL files: %w", base.ID, segments, err)
	}
	if err := replayed(ctx, sc, base, at); err != nil {
		return fail(err)
	}
	return sc, nil
}

// fetchWAL copies every archived WAL segment from start on (and every timeline history) from t into wal,
// owned by the scratch server's user; it returns how many.
func fetchWAL(ctx context.Context, t target.Target, id *age.X25519Identity, start, wal string, sc *scratch) (int, error) {
	keys, err := t.List(ctx)
	if err != nil {
		return 0, err
	}
	segments := 0
	for _, k := range keys {
		name, ok := strings.CutPrefix(k, WALPrefix)
		name = strings.TrimSuffix(name, ".zst.age")
		if !ok || !walName.MatchString(name) || strings.HasSuffix(name, ".backup") || !strings.HasSuffix(name, ".history") && name[8:] < start {
			continue
		}
		if err := fetch(ctx, t, k, name, id, filepath.Join(wal, name)); err != nil {
			return 0, fmt.Errorf("WAL %s: %w", name, err)
		}
		if err := os.Chown(filepath.Join(wal, name), int(sc.Cred.Uid), int(sc.Cred.Gid)); err != nil {
			return 0, err
		}
		segments++
	}
	return segments, nil
}

// replayed waits until the scratch server sc has replayed up to its target and promoted itself; WAL that ends
// before the target leaves it waiting for more, which is an error once it stays still for 10 s.
func replayed(ctx context.Context, sc *scratch, base *Manifest, at time.Time) error {
	c, err := sc.connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	last, still := "", time.Now()
	for {
		var recovering bool
		var lsn string
		var reached *time.Time
		err := c.QueryRow(ctx, "SELECT pg_is_in_recovery(), coalesce(pg_last_wal_replay_lsn()::text, ''), pg_last_xact_replay_timestamp()").Scan(&recovering, &lsn, &reached)
		if err != nil {
			return fmt.Errorf("recover %s: %w: %s", base.ID, err, sc.log.last())
		}
		if !recovering {
			return nil
		}
		if lsn != last {
			last, still = lsn, time.Now()
		} else if time.Since(still) > 10*time.Second {
			upTo := "the end of the base copy"
			if reached != nil {
				upTo = reached.UTC().Format(time.RFC3339)
			}
			return fmt.Errorf("%w %s: these backups reach %s: %w", ErrWALEnds, at.UTC().Format(time.RFC3339), upTo, appliance.ErrConflict)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}

}
