package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql"
)

// databaseName is what a restored database may be called: the names the appliance creates, but for the
// server's own databases and the restore's temporary names.
var databaseName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func reservedName(name string) bool {
	return name == "postgres" || name == "template0" || name == "template1" || strings.HasPrefix(name, "lawbox_")
}

// Restore brings the databases dbs (every one when empty) of backup backupID on t back into the local
// server, which must be the production one. With into, the one database is restored under that name.
// Each is restored under a temporary name and checked against the dump's row counts before it takes its
// name, so a failed restore leaves the server as it was. A database that exists is replaced only with
// replace, and then renamed and kept, never dropped. Roles missing on the server are created from the
// backup; existing ones are left as they are.
func (e *Engine) Restore(ctx context.Context, t target.Target, backupID string, dbs []string, into string, replace bool) ([]appliance.RestoredDatabase, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m, id, err := e.manifest(ctx, t, backupID)
	if err != nil {
		return nil, err
	}
	if m.Kind == KindBase {
		return nil, fmt.Errorf("backup %s is a base copy: restore it to a point in time: %w", backupID, appliance.ErrBadInput)
	}
	objs := map[string]Object{}
	for _, o := range m.Objects {
		objs[o.Key] = o
	}
	chosen := m.Databases
	if len(dbs) > 0 {
		chosen = nil
		for _, name := range dbs {
			i := indexDB(m.Databases, name)
			if i < 0 {
				return nil, fmt.Errorf("backup %s holds no database %q: %w", backupID, name, appliance.ErrNotFound)
			}
			chosen = append(chosen, m.Databases[i])
		}
	}
	if len(chosen) == 0 {
		return nil, fmt.Errorf("backup %s holds no database: %w", backupID, appliance.ErrBadInput)
	}
	c, err := e.production(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	dbs = dbs[:0:0]
	for _, d := range chosen {
		dbs = append(dbs, d.Name)
	}
	names, err := e.checkNames(ctx, c, dbs, into, replace)
	if err != nil {
		return nil, err
	}
	if err := restoreRoles(ctx, c, t, objs, backupID, id); err != nil {
		return nil, err
	}
	var out []appliance.RestoredDatabase
	for i, d := range chosen {
		o, ok := objs[d.Object]
		if !ok {
			return out, fmt.Errorf("database %s: object %s missing from the manifest", d.Name, d.Object)
		}
		e.Progress.Start(o.Size)
		r, err := e.restoreOne(ctx, c, d, names[i], objectSource(ctx, target.Counted{Target: t, Progress: e.Progress}, o, id))
		if err != nil {
			return out, err
		}
		out = append(out, r)
		e.Log.Warn("database restored", "backup", backupID, "database", d.Name, "into", r.Into, "kept_as", r.KeptAs, "rows", r.Rows)
	}
	return out, nil
}

// production connects to the local server, which must be the production one.
func (e *Engine) production(ctx context.Context) (*pgx.Conn, error) {
	c, err := e.Connect(ctx, "postgres")
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	var mirror bool
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&mirror); err != nil {
		c.Close(ctx)
		return nil, fmt.Errorf("restore: %w", err)
	}
	if mirror {
		c.Close(ctx)
		return nil, fmt.Errorf("this unit's database is the read-only mirror: restore on the production unit: %w", appliance.ErrConflict)
	}
	return c, nil
}

// checkNames returns the names the databases dbs get (into for the one database), refusing bad names and
// names taken, unless replace.
func (e *Engine) checkNames(ctx context.Context, c *pgx.Conn, dbs []string, into string, replace bool) ([]string, error) {
	if into != "" && len(dbs) != 1 {
		return nil, fmt.Errorf("a new name is for one database at a time: %w", appliance.ErrBadInput)
	}
	names := make([]string, len(dbs))
	for i, db := range dbs {
		names[i] = db
		if into != "" {
			names[i] = into
		}
		if !databaseName.MatchString(names[i]) || reservedName(names[i]) {
			return nil, fmt.Errorf("database name %q: lower-case letters, digits and _, at most 63, not the server's own: %w", names[i], appliance.ErrBadInput)
		}
		if exists, err := databaseExists(ctx, c, names[i]); err != nil {
			return nil, err
		} else if exists && !replace {
			return nil, fmt.Errorf("database %s exists: restore under another name, or confirm replacing it (it is kept under another name): %w", names[i], appliance.ErrConflict)
		}
	}
	return names, nil
}

