package appliance

import (
	"context"
	"time"
)

// DatabaseStatus is the PostgreSQL server (GET /api/v1/database).
type DatabaseStatus struct {
	Role  string `json:"role"`  // "production", "mirror" or "none"
	State string `json:"state"` // "waiting for storage", "initialising", "starting", "running", ...
	// Detail is what PostgreSQL or its tools said when the server last failed (for the admin; the page
	// shows State, a sentence).
	Detail   string `json:"detail,omitempty"`
	Version  string `json:"version,omitempty"`
	Upstream string `json:"upstream,omitempty"`
	// Sync: "sync", "async", "degraded" (sync chosen, mirror missing: commits do not wait) or "catching up"
	// (sync back on; commits acknowledged while degraded are not all on the mirror yet).
	Sync   string         `json:"sync,omitempty"`
	Policy DatabasePolicy `json:"policy"`
	Mirror string         `json:"mirror,omitempty"` // production: its mirror's connection, "streaming from 192.0.2.12"
	// LastPromotionS is how long this unit's last promotion took, 0 when it never was promoted since boot.
	LastPromotionS float64  `json:"last_promotion_s,omitempty"`
	LagBytes       *int64   `json:"lag_bytes"`
	LagSeconds     *float64 `json:"lag_seconds"`
	// LagHistory is the mirror's lag every 10 s for the last hour (since the unit started), oldest first.
	LagHistory []LagPoint `json:"lag_history"`
	// LagDay is the highest lag of every 5 minutes of the last day, oldest first, each stamped with the
	// start of its 5 minutes.
	LagDay      []LagPoint     `json:"lag_day"`
	Connections int            `json:"connections"`
	Databases   []DatabaseInfo `json:"databases"`
	// Slots are production's replication slots: the WAL each keeps on this unit for its mirror.
	Slots []ReplicationSlot `json:"slots,omitempty"`
	// SetAside are earlier clusters the unit moved aside rather than delete (its own databases before it
	// mirrored an external server; a copy that could not rejoin and was copied again): kept until an admin
	// deletes them, since they may hold the only copy of something.
	SetAside []SetAside `json:"set_aside"`
	// Stranded: this unit is not paired and its cluster is an interrupted copy of a former partner's, which
	// can never serve; StartAfresh sets it aside for an empty database (to be filled from a backup).
	Stranded bool `json:"stranded,omitempty"`
}

// SetAside is one cluster moved aside.
type SetAside struct {
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	SizeBytes int64     `json:"size_bytes"`
}

// ReplicationSlot is WAL kept for a mirror. WALStatus is PostgreSQL's: "reserved", "extended" (within
// limits), "unreserved" (about to be dropped) or "lost" (the mirror must copy the database again).
type ReplicationSlot struct {
	Name          string `json:"name"`
	Active        bool   `json:"active"`
	RetainedBytes int64  `json:"retained_bytes"`
	WALStatus     string `json:"wal_status"`
	// SafeBytes is how much more WAL may be written before the slot is lost (nil: no limit).
	SafeBytes *int64 `json:"safe_bytes"`
}

// LagPoint is one sample of the mirror's lag.
type LagPoint struct {
	Time    time.Time `json:"time"`
	Seconds float64   `json:"seconds"`
	Bytes   int64     `json:"bytes"`
}

// DatabaseInfo is one of the office's databases.
type DatabaseInfo struct {
	Name      string `json:"name"`
	Owner     string `json:"owner"`
	SizeBytes int64  `json:"size_bytes"`
	Plain     bool   `json:"plain"` // an admin opened it to connections without TLS
}

// NewDatabase is a created database; Password is shown this once.
type NewDatabase struct {
	Name     string `json:"name"`
	Owner    string `json:"owner"`
	Password string `json:"password"`
	// URL connects over TLS with SCRAM channel binding: the server proves it knows the password's
	// verifier over that very TLS session, so an impostor on the LAN cannot complete the login.
	URL string `json:"url"`
	// VerifyURL also checks the server's certificate: save CA as the file sslrootcert names. verify-full
	// when the certificate names the address (the office's own certificate), else verify-ca (the unit's
	// self-signed certificate, which is its own authority).
	VerifyURL string `json:"verify_url"`
	CA        string `json:"ca"` // PEM: the certificate to trust
}

// Database is the office's PostgreSQL.
type Database interface {
	Database(ctx context.Context) (DatabaseStatus, error)
	CreateDatabase(ctx context.Context, name, owner string) (NewDatabase, error)
	// SetPlain opens a database to connections without TLS (allow) or closes it again: every database
	// takes TLS connections only unless an admin opens it.
	SetPlain(ctx context.Context, name string, allow bool) error
	Mirroring
}

// Upstream is the PostgreSQL server a mirror follows (PUT /api/v1/database/upstream).
type Upstream struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	User     string `json:"user"`     // a role with REPLICATION
	Password string `json:"password"` // kept in the state store; never shown again
	Confirm  string `json:"confirm"`  // "erase" when the unit holds databases: they are moved aside
	// Fingerprint is the SHA-256 of the server's TLS certificate (AB:CD:...) as the admin read it on the
	// server: the unit mirrors over TLS only, and only the certificate confirmed.
	Fingerprint string `json:"fingerprint"`
}

// Promotion is a finished promotion of the mirror.
type Promotion struct {
	Seconds float64 `json:"seconds"`
}

// DatabasePolicy is how commits wait for the mirror (PUT /api/v1/database/policy, production only).
type DatabasePolicy struct {
	Sync bool `json:"sync"` // a commit returns once the mirror has it on its disk (synchronous_commit = on)
	// With Sync, how long commits wait for a missing mirror before production carries on alone (an alert
	// says so); 0: they wait however long it takes.
	DegradeAfterS int `json:"degrade_after_s"`
}

// Mirroring turns the unit into a mirror of an upstream server and promotes it.
type Mirroring interface {
	SetUpstream(ctx context.Context, u Upstream) error
	Promote(ctx context.Context) (Promotion, error)
	SetPolicy(ctx context.Context, p DatabasePolicy) error
	// DeleteSetAside deletes a cluster moved aside, by the name the status lists.
	DeleteSetAside(ctx context.Context, name string) error
	// StartAfresh sets a stranded cluster aside and starts an empty production database.
	StartAfresh(ctx context.Context) error
}
