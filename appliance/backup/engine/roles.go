package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql"
)

// rolesName is the object of a backup that lists its roles (Role, JSON). globals.sql beside it is
// pg_dumpall's script, for a restore by hand only: the unit never runs a script from a backup.
const rolesName = "roles.json.zst.age"

// Role is a role of the office's databases as a backup keeps it: what the unit grants (LOGIN and a
// password) and the roles it is a member of. Superuser, CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS and
// a role's settings are not kept: the unit never grants them, so a restore never brings them back.
type Role struct {
	Name     string   `json:"name"`
	Login    bool     `json:"login"`
	Password string   `json:"password,omitempty"` // the server's verifier (SCRAM), never a clear password
	MemberOf []string `json:"member_of,omitempty"`
}

// readRoles lists the roles on c that a restore may have to bring back: every one but the superusers, the
// replication roles and PostgreSQL's own (pg_*). Memberships are kept among those roles only.
func readRoles(ctx context.Context, c *pgx.Conn) ([]Role, error) {
	rows, err := c.Query(ctx, `SELECT r.rolname, r.rolcanlogin, coalesce(r.rolpassword, ''),
		array(SELECT g.rolname FROM pg_auth_members m JOIN pg_authid g ON g.oid = m.roleid
			WHERE m.member = r.oid AND NOT g.rolsuper AND NOT g.rolreplication AND g.rolname !~ '^pg_' ORDER BY 1)
		FROM pg_authid r WHERE NOT r.rolsuper AND NOT r.rolreplication AND r.rolname !~ '^pg_' ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("read roles: %w", err)
	}
	rs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Role, error) {
		var x Role
		return x, r.Scan(&x.Name, &x.Login, &x.Password, &x.MemberOf)
	})
	if err != nil {
		return nil, fmt.Errorf("read roles: %w", err)
	}
	return rs, nil
}

// putRoles stores the roles of the server on c in backup m.
func (e *Engine) putRoles(ctx context.Context, c *pgx.Conn, to age.Recipient, m *Manifest) error {
	rs, err := readRoles(ctx, c)
	if err != nil {
		return err
	}
	b, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	obj, err := seal(ctx, e.Local, m.ID+"/"+rolesName, bytes.NewReader(b), to)
	if err != nil {
		return fmt.Errorf("roles: %w", err)
	}
	m.Objects = append(m.Objects, obj)
	return nil
}

// restoreRoles brings the roles of backup backupID (its objects objs on t) onto c.
func restoreRoles(ctx context.Context, c *pgx.Conn, t target.Target, objs map[string]Object, backupID string, id age.Identity) error {
	o, ok := objs[backupID+"/"+rolesName]
	if !ok {
		return fmt.Errorf("backup %s has no list of roles (an older firmware took it): create its roles by hand from globals.sql (RESTORE.txt)", backupID)
	}
	r, err := Open(ctx, t, o, id)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("read the roles of backup %s: %w", backupID, err)
	}
	var rs []Role
	if err := json.Unmarshal(b, &rs); err != nil {
		return fmt.Errorf("read the roles of backup %s: %w", backupID, err)
	}
	return applyRoles(ctx, c, rs)
}

// applyRoles creates the roles of rs that c lacks, with LOGIN and their password only, then makes them
// members of the roles they were members of. Roles that exist on c are left as they are (their password
// and attributes too). Every name and value is quoted: nothing in rs becomes a statement of its own.
func applyRoles(ctx context.Context, c *pgx.Conn, rs []Role) error {
	rows, err := c.Query(ctx, "SELECT rolname FROM pg_roles")
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	existing := map[string]bool{}
	for _, n := range names {
		existing[n] = true
	}
	var created []Role
	for _, r := range rs {
		if existing[r.Name] {
			continue
		}
		q := "CREATE ROLE " + ident(r.Name) + " NOLOGIN"
		if r.Login {
			q = "CREATE ROLE " + ident(r.Name) + " LOGIN"
		}
		if r.Password != "" {
			pw, err := pgsql.SQLLiteral(r.Password)
			if err != nil {
				return fmt.Errorf("restore role %s: %w", r.Name, err)
			}
			q += " PASSWORD " + pw
		}
		if _, err := c.Exec(ctx, q); err != nil && !duplicate(err) {
			return fmt.Errorf("restore role %s: %w", r.Name, err)
		}
		existing[r.Name] = true
		created = append(created, r)
	}
	for _, r := range created {
		for _, g := range r.MemberOf {
			if !existing[g] {
				continue
			}
			if _, err := c.Exec(ctx, "GRANT "+ident(g)+" TO "+ident(r.Name)); err != nil {
				return fmt.Errorf("restore role %s: member of %s: %w", r.Name, g, err)
			}
		}
	}
	return nil
}

func duplicate(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42710"
}
