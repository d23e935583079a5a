package pgsql

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestPinOverridesEverySessionSetting(t *testing.T) {
	cfg, err := pgx.ParseConfig("host=/run/x user=postgres dbname=d search_path=public,pg_catalog")
	if err != nil {
		t.Fatal(err)
	}
	Pin(&cfg.Config)
	if got, want := cfg.RuntimeParams["search_path"], "pg_catalog, pg_temp"; got != want {
		t.Errorf("Pin: search_path = %q, want %q", got, want)
	}
}

func TestQuoting(t *testing.T) {
	for _, c := range []struct{ in, conn, sql string }{
		{"plain", `'plain'`, `'plain'`},
		{`o'neil\x`, `'o\'neil\\x'`, `'o''neil\x'`},
		{"a\nALTER USER me SUPERUSER;", "'a\nALTER USER me SUPERUSER;'", "'a\nALTER USER me SUPERUSER;'"},
	} {
		if got := connValue(c.in); got != c.conn {
			t.Errorf("connValue(%q) = %s, want %s", c.in, got, c.conn)
		}
		if got, err := SQLLiteral(c.in); err != nil || got != c.sql {
			t.Errorf("SQLLiteral(%q) = %s, %v, want %s", c.in, got, err, c.sql)
		}
	}
	if _, err := SQLLiteral("a\x00b"); err == nil {
		t.Error("SQLLiteral with a NUL byte: no error")
	}
}
