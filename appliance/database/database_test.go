package database

import (
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"practice", "billing_2026", "_x"} {
		if err := checkName("database", ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Practice", "x; DROP TABLE y", "postgres", "template1", "pg_catalog", "9lives", "a-b", strings.Repeat("a", 64)} {
		if err := checkName("database", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Captured from pg_controldata (PostgreSQL 15) of a copied cluster.
const controlData = `pg_control version number:            1300
wal_level setting:                    replica
max_connections setting:              200
max_worker_processes setting:         8
max_wal_senders setting:              10
max_prepared_xacts setting:           0
max_locks_per_xact setting:           64
track_commit_timestamp setting:       off
`

func TestReplicationConfTakesUpstreamLimits(t *testing.T) {
	conf := replicationConf(&upstream{Host: "192.0.2.10", Port: 5432, User: "repl", Password: "pw", Slot: "lawbox_a"}, controlLimits(controlData))
	for _, want := range []string{"host=192.0.2.10 port=5432 user=repl", "password=pw", "primary_slot_name = 'lawbox_a'",
		"max_connections = 200", "max_wal_senders = 10", "max_prepared_transactions = 0", "max_locks_per_transaction = 64"} {
		if !strings.Contains(conf, want) {
			t.Errorf("replication.conf lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "wal_level") {
		t.Error("a non-limit setting was copied")
	}
}
