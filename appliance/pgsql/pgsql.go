// Package pgsql is the unit's one way to PostgreSQL: it runs clusters (initdb, start, readiness, stop: the
// database's production or mirror, the backups' scratch servers and the tests' servers; server.go) and
// opens the unit's own sessions on them: superuser over a root-only unix socket, with a pinned session.
//
// A superuser session in a database that the office owns must not run the owner's code. The owner can set
// search_path for the database (ALTER DATABASE ... SET search_path = public, pg_catalog) and put a function
// named like a catalog one (public.pg_export_snapshot) in front of it; an unqualified call would then run
// it as superuser, and COPY ... TO PROGRAM gives a shell. Settings sent at connection start take precedence
// over the database's and the role's, so every session here starts with search_path = pg_catalog, pg_temp
// (functions and operators resolve in the catalog only; pg_temp last, so a temporary table cannot mask a
// catalog one) and the output settings that make a row's text the same on every server.
package pgsql

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pinned is the session every connection of the unit starts with.
var pinned = map[string]string{
	"search_path":                 "pg_catalog, pg_temp",
	"TimeZone":                    "UTC",
	"DateStyle":                   "ISO, MDY",
	"IntervalStyle":               "postgres",
	"extra_float_digits":          "3",
	"bytea_output":                "hex",
	"standard_conforming_strings": "on",
}

// Pin sets the pinned session on cfg (a pgx.ConnConfig's Config too), over whatever the database or the
// role would set.
func Pin(cfg *pgconn.Config) {
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	for k, v := range pinned {
		cfg.RuntimeParams[k] = v
	}
}

// Local opens a pinned superuser session on database db of the server listening on the unix socket in
// directory socket, port port.
func Local(ctx context.Context, socket string, port int, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable connect_timeout=5", connValue(socket), port, connValue(db)))
	if err != nil {
		return nil, err
	}
	Pin(&cfg.Config)
	return pgx.ConnectConfig(ctx, cfg)
}

// ClientArgs are the options of PostgreSQL's client programs (pg_dump, pg_restore, pg_basebackup) for the
// superuser session Local opens: the unix socket in directory socket, port port. Those programs pin their
// own search_path.
func ClientArgs(socket string, port int) []string {
	return []string{"-h", socket, "-p", strconv.Itoa(port), "-U", "postgres"}
}

// connValue quotes s as a value of a libpq connection string.
func connValue(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// SQLLiteral quotes s as an SQL string literal for a session with standard_conforming_strings on (every
// pinned session). It is for the statements that take no parameters (CREATE ROLE ... PASSWORD).
func SQLLiteral(s string) (string, error) {
	if strings.ContainsRune(s, 0) {
		return "", fmt.Errorf("a literal holds a NUL byte")
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'", nil
}
