package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql"
)

// Verification is the outcome of restoring a backup.
type Verification = appliance.BackupVerification

// Verify downloads backup id from t, checks every object's SHA-256, decrypts it, restores it into a scratch
// PostgreSQL and compares every table's row count with the count taken in the dump's snapshot.
func (e *Engine) Verify(ctx context.Context, t target.Target, id string) (Verification, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	start := time.Now()
	v := Verification{ID: id, Target: t.Name(), Time: e.Clock()}
	err := e.verify(ctx, t, id)
	v.Seconds = time.Since(start).Seconds()
	v.OK = err == nil
	if err != nil {
		v.Detail = err.Error()
		e.Log.Error("backup verification failed", "id", id, "target", t.Name(), "err", err)
	} else {
		v.Detail = "restored; every table has the rows and values it had when dumped (count and checksum)"
		e.Log.Info("backup verified", "id", id, "target", t.Name(), "took", time.Since(start))
	}
	return v, err
}

func (e *Engine) verify(ctx context.Context, t target.Target, backupID string) error {
	id, err := e.Identity()
	if err != nil {
		return err
	}
	m, err := ReadManifest(ctx, t, backupID+"/"+ManifestName, id)
	if err != nil {
		return err
	}
	switch m.Kind {
	case KindBase:
		return e.verifyBase(ctx, t, m)
	case KindDocuments:
		return e.verifyDocuments(ctx, t, m)
	}
	objs := map[string]Object{}
	for _, o := range m.Objects {
		objs[o.Key] = o
	}
	sc, err := e.startScratch(ctx)
	if err != nil {
		return fmt.Errorf("scratch server: %w", err)
	}
	defer sc.stop()
	c, err := sc.connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if err := restoreRoles(ctx, c, t, objs, backupID, id); err != nil {
		return err
	}
	for _, d := range m.Databases {
		o, ok := objs[d.Object]
		if !ok {
			return fmt.Errorf("database %s: object %s missing from the manifest", d.Name, d.Object)
		}
		owner, err := createFor(ctx, c, d, d.Name)
		if err != nil {
			return err
		}
		if err := e.pgRestore(ctx, objectSource(ctx, t, o, id), d.Name, owner, append(pgsql.ClientArgs(sc.dir, sc.port), "-d", d.Name)...); err != nil {
			return err
		}
		dc, err := sc.connect(ctx, d.Name)
		if err != nil {
			return fmt.Errorf("restored %s: %w", d.Name, err)
		}
		err = checkRows(ctx, dc, d)
		dc.Close(ctx)
		if err != nil {
			return err
		}
	}
	return nil
}

// source opens a dump.
type source func() (io.ReadCloser, error)

// objectSource is the dump in object o on t.
func objectSource(ctx context.Context, t target.Target, o Object, id age.Identity) source {
	return func() (io.ReadCloser, error) { return Open(ctx, t, o, id) }
}

// verifyBase recovers base copy m to its end in a scratch server and reads every database in it.
func (e *Engine) verifyBase(ctx context.Context, t target.Target, m *Manifest) error {
	sc, err := e.recover(ctx, t, m, time.Time{})
	if err != nil {
		return err
	}
	defer sc.stop()
	for _, d := range m.Databases {
		c, err := sc.connect(ctx, d.Name)
		if err != nil {
			return fmt.Errorf("recovered %s: %w", d.Name, err)
		}
		var n int
		err = c.QueryRow(ctx, "SELECT count(*) FROM pg_class").Scan(&n)
		c.Close(ctx)
		if err != nil {
			return fmt.Errorf("recovered %s: %w", d.Name, err)
		}
	}
	return nil
}

// createFor creates database name, empty, for the restore of d, owned by d's owner (the roles are restored
// first), and returns that owner.
func createFor(ctx context.Context, c *pgx.Conn, d DumpedDB, name string) (string, error) {
	owner := d.Owner
	if owner == "" {
		return "", fmt.Errorf("restore %s: the backup does not name the database's owner", d.Name)
	}
	if _, err := c.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE template0 OWNER "+ident(owner)); err != nil {
		return "", fmt.Errorf("restore %s: create %s: %w", d.Name, name, err)
	}
	return owner, nil
}

