// Package engine makes and reads the office's backups: a logical dump of every database (pg_dump custom
// format) and of the roles, base copies and the WAL archive for a point in time, the documents; each
// compressed with zstd and encrypted with age for the unit's recovery identity before anything is written,
// under a signed manifest; verified by restoring into a scratch PostgreSQL and comparing every table's rows
// with the ones taken in the dump's own snapshot; copied to targets (package target) and pruned there.
// When and where, and the API, are the service's (package backup).
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql"
	"github.com/lawbox/appliance/appliance/state"
)

// Kinds of backup.
const (
	KindDump      = "dump"      // the nightly one; the last 30 are kept
	KindIncrement = "increment" // every 15 minutes when something changed; kept 48 hours
	KindBase      = "base"      // weekly physical copy, the start of a point-in-time restore; the last 2 kept
	KindDocuments = "documents" // the document folders, when something changed; contents shared between backups
)

// Manifest describes one backup. It is written last (a backup without one is unfinished) and encrypted
// like everything else: table names are the office's data too.
type Manifest struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind"`
	Created   time.Time  `json:"created"`
	Firmware  string     `json:"firmware"`
	LSN       string     `json:"lsn"` // the WAL position the server had replayed when the dump started; a base's start point
	Timeline  int        `json:"timeline,omitempty"`
	WALFile   string     `json:"wal_file,omitempty"` // a base copy: the WAL segment holding its start
	Ended     time.Time  `json:"ended,omitempty"`    // a base copy: when it was complete (a restore can reach no moment before)
	Objects   []Object   `json:"objects"`
	Databases []DumpedDB `json:"databases"`
	Files     []DocFile  `json:"files,omitempty"` // a documents backup
	MAC       string     `json:"mac"`             // see mac
}

// Object is one stored file: its SHA-256 is over the encrypted bytes, so a target's copy is checked before
// anything is decrypted.
type Object struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// DumpedDB is one database in a backup, with the row count of every table in the dump's snapshot.
type DumpedDB struct {
	Name   string           `json:"name"`
	Object string           `json:"object"`
	Owner  string           `json:"owner"`
	Rows   map[string]int64 `json:"rows"` // "schema.table"
	// Sums holds, per table, the sum of a hash of every row's text in the dump's snapshot (tableSums):
	// a restored copy matches only with the same rows holding the same values. Older backups have none.
	Sums map[string]string `json:"sums,omitempty"`
}

// SizeBytes is the backup's stored size.
func (m *Manifest) SizeBytes() int64 {
	var n int64
	for _, o := range m.Objects {
		n += o.Size
	}
	return n
}

// Engine takes, verifies and prunes backups. Jobs run one at a time.
type Engine struct {
	Log      *slog.Logger
	BinDir   string // PostgreSQL's programs
	Socket   string // the local server's socket directory
	Port     int
	Scratch  string           // where verification restores (on the array, not in RAM)
	WALDir   string           // where the server archives WAL segments (basic_archive); "" for none
	Progress *target.Progress // the running copy or restore, when not nil
	Local    target.Target    // the unit's own array
	Identity func() (*age.X25519Identity, error)
	Store    *state.Store
	Firmware string
	Now      func() time.Time

	mu     sync.Mutex
	shipMu sync.Mutex // one ShipWAL at a time: two would write the same segment's file at once
}

// Clock is the engine's time: Now, else the system's.
func (e *Engine) Clock() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Connect opens a pinned superuser session over the local socket.
func (e *Engine) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	c, err := pgsql.Local(ctx, e.Socket, e.Port, db)
	if err != nil {
		// The server starts with the unit, restarts, or is being promoted: an admin tries again.
		return nil, fmt.Errorf("the unit's database server does not answer yet: try again in a minute: %w (%w)", appliance.ErrUnavailable, err)
	}
	return c, nil
}

// Position is the WAL position the local server has (replayed, on a mirror): a backup is due only when it
// moved since the last one.
func (e *Engine) Position(ctx context.Context) (string, error) {
	c, err := e.Connect(ctx, "postgres")
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	var lsn string
	err = c.QueryRow(ctx, "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text").Scan(&lsn)
	return lsn, err
}