func indexDB(ds []DumpedDB, name string) int {
	for i, d := range ds {
		if d.Name == name {
			return i
		}
	}
	return -1
}

func databaseExists(ctx context.Context, c *pgx.Conn, name string) (bool, error) {
	var n int
	err := c.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n)
	return n > 0, err
}

// restoreOne restores d (the dump src opens) under a temporary name, checks it, then gives it the name name, renaming a
// database of that name aside first.
func (e *Engine) restoreOne(ctx context.Context, c *pgx.Conn, d DumpedDB, name string, src source) (appliance.RestoredDatabase, error) {
	r := appliance.RestoredDatabase{Database: d.Name, Into: name, Tables: len(d.Rows)}
	stamp := e.Clock().UTC().Format("20060102_150405")
	tmp := "lawbox_restore_" + stamp
	owner, err := createFor(ctx, c, d, tmp)
	if err != nil {
		return r, err
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.Exec(dctx, "DROP DATABASE IF EXISTS "+ident(tmp)+" WITH (FORCE)"); err != nil {
			e.Log.Error("restore: the unfinished copy could not be removed", "database", tmp, "err", err)
		}
	}
	if err := e.pgRestore(ctx, src, d.Name, owner, append(pgsql.ClientArgs(e.Socket, e.Port), "-d", tmp)...); err != nil {
		drop()
		return r, err
	}
	tc, err := e.Connect(ctx, tmp)
	if err == nil {
		err = checkRows(ctx, tc, d)
		tc.Close(ctx)
	}
	if err != nil {
		drop()
		return r, err
	}
	for _, n := range d.Rows {
		r.Rows += n
	}
	exists, err := databaseExists(ctx, c, name)
	if err != nil {
		drop()
		return r, err
	}
	if exists {
		r.KeptAs = name[:min(len(name), 63-len("_before_"+stamp))] + "_before_" + stamp
		if err := e.renameAside(ctx, c, name, r.KeptAs); err != nil {
			drop()
			return r, fmt.Errorf("restore %s: set the current %s aside: %w", d.Name, name, err)
		}
	}
	if _, err := c.Exec(ctx, "ALTER DATABASE "+ident(tmp)+" RENAME TO "+ident(name)); err != nil {
		return r, fmt.Errorf("restore %s: the restored copy is complete as %s but could not be renamed %s: %w", d.Name, tmp, name, err)
	}
	return r, nil
}

// renameAside renames the database name to kept: new connections are refused and the open ones ended
// first (the office's application reconnects to the restored database).
func (e *Engine) renameAside(ctx context.Context, c *pgx.Conn, name, kept string) error {
	if _, err := c.Exec(ctx, "ALTER DATABASE "+ident(name)+" ALLOW_CONNECTIONS false"); err != nil {
		return err
	}
	var err error
	for range 50 {
		if _, err = c.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name); err != nil {
			break
		}
		if _, err = c.Exec(ctx, "ALTER DATABASE "+ident(name)+" RENAME TO "+ident(kept)); !inUse(err) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	back := kept
	if err != nil {
		back = name
	}
	if _, aerr := c.Exec(ctx, "ALTER DATABASE "+ident(back)+" ALLOW_CONNECTIONS true"); err == nil {
		err = aerr
	}
	return err
}

// Export writes a current dump of database db (pg_dump custom format) to w. Nothing is written when db is
// not there.
func (e *Engine) Export(ctx context.Context, db string, w io.Writer) error {
	c, err := e.Connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("export %s: %w", db, err)
	}
	var n int
	err = c.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1 AND datallowconn AND NOT datistemplate", db).Scan(&n)
	c.Close(ctx)
	if err != nil {
		return fmt.Errorf("export %s: %w", db, err)
	}
	if n == 0 || db == "postgres" {
		return fmt.Errorf("database %q: %w", db, appliance.ErrNotFound)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(e.BinDir, "pg_dump"), append(pgsql.ClientArgs(e.Socket, e.Port), "--format=custom", "-d", db)...)
	cmd.Env = pgsql.Env(e.BinDir)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("export %s: pg_dump: %w: %s", db, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// inUse is PostgreSQL's "database is being accessed by other users".
func inUse(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55006"
}