// pgRestore feeds the dump of database name to pg_restore with args (where to), as role owner: the
// restore creates nothing the owner could not create, and code in the dump (an index's or a default's
// function) runs with the owner's rights, never the superuser's. Every object restored belongs to owner.
func (e *Engine) pgRestore(ctx context.Context, src source, name, owner string, args ...string) error {
	r, err := src()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(e.BinDir, "pg_restore"), append([]string{"--exit-on-error", "--role=" + owner, "--no-owner"}, args...)...)
	cmd.Env = pgsql.Env(e.BinDir)
	in := &firstErr{r: r}
	cmd.Stdin = in
	out, err := cmd.CombinedOutput()
	if cerr := r.Close(); cerr != nil && in.err == nil {
		in.err = cerr
	}
	if in.err != nil { // what went wrong reading the backup, rather than pg_restore's "input too short"
		return fmt.Errorf("restore %s: %w", name, in.err)
	}
	if err != nil {
		return fmt.Errorf("restore %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// scratch is a throwaway PostgreSQL cluster for verification and point-in-time restores: its own directory
// on the array, reachable only on its socket, no fsync.
type scratch struct {
	pgsql.Cluster
	dir  string
	port int
	pg   *pgsql.Process // nil until started
	log  *tailWriter    // the server's last words, for errors
}

// newScratch makes an empty scratch directory owned by postgres.
func (e *Engine) newScratch(prefix string) (*scratch, error) {
	cred, err := pgsql.PostgresUser()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(e.Scratch, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(e.Scratch, prefix)
	if err != nil {
		return nil, err
	}
	sc := &scratch{Cluster: pgsql.Cluster{BinDir: e.BinDir, DataDir: filepath.Join(dir, "data"), Cred: cred}, dir: dir, port: 5499, log: &tailWriter{}}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return sc, nil
}

// startScratch starts an empty cluster.
func (e *Engine) startScratch(ctx context.Context) (*scratch, error) {
	sc, err := e.newScratch("verify-")
	if err != nil {
		return nil, err
	}
	if err := sc.InitDB(ctx, "--auth=trust"); err != nil {
		os.RemoveAll(sc.dir)
		return nil, err
	}
	if err := sc.start("-c", "listen_addresses=", "-k", sc.dir, "-p", strconv.Itoa(sc.port),
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"); err != nil {
		return nil, err
	}
	return sc, sc.ready(ctx)
}

// start runs postgres on sc's data directory with args.
func (sc *scratch) start(args ...string) error {
	pg, err := sc.Start(sc.log, args...)
	if err != nil {
		os.RemoveAll(sc.dir)
		return err
	}
	sc.pg = pg
	return nil
}

// ready waits until the scratch server takes connections; it is stopped when it never does.
func (sc *scratch) ready(ctx context.Context) error {
	err := sc.pg.Ready(ctx, func(ctx context.Context) error {
		c, err := sc.connect(ctx, "postgres")
		if err == nil {
			c.Close(ctx)
		}
		return err
	}, 100*time.Millisecond, time.Minute)
	if err != nil {
		sc.stop()
		if errors.Is(err, pgsql.ErrExited) {
			return fmt.Errorf("%w: %s", err, sc.log.last())
		}
		return err
	}
	return nil
}

// tailWriter keeps the last 4 KiB written to it.
type tailWriter struct {
	mu  sync.Mutex
	buf []byte
}

func (w *tailWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	if len(w.buf) > 4096 {
		w.buf = w.buf[len(w.buf)-4096:]
	}
	return len(b), nil
}

// last returns the last line that says something went wrong, else the last line.
func (w *tailWriter) last() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(w.buf)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		// A refused connection (ours, polling) is not why the server stopped.
		refused := strings.Contains(lines[i], "the database system is") || strings.Contains(lines[i], "not yet accepting connections")
		if !refused && (strings.Contains(lines[i], "FATAL") || strings.Contains(lines[i], "PANIC")) {
			return lines[i]
		}
	}
	return lines[len(lines)-1]
}

func (sc *scratch) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	return pgsql.Local(ctx, sc.dir, sc.port, db)
}

// stop shuts the scratch server down at once (nothing in it is worth keeping) and removes it.
func (sc *scratch) stop() {
	if sc.pg != nil {
		sc.pg.Stop(syscall.SIGQUIT, 20*time.Second)
	}
	os.RemoveAll(sc.dir)
}

// checkRows compares every table's row count, and the sum of its rows' hashes where the backup has them,
// in the restored database on c with the dump's.
func checkRows(ctx context.Context, c *pgx.Conn, d DumpedDB) error {
	got := DumpedDB{Name: d.Name}
	if err := tableSums(ctx, c, &got); err != nil {
		return fmt.Errorf("restored %s: %w", d.Name, err)
	}
	for table, want := range d.Rows {
		n, ok := got.Rows[table]
		if !ok {
			return fmt.Errorf("restored %s: table %s is missing", d.Name, table)
		}
		if n != want {
			return fmt.Errorf("restored %s: table %s has %d rows, the dump had %d", d.Name, table, n, want)
		}
		if sum, ok := d.Sums[table]; ok && got.Sums[table] != sum {
			return fmt.Errorf("restored %s: table %s holds other values than the dump (checksum %s, the dump's %s)", d.Name, table, got.Sums[table], sum)
		}
	}
	return nil
}

// firstErr remembers the first read error other than EOF.
type firstErr struct {
	r   io.Reader
	err error
}

func (f *firstErr) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if err != nil && err != io.EOF && f.err == nil {
		f.err = err
	}
	return n, err
}
