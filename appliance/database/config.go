// Package database runs the office's PostgreSQL 15 on the data array: it initialises the cluster, owns its
// configuration (conf.d and pg_hba.conf are written by the appliance, never hand-edited), supervises the
// server as the unprivileged postgres user, and creates databases with their owners.
package database

import (
	"fmt"
	"regexp"
	"strings"
)

// managedConf is conf.d/appliance.conf. scram-sha-256 only; TLS on with the unit's certificate; checksums
// are set at initdb. fsync and full_page_writes stay on: a committed transaction must survive a power cut.
// archiveDir, when set, receives every finished WAL segment (basic_archive: no shell command), on the mirror
// too (archive_mode = always), for the backups' point-in-time restores; production ends a segment at least
// every 5 minutes, so the archive is never more than minutes behind.
func managedConf(port int, socket string, slotKeepMB int64, archiveDir string) string {
	archive := []string{"archive_mode = off"}
	if archiveDir != "" {
		archive = []string{"archive_mode = always", "archive_library = 'basic_archive'",
			fmt.Sprintf("basic_archive.archive_directory = '%s'", archiveDir), "archive_timeout = '5min'"}
	}
	return strings.Join(append(archive, []string{
		"# Written by the appliance at every start; changes here are overwritten.",
		"listen_addresses = '*'",
		fmt.Sprintf("port = %d", port),
		fmt.Sprintf("unix_socket_directories = '%s'", socket),
		"password_encryption = 'scram-sha-256'",
		"ssl = on",
		"ssl_cert_file = 'server.crt'",
		"ssl_key_file = 'server.key'",
		"ssl_min_protocol_version = 'TLSv1.2'",
		"fsync = on",
		"synchronous_commit = on",
		"full_page_writes = on",
		"wal_level = replica",
		"max_wal_senders = 5",
		"max_replication_slots = 5",
		fmt.Sprintf("max_slot_wal_keep_size = '%dMB'", slotKeepMB),
		"wal_keep_size = '64MB'",
		// A mirror reports every second; a sender whose mirror went silent (powered off, cable pulled: no
		// TCP reset) ends after 10 s, and so does a mirror's receiver whose upstream went silent.
		"wal_receiver_status_interval = '1s'",
		"wal_sender_timeout = '10s'",
		"wal_receiver_timeout = '10s'",
		"shared_buffers = '64MB'",
		"max_connections = 50",
		"logging_collector = off",
		"log_destination = 'stderr'",
		"log_connections = on",
		"",
	}...), "\n")
}

// managedHBA is pg_hba.conf: the local superuser only through the root-only socket directory, everyone else
// over the network with scram-sha-256 (TLS available and preferred by clients that ask for it). Streaming
// replication only for the partner unit's role, only over TLS.
const managedHBA = `# Written by the appliance at every start; changes here are overwritten.
local   all   postgres                 peer map=appliance
local   replication postgres           peer map=appliance
hostssl replication lawbox_replica 0.0.0.0/0 scram-sha-256
hostssl replication lawbox_replica ::/0      scram-sha-256
hostssl all   all        0.0.0.0/0     scram-sha-256
hostssl all   all        ::/0          scram-sha-256
host    all   all        0.0.0.0/0     scram-sha-256
host    all   all        ::/0          scram-sha-256
`

// managedIdent maps the appliance (root) and postgres OS users onto the postgres database user.
const managedIdent = `# Written by the appliance.
appliance  root      postgres
appliance  postgres  postgres
`

var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// reserved names an office database or owner may not take.
var reserved = map[string]bool{"postgres": true, "template0": true, "template1": true, "root": true}

// checkName validates a database or role name: lower-case letters, digits and _, so it never needs quoting.
func checkName(kind, n string) error {
	if !nameRE.MatchString(n) || reserved[n] || strings.HasPrefix(n, "pg_") {
		return fmt.Errorf("%s name %q: use 1-63 lower-case letters, digits and _, starting with a letter (not postgres, template*, pg_*)", kind, n)
	}
	return nil
}