// Backup dumps every database and the roles into a new backup on the unit's array.
func (e *Engine) Backup(ctx context.Context, kind string) (*Manifest, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id, err := e.Identity()
	if err != nil {
		return nil, fmt.Errorf("backup: recovery identity: %w", err)
	}
	start := e.Clock().UTC()
	m := &Manifest{ID: start.Format("20060102T150405Z") + "-" + kind, Kind: kind, Created: start, Firmware: e.Firmware}
	c, err := e.Connect(ctx, "postgres")
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	var dbs []string
	rows, err := c.Query(ctx, "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn AND datname <> 'postgres' ORDER BY 1")
	if err == nil {
		dbs, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	c.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup: list databases: %w", err)
	}
	if m.LSN, err = e.Position(ctx); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if kind == KindBase {
		if err := e.base(ctx, id.Recipient(), m); err != nil {
			return nil, fmt.Errorf("backup: base copy: %w", err)
		}
		for _, db := range dbs {
			m.Databases = append(m.Databases, DumpedDB{Name: db})
		}
	} else if err := e.dumps(ctx, id.Recipient(), m, dbs); err != nil {
		return nil, err
	}
	guide, err := e.putGuide(ctx, m, id.Recipient().String())
	if err != nil {
		return nil, fmt.Errorf("backup: restore guide: %w", err)
	}
	m.Objects = append(m.Objects, guide)
	if err := e.putManifest(ctx, e.Local, id, m); err != nil {
		return nil, err
	}
	e.Log.Info("backup taken", "id", m.ID, "databases", len(dbs), "bytes", m.SizeBytes(), "took", time.Since(start))
	return m, nil
}

// dumps stores the roles, the unit's settings and a dump of every database in dbs in backup m.
func (e *Engine) dumps(ctx context.Context, to age.Recipient, m *Manifest, dbs []string) error {
	obj, err := e.dumpTo(ctx, to, m.ID+"/globals.sql.zst.age", nil,
		"pg_dumpall", append([]string{"--globals-only"}, pgsql.ClientArgs(e.Socket, e.Port)...)...)
	if err != nil {
		return fmt.Errorf("backup: roles: %w", err)
	}
	m.Objects = append(m.Objects, obj)
	c, err := e.Connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("backup: roles: %w", err)
	}
	err = e.putRoles(ctx, c, to, m)
	c.Close(ctx)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if e.Store != nil {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(e.exportConfig(pw)) }()
		obj, err := seal(ctx, e.Local, m.ID+"/"+configName, pr, to)
		pr.CloseWithError(err)
		if err != nil {
			return fmt.Errorf("backup: configuration: %w", err)
		}
		m.Objects = append(m.Objects, obj)
	}
	for _, db := range dbs {
		d, obj, err := e.dumpDatabase(ctx, to, m.ID, db)
		if err != nil {
			return fmt.Errorf("backup: database %s: %w", db, err)
		}
		m.Objects = append(m.Objects, obj)
		m.Databases = append(m.Databases, d)
	}
	return nil
}

// Objects of every backup besides the databases' dumps.
const (
	configName = "config.json.zst.age" // the unit's settings and accounts
	guideName  = "RESTORE.txt"         // how to restore, in plain text: the one object not encrypted
)

