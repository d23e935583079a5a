package database

import (
	"fmt"
	"regexp"
	"strings"
)

// replicationConf is conf.d/replication.conf for a mirror. A hot standby must allow at least as many
// connections, workers, senders, prepared transactions and locks as its upstream (recorded in the copied
// pg_control); limits are the upstream's.
func replicationConf(u *upstream, limits map[string]string) string {
	var b strings.Builder
	// wal_retrieve_retry_interval: how soon a mirror retries its upstream, and notices a promotion request
	// while it waits for WAL.
	// The backups are dumped on the mirror, and a long dump must not be cancelled by what production does
	// meanwhile: hot_standby_feedback keeps production from vacuuming away rows the dump still reads, and
	// the max_standby delays at -1 make the replay wait for the dump rather than cancel it when production
	// takes a lock the dump conflicts with (a vacuum truncating a table's empty end takes one; with the
	// default 30 s the dump was cancelled, "User was holding a relation lock for too long"). The commits
	// wait only for the mirror's disk, never for its replay (writeSyncConf), and a promotion ends the
	// mirror's queries first (promote).
	b.WriteString("# Written by the appliance.\nhot_standby = on\nhot_standby_feedback = on\nmax_standby_streaming_delay = -1\nmax_standby_archive_delay = -1\n" +
		"recovery_target_timeline = 'latest'\nwal_retrieve_retry_interval = '250ms'\n")
	if u != nil {
		fmt.Fprintf(&b, "primary_conninfo = '%s password=%s'\nprimary_slot_name = '%s'\n", u.conninfo("postgres"), u.Password, u.Slot)
	}
	for _, k := range []string{"max_connections", "max_worker_processes", "max_wal_senders", "max_prepared_transactions", "max_locks_per_transaction"} {
		if v, ok := limits[k]; ok {
			fmt.Fprintf(&b, "%s = %s\n", k, v)
		}
	}
	return b.String()
}

// controlLimits reads the upstream's limits from pg_controldata's output ("max_connections setting: 100").
func controlLimits(out string) map[string]string {
	names := map[string]string{"max_connections": "max_connections", "max_worker_processes": "max_worker_processes",
		"max_wal_senders": "max_wal_senders", "max_prepared_xacts": "max_prepared_transactions", "max_locks_per_xact": "max_locks_per_transaction"}
	limits := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, " setting:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if n, ok := names[strings.TrimSpace(k)]; ok && regexp.MustCompile(`^[0-9]+$`).MatchString(v) {
			limits[n] = v
		}
	}
	return limits
}
