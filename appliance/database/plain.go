package database

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lawbox/appliance/appliance"
)

// plainSchema keeps the databases an admin opened to connections without TLS. It lives in the cluster,
// so the mirror has it by replication and applies it once promoted.
const plainSchema = `CREATE SCHEMA IF NOT EXISTS lawbox;
CREATE TABLE IF NOT EXISTS lawbox.plain (datname text PRIMARY KEY)`

// readPlain lists the databases open without TLS (none when the table was never made).
func readPlain(ctx context.Context, c *pgx.Conn) ([]string, error) {
	var dbs []string
	err := c.QueryRow(ctx, "SELECT coalesce(array_agg(datname ORDER BY datname), '{}') FROM lawbox.plain").Scan(&dbs)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") { // no table, no schema
		return []string{}, nil
	}
	return dbs, err
}

// applyPlain writes pg_hba.conf again and reloads it when the databases open without TLS changed since
// it was written last (production, every second).
func (m *Manager) applyPlain(ctx context.Context, c *pgx.Conn) error {
	dbs, err := readPlain(ctx, c)
	if err != nil {
		return fmt.Errorf("databases open without TLS: %w", err)
	}
	m.mu.Lock()
	same := m.plain != nil && slices.Equal(m.plain, dbs)
	m.mu.Unlock()
	if same {
		return nil
	}
	if err := writeAtomic(filepath.Join(m.DataDir, "pg_hba.conf"), []byte(managedHBA(dbs)), m.cred); err != nil {
		return err
	}
	if _, err := c.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return err
	}
	m.mu.Lock()
	m.plain = dbs
	m.mu.Unlock()
	if len(dbs) > 0 {
		m.Log.Warn("databases open to connections without TLS", "databases", dbs)
	}
	return nil
}

// SetPlain opens database db to connections without TLS (allow), or closes it again. Production only; the
// change is in pg_hba.conf within a second.
func (m *Manager) SetPlain(ctx context.Context, db string, allow bool) error {
	if err := checkName("database", db); err != nil {
		return fmt.Errorf("%w: %w", err, appliance.ErrBadInput)
	}
	if err := m.running(); err != nil {
		return err
	}
	if m.current().Kind != production {
		return fmt.Errorf("this unit is a read-only mirror; change it on the production unit: %w", appliance.ErrConflict)
	}
	c, err := m.connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("open %s without TLS: %w", db, err)
	}
	defer c.Close(ctx)
	if ok, err := exists(ctx, c, db); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("no database %q: %w", db, appliance.ErrNotFound)
		}
		return err
	}
	if _, err := c.Exec(ctx, plainSchema); err != nil {
		return fmt.Errorf("open %s without TLS: %w", db, err)
	}
	q := "DELETE FROM lawbox.plain WHERE datname = $1"
	if allow {
		q = "INSERT INTO lawbox.plain VALUES ($1) ON CONFLICT DO NOTHING"
	}
	if _, err := c.Exec(ctx, q, db); err != nil {
		return fmt.Errorf("open %s without TLS: %w", db, err)
	}
	m.Log.Warn("connections without TLS", "database", db, "allowed", allow)
	return m.applyPlain(ctx, c)
}

func exists(ctx context.Context, c *pgx.Conn, db string) (bool, error) {
	var ok bool
	err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&ok)
	return ok, err
}