// exportConfig writes the unit's settings, accounts and file shares as stored, as JSON: password and NT
// hashes and keys too, so the object is encrypted like the rest. Sessions and the event history are left
// out.
func (e *Engine) exportConfig(w io.Writer) error {
	out := map[string]map[string]json.RawMessage{}
	for _, b := range []string{state.BucketConfig, state.BucketAuth, state.BucketShares, state.BucketSecrets} {
		kv := map[string]json.RawMessage{}
		err := e.Store.ForEach(b, func(k string, v []byte) error {
			switch {
			case v == nil: // a nested bucket
			case json.Valid(v):
				kv[k] = append(json.RawMessage(nil), v...)
			default:
				q, _ := json.Marshal(map[string][]byte{"bytes": v})
				kv[k] = q
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read %s: %w", b, err)
		}
		out[b] = kv
	}
	return json.NewEncoder(w).Encode(map[string]any{"firmware": e.Firmware, "buckets": out})
}

// putGuide stores the plain-text restore guide of backup m, so whoever finds the backup without a unit,
// or years later, knows what it is and how to get the data back.
func (e *Engine) putGuide(ctx context.Context, m *Manifest, recipient string) (Object, error) {
	var dbs []string
	for _, d := range m.Databases {
		dbs = append(dbs, d.Name)
	}
	text := fmt.Sprintf(guideText, m.ID, m.Created.Format(time.RFC1123), m.Firmware, strings.Join(dbs, ", "), recipient)
	h := sha256.Sum256([]byte(text))
	o := Object{Key: m.ID + "/" + guideName, Size: int64(len(text)), SHA256: hex.EncodeToString(h[:])}
	return o, e.Local.Put(ctx, o.Key, strings.NewReader(text), o.Size)
}

const guideText = `LAWBOX BACKUP %s: HOW TO RESTORE IT

Taken %s by firmware %s. Databases: %s.
Every other file of this backup is compressed (zstd) and encrypted (age) for the recovery identity whose
public key is
    %s
The identity itself (AGE-SECRET-KEY-1...) is printed on the office's recovery sheet. It is not stored
here: without it, nobody can read this backup.

ONTO A NEW OR REPAIRED UNIT
 1. Connect the unit to the office network, open its web page and complete the first-boot setup.
 2. Backups page, "Recover from a recovery sheet": type the recovery identity.
 3. Add the storage that holds this backup as the offsite target (same bucket or directory).
 4. The list of backups shows this one: choose Restore, all databases.
 5. Point the office's application at the unit. Its database accounts and passwords come back with the
    backup.

WITHOUT A UNIT (any Linux computer with age, zstd and PostgreSQL 15; identity.txt holds the identity)
    age -d -i identity.txt globals.sql.zst.age | zstd -d > globals.sql
    psql -f globals.sql postgres
    age -d -i identity.txt NAME.dump.zst.age | zstd -d > NAME.dump
    createdb NAME && pg_restore -d NAME NAME.dump
manifest.age lists every file of the backup with its SHA-256 and the row count of every table when it
was taken; config.json.zst.age holds the unit's settings and accounts. wal/ beside the backups holds the
archived WAL, one segment a file, for restores to a moment; each starts, once decrypted, with a 45-byte
header that proves the unit wrote it (the line "lawbox wal 1" and a MAC):
    age -d -i identity.txt wal/NAME.zst.age | zstd -d | tail -c +46 > NAME
`

// dumpDatabase dumps db in an exported snapshot, with every table's row count in that same snapshot.
func (e *Engine) dumpDatabase(ctx context.Context, to age.Recipient, id, db string) (DumpedDB, Object, error) {
	d := DumpedDB{Name: db, Object: id + "/" + db + ".dump.zst.age", Rows: map[string]int64{}}
	c, err := e.Connect(ctx, db)
	if err != nil {
		return d, Object{}, err
	}
	defer c.Close(ctx)
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return d, Object{}, err
	}
	defer tx.Rollback(ctx)
	var snap string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot(), pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()").Scan(&snap, &d.Owner); err != nil {
		return d, Object{}, fmt.Errorf("export snapshot: %w", err)
	}
	// The dump runs in its own process on the exported snapshot while this transaction counts the rows in
	// the same snapshot.
	type result struct {
		obj Object
		err error
	}
	dumped := make(chan result, 1)
	go func() {
		obj, err := e.dumpTo(ctx, to, d.Object, nil, "pg_dump", append(pgsql.ClientArgs(e.Socket, e.Port),
			"--format=custom", "--compress=0", "--snapshot="+snap, "-d", db)...)
		dumped <- result{obj, err}
	}()
	cerr := tableSums(ctx, tx, &d)
	r := <-dumped
	if r.err != nil {
		return d, r.obj, r.err
	}
	return d, r.obj, cerr
}

// querier is a session or a transaction.
type querier interface {
	Begin(ctx context.Context) (pgx.Tx, error) // a transaction, or a savepoint in one
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// tableSums fills d.Rows and d.Sums with every table's row count and the sum of a 64-bit hash of each
// row, read on q (in the dump's snapshot, or from the restored copy). The sum does not depend on the rows'
// order and takes no memory per row.
func tableSums(ctx context.Context, q querier, d *DumpedDB) error {
	rs, err := q.Query(ctx, `SELECT n.nspname, c.relname, array(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2`)
	if err != nil {
		return err
	}
	type table struct {
		schema, name string
		columns      []string
	}
	tables, err := pgx.CollectRows(rs, func(r pgx.CollectableRow) (table, error) {
		var t table
		return t, r.Scan(&t.schema, &t.name, &t.columns)
	})
	if err != nil {
		return err
	}
	d.Rows, d.Sums = map[string]int64{}, map[string]string{}
	for _, t := range tables {
		// The row is named by an alias no column has: a column's name would win over the whole row.
		alias := "r"
		for slices.Contains(t.columns, alias) {
			alias += "_"
		}
		n, sum, err := sumTable(ctx, q, pgx.Identifier{t.schema, t.name}.Sanitize(), ident(alias))
		if err != nil {
			return fmt.Errorf("read %s.%s: %w", t.schema, t.name, err)
		}
		d.Rows[t.schema+"."+t.name] = n
		d.Sums[t.schema+"."+t.name] = sum
	}
	return nil
}

// rowHashes are the ways a row is hashed, cheapest first: the row itself (each column by its type's hash
// function), or, for a table with a column whose type has none (json, point, xml), the row's text (the
// session is pinned, so a value's text is the same on every server). The way is part of the sum, so the
// restored copy is summed the same way.
var rowHashes = []struct{ prefix, expr string }{
	{"r:", "pg_catalog.hash_record_extended(%s, 0)"},
	{"t:", "pg_catalog.hashtextextended(%s::pg_catalog.text, 0)"},
}

// sumTable counts a table's rows and sums their hashes, each way tried in a savepoint of its own.
func sumTable(ctx context.Context, q querier, table, alias string) (int64, string, error) {
	for _, h := range rowHashes {
		sp, err := q.Begin(ctx)
		if err != nil {
			return 0, "", err
		}
		var n int64
		var sum string
		sql := fmt.Sprintf("SELECT pg_catalog.count(*), COALESCE(pg_catalog.sum("+h.expr+"), 0)::pg_catalog.text FROM %s AS %s", alias, table, alias)
		err = sp.QueryRow(ctx, sql).Scan(&n, &sum)
		if err == nil {
			return n, h.prefix + sum, sp.Commit(ctx)
		}
		_ = sp.Rollback(ctx)
		if pe := (*pgconn.PgError)(nil); !errors.As(err, &pe) || pe.Code != "42883" { // no hash function for a column type
			return 0, "", err
		}
	}
	return 0, "", errors.New("no way to hash its rows")
}

// dumpTo runs a PostgreSQL program and stores its output, compressed and encrypted, under key; tee, when
// not nil, sees the output too.
func (e *Engine) dumpTo(ctx context.Context, to age.Recipient, key string, tee io.Writer, prog string, args ...string) (Object, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.BinDir, prog), args...)
	cmd.Env = pgsql.Env(e.BinDir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Object{}, err
	}
	if err := cmd.Start(); err != nil {
		return Object{}, fmt.Errorf("%s: %w", prog, err)
	}
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, 10) // behind the pair's heartbeats
	var src io.Reader = out
	if tee != nil {
		src = io.TeeReader(out, tee)
	}
	obj, serr := seal(ctx, e.Local, key, src, to)
	werr := cmd.Wait()
	if werr != nil {
		return obj, fmt.Errorf("%s: %w: %s", prog, werr, strings.TrimSpace(stderr.String()))
	}
	return obj, serr
}
