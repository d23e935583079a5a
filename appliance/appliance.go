// Package appliance defines what the rest of the firmware may ask of the appliance: the types and
// interfaces the web UI is written against, and the errors it maps to HTTP answers. Implementations live in
// its subpackages (auth, state, ...); this package holds no state and talks to no hardware.
package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/lawbox/appliance/appliance/supervise"
	"github.com/lawbox/appliance/hw/disk"
	"github.com/lawbox/appliance/hw/smart"
)

// Errors the web UI turns into answers. Implementations wrap them; callers match with errors.Is.
var (
	ErrAlreadySetUp    = errors.New("the appliance is already set up")
	ErrBadSetupCode    = errors.New("wrong setup code")
	ErrWeakPassword    = errors.New("password too weak")
	ErrBadCredentials  = errors.New("wrong user name or password")
	ErrRateLimited     = errors.New("too many attempts")
	ErrUnauthenticated = errors.New("not logged in or session expired")
	ErrForbidden       = errors.New("not allowed for this user")
	ErrUnavailable     = errors.New("temporarily unavailable")
)

// RateLimitError says how long a client must wait before trying again. It matches ErrRateLimited.
type RateLimitError struct{ RetryAfter time.Duration }

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%v: try again in %d s", ErrRateLimited, int(e.RetryAfter.Seconds()+0.999))
}

// Is makes errors.Is(err, ErrRateLimited) hold.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// Roles a user can have.
const (
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// Session is a logged-in user.
type Session struct {
	Token   string    // the bearer token; only set when the session is created
	User    string    // user name
	Role    string    // RoleAdmin or RoleViewer
	Expires time.Time // absolute expiry
}

// Auth is the first-boot setup and the login and session logic.
type Auth interface {
	// NeedsSetup reports whether no admin password has been set yet.
	NeedsSetup() bool
	// Setup sets the admin password, given the one-time code printed on the console.
	Setup(code, password string) error
	// Login checks a user's password (and second-factor code, for a user who has one) and opens a
	// session. remote identifies the client for rate limiting.
	Login(user, password, code, remote string) (Session, error)
	// Check checks a password (accounts without a second factor) without opening a session: for
	// monitoring systems that log in on every request. Rate-limited like Login.
	Check(user, password, remote string) (Session, error)
	// Reauthenticate checks a logged-in user's password again before they change it (a session left open
	// must not be enough to take the account). A wrong password is ErrBadInput; rate-limited like Login.
	Reauthenticate(user, password, remote string) error
	// Authenticate returns the session a token belongs to, or ErrUnauthenticated.
	Authenticate(token string) (Session, error)
	// Logout ends the session a token belongs to.
	Logout(token string) error

	// Users lists the accounts.
	Users() ([]User, error)
	// AddUser creates an account with a role (RoleAdmin or RoleViewer) and a password.
	AddUser(name, password, role string) error
	// DeleteUser removes an account and ends its sessions. The last admin cannot be removed.
	DeleteUser(name string) error
	// SetPassword replaces an account's password and ends its sessions but the one of keep (a token, or "").
	SetPassword(name, password, keep string) error
	// EndSessions ends every session of an account but the one of keep ("log out everywhere else").
	EndSessions(name, keep string) (int, error)
	// BeginTOTP makes a new second-factor secret for an account, to be confirmed with a code from the
	// authenticator app; it returns the secret (base32) and its otpauth:// URI.
	BeginTOTP(name string) (secret, uri string, err error)
	// ConfirmTOTP turns the second factor on once a code of the new secret is right.
	ConfirmTOTP(name, code string) error
	// DisableTOTP turns an account's second factor off.
	DisableTOTP(name string) error

	// Record adds an entry to the audit log.
	Record(e AuditEntry) error
	// Audit returns the last n entries of the audit log, newest first.
	Audit(n int) ([]AuditEntry, error)
}

// User is an account of the web UI.
type User struct {
	Name string `json:"name"`
	Role string `json:"role"`
	TOTP bool   `json:"totp"` // a second factor is required at login
}

// AuditEntry is one action taken through the web UI or the API: who, what, when, from where, and the answer.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	User   string    `json:"user"` // the session's user; for a login, the name tried
	Remote string    `json:"remote"`
	Action string    `json:"action"` // the route, e.g. "POST /api/v1/database/promote"
	Path   string    `json:"path"`
	Status int       `json:"status"` // the HTTP answer
}

// Disk is a block disk the unit sees.
type Disk = disk.Disk

// Service is the state of one supervised program.
type Service = supervise.Status

// Status is the unit at a glance.
type Status struct {
	Version  string    `json:"version"`
	Hostname string    `json:"hostname"`
	UptimeS  int64     `json:"uptime_s"`
	Disks    []Disk    `json:"disks"`
	Services []Service `json:"services,omitempty"`
}

// System reports on the unit and powers it off or reboots it.
type System interface {
	Status(ctx context.Context) (Status, error)
	// Shutdown asks PID 1 to stop every service and power off (reboot false) or reboot.
	Shutdown(ctx context.Context, reboot bool) error
}

// Array states, member states and disk roles the storage reports.
const (
	ArrayClean      = "clean"
	ArrayDegraded   = "degraded"
	ArrayRebuilding = "rebuilding"
	ArrayResyncing  = "resyncing"
	ArrayChecking   = "checking"
	ArrayFailed     = "failed"

	MemberInSync     = "in_sync"
	MemberFaulty     = "faulty"
	MemberRebuilding = "rebuilding"
	MemberSpare      = "spare"
	MemberRemoved    = "removed"
)

// ErrNotFound means the thing named in a request (a disk, an array) does not exist.
var ErrNotFound = errors.New("not found")

// ErrBadInput means a request names something in a way that cannot work (an unknown self-test kind, ...).
var ErrBadInput = errors.New("bad request")

// ErrConflict means the request does not fit the current state (e.g. a scrub while rebuilding).
var ErrConflict = errors.New("not possible now")

// StorageStatus is the disks and arrays (GET /api/v1/storage).
type StorageStatus struct {
	Arrays []Array       `json:"arrays"`
	Disks  []StorageDisk `json:"disks"`
	StoragePolicy
	Persisted bool      `json:"persistent"` // settings live on the system array, not in RAM
	LastScrub time.Time `json:"last_scrub,omitzero"`
	NextScrub time.Time `json:"next_scrub,omitzero"`
	Alerts    []Alert   `json:"alerts"`
}

// StoragePolicy is what an admin decides about new and failing disks.
type StoragePolicy struct {
	AutoAdd          bool `json:"auto_add"`          // a new blank disk is used without asking
	ProactiveReplace bool `json:"proactive_replace"` // a disk SMART says to replace is copied onto a spare first
}

// StoragePolicyChange sets the fields that are not nil.
type StoragePolicyChange struct {
	AutoAdd          *bool `json:"auto_add"`
	ProactiveReplace *bool `json:"proactive_replace"`
}

// Array is one md array.
type Array struct {
	Name            string   `json:"name"`  // "system" or "data"
	Level           string   `json:"level"` // "raid1", "raid5"
	State           string   `json:"state"` // ArrayClean, ...
	SizeBytes       int64    `json:"size_bytes"`
	RebuildProgress *float64 `json:"rebuild_progress"` // 0..1 while rebuilding, resyncing or checking
	ETASeconds      *int64   `json:"eta_s,omitempty"`
	MismatchSectors int64    `json:"mismatch_sectors"` // found by the last scrub
	Members         []Member `json:"members"`
}

// Member is a disk's place in an array.
type Member struct {
	Serial string `json:"serial"`
	Device string `json:"device,omitempty"`
	State  string `json:"state"` // MemberInSync, ...
}

// StorageDisk is a disk as the storage sees it.
type StorageDisk struct {
	Serial    string `json:"serial"`
	Model     string `json:"model"`
	SizeBytes int64  `json:"size_bytes"`
	Slot      string `json:"slot"`   // hardware path
	Device    string `json:"device"` // kernel name
	Role      string `json:"role"`   // "member", "spare", "unused"
	State     string `json:"state"`  // "ok", "faulty", "rebuilding", "blank", "needs_adopt", "refused"
	Reason    string `json:"reason,omitempty"`
}

// Alert is something an admin should look at.
type Alert struct {
	Level   string `json:"level"` // "warning" or "critical"
	Message string `json:"message"`
	// Key names the alert across rounds (its numbers left out: "61 s behind" and "75 s behind" are one
	// alert); acknowledgements refer to it.
	Key          string    `json:"key"`
	Acknowledged *AlertAck `json:"acknowledged,omitempty"`
	// Text is Message's English pattern with each value as %s, and Args those values, for the pages to
	// translate (empty: Message is shown as it is).
	Text string   `json:"text,omitempty"`
	Args []string `json:"args,omitempty"`
}

var verb = regexp.MustCompile(`%[-+# 0]*[0-9]*(\.[0-9]+)?[a-zA-Z]`)

// NewAlert makes an alert from a format and its values; the values are kept apart (formatted as the format
// asks) so that the pages can state the alert in another language.
func NewAlert(level, format string, args ...any) Alert {
	a := Alert{Level: level, Message: fmt.Sprintf(format, args...), Text: format}
	if len(args) > 0 {
		i := 0
		a.Text = verb.ReplaceAllStringFunc(format, func(v string) string {
			if i < len(args) {
				a.Args = append(a.Args, fmt.Sprintf(v, args[i]))
			}
			i++
			return "%s"
		})
	}
	a.Key = alertKey(a)
	return a
}

var alertNumbers = regexp.MustCompile(`[0-9]+(\.[0-9]+)?`)

// alertKey is a's identity across rounds.
func alertKey(a Alert) string { return a.Level + " " + alertNumbers.ReplaceAllString(a.Message, "#") }

// AlertAck is an admin's "seen, being handled": an acknowledged alert is not notified again and an
// acknowledged warning no longer colours the dashboard (a critical one still does: data is at risk until
// it is fixed). It lasts until the alert clears, or until Until when the admin muted it for a while.
type AlertAck struct {
	By    string     `json:"by"`
	At    time.Time  `json:"at"`
	Until *time.Time `json:"until,omitempty"`
}

// Active says whether the acknowledgement still holds at now.
func (a AlertAck) Active(now time.Time) bool { return a.Until == nil || now.Before(*a.Until) }

// MaxMute is the longest an alert can be muted: a forgotten mute must not hide a problem for good.
const MaxMute = 30 * 24 * time.Hour

// MarkAlerts returns alerts with their acknowledgements still in force at now (a copy; alerts is not changed).
func MarkAlerts(alerts []Alert, acks map[string]AlertAck, now time.Time) []Alert {
	out := make([]Alert, len(alerts))
	for i, a := range alerts {
		a.Acknowledged = nil
		if ack, ok := acks[a.Key]; ok && ack.Active(now) {
			a.Acknowledged = &ack
		}
		out[i] = a
	}
	return out
}

// Storage is the RAID storage.
type Storage interface {
	Storage(ctx context.Context) (StorageStatus, error)
	// Scrub starts a check of every array now.
	Scrub(ctx context.Context) error
	// Adopt confirms that a disk holding data may be erased and used.
	Adopt(ctx context.Context, serial string) error
	// SetPolicy changes the fields of p that are set.
	SetPolicy(ctx context.Context, p StoragePolicyChange) error
}

// Finding is one thing SMART says about a disk. Key is stable across polls; Value is what it was judged on,
// so an acknowledgement holds until the value changes.
type Finding struct {
	Key          string `json:"key"`
	Level        string `json:"level"` // "watch", "replace", "failed", or "cable" (the link, not the disk)
	Message      string `json:"message"`
	Value        uint64 `json:"value"`
	Acknowledged bool   `json:"acknowledged"`
}

// SMARTStatus is a disk's health as last polled.
type SMARTStatus struct {
	Supported    bool                 `json:"supported"`
	Reason       string               `json:"reason,omitempty"` // why it is unsupported, or the last poll's error
	Health       string               `json:"health"`           // "ok", "watch", "replace", "failed"; "" if unsupported
	TemperatureC int                  `json:"temperature_c"`
	PowerOnHours uint64               `json:"power_on_hours"`
	Attributes   []smart.Attribute    `json:"attributes"`
	NVMe         *smart.NVMeHealth    `json:"nvme,omitempty"`
	Findings     []Finding            `json:"findings"`
	LastPoll     time.Time            `json:"last_poll,omitzero"`
	PollMS       float64              `json:"poll_ms"`     // wall time of the last poll
	PollCPUMS    float64              `json:"poll_cpu_ms"` // CPU time of the daemon during it
	SelfTest     smart.SelfTestResult `json:"self_test"`
}

// DiskHealth is a disk and its SMART status (GET /api/v1/disks).
type DiskHealth struct {
	Serial    string      `json:"serial"`
	Model     string      `json:"model"`
	SizeBytes int64       `json:"size_bytes"`
	Device    string      `json:"device"`
	SMART     SMARTStatus `json:"smart"`
}

// HistoryPoint is one sample of a disk's history.
type HistoryPoint struct {
	Time         time.Time         `json:"t"`
	TemperatureC int               `json:"temp_c"`
	Counters     map[string]uint64 `json:"counters,omitempty"` // "ata-5", "nvme-media", ...
}

// Health is SMART monitoring.
type Health interface {
	Disks(ctx context.Context) ([]DiskHealth, error)
	Refresh(ctx context.Context, serial string) error
	SelfTest(ctx context.Context, serial, kind string) error
	Acknowledge(ctx context.Context, serial, key string) error
	History(ctx context.Context, serial string) ([]HistoryPoint, error)
	// SetPollMinutes sets how often disks are polled (1..1440).
	SetPollMinutes(ctx context.Context, minutes int) error
}

// DatabaseStatus is the PostgreSQL server (GET /api/v1/database).
type DatabaseStatus struct {
	Role     string `json:"role"`  // "production", "mirror" or "none"
	State    string `json:"state"` // "waiting for storage", "initialising", "starting", "running", ...
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
	LagHistory  []LagPoint     `json:"lag_history"`
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
}

// NewDatabase is a created database; Password is shown this once.
type NewDatabase struct {
	Name     string `json:"name"`
	Owner    string `json:"owner"`
	Password string `json:"password"`
	URL      string `json:"url"`
}

// Database is the office's PostgreSQL.
type Database interface {
	Database(ctx context.Context) (DatabaseStatus, error)
	CreateDatabase(ctx context.Context, name, owner string) (NewDatabase, error)
	Mirroring
}

// Upstream is the PostgreSQL server a mirror follows (PUT /api/v1/database/upstream).
type Upstream struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	User     string `json:"user"`     // a role with REPLICATION
	Password string `json:"password"` // kept in the state store; never shown again
	Confirm  string `json:"confirm"`  // "erase" when the unit holds databases: they are moved aside
}

// Promotion is a finished promotion of the mirror.
type Promotion struct {
	Seconds float64 `json:"seconds"`
}

// DatabasePolicy is how commits wait for the mirror (PUT /api/v1/database/policy, production only).
type DatabasePolicy struct {
	Sync bool `json:"sync"` // a commit returns once the mirror has applied it (remote_apply)
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

// PairSettings are chosen on the unit that issues the pairing code and carried to the one that joins.
type PairSettings struct {
	VIP         string `json:"vip"`               // the service address with its prefix length, "192.0.2.100/24"
	Witness     string `json:"witness,omitempty"` // "host:port" of cmd/witness; required in automatic mode
	Mode        string `json:"mode"`              // "auto" or "manual"
	HeartbeatMS int    `json:"heartbeat_ms,omitempty"`
	TimeoutMS   int    `json:"timeout_ms,omitempty"`
}

// PairPath is one way the units reach each other (LAN, direct cable).
type PairPath struct {
	Address   string    `json:"address"`
	Reachable bool      `json:"reachable"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
}

// PairPeer is the other unit as this one sees it.
type PairPeer struct {
	Name      string     `json:"name"`
	Address   string     `json:"address"`
	Reachable bool       `json:"reachable"`
	LastSeen  time.Time  `json:"last_seen,omitzero"`
	Role      string     `json:"role"`
	Paths     []PairPath `json:"paths"`
}

// PairWitness is the third vote.
type PairWitness struct {
	Address    string    `json:"address"`
	Reachable  bool      `json:"reachable"`
	LastSeen   time.Time `json:"last_seen,omitzero"`
	Holder     string    `json:"holder"` // who holds the lease, as the witness last said
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	// Stale: the witness refuses this unit the lease because the other unit was active after this unit's
	// data (an admin may force it).
	Stale bool `json:"stale,omitempty"`
}

// PairStatus is GET /api/v1/pair.
type PairStatus struct {
	Paired      bool           `json:"paired"`
	Name        string         `json:"name"`
	Role        string         `json:"role"` // single | active | standby | fenced
	Mode        string         `json:"mode,omitempty"`
	Peer        *PairPeer      `json:"peer,omitempty"`
	VIP         string         `json:"vip,omitempty"`
	VIPHeld     bool           `json:"vip_held"`
	Maintenance bool           `json:"maintenance"` // a standby serving read-only on the service address
	Witness     *PairWitness   `json:"witness,omitempty"`
	HeartbeatMS int            `json:"heartbeat_ms,omitempty"`
	TimeoutMS   int            `json:"timeout_ms,omitempty"`
	Rejected    map[string]int `json:"rejected"` // messages dropped: bad_tag, replay, unknown_sender, join
	Events      []Event        `json:"events"`   // switchovers and pairing, newest last
}

// Event is one line of a part's history.
type Event struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
}

// Pair is the two-unit failover.
type Pair interface {
	Pair() PairStatus
	// Invite issues a one-time pairing code (valid 15 minutes) for the unit that will join.
	Invite(ctx context.Context, s PairSettings) (code string, err error)
	// Join pairs with the unit at peer (its LAN address) that issued code.
	Join(ctx context.Context, peer, code string) error
	// Unpair forgets the peer; this unit becomes single and drops the service address.
	Unpair(ctx context.Context) error
	// SetRole is the admin's switchover: "active" (force: the peer cannot be reached and may still serve)
	// or "standby".
	SetRole(ctx context.Context, role string, force bool) error
	// SetMaintenance makes a standby whose peer is unreachable answer on the service address with its
	// read-only mirror (maintenance mode), or ends it.
	SetMaintenance(ctx context.Context, on bool) error
	// WitnessKey is the key the witness program needs (hex), derived from the pair key.
	WitnessKey() (string, error)
}

// NetworkPort is a statically configured port.
type NetworkPort struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses"` // "192.0.2.11/24"
	Gateway   string   `json:"gateway,omitempty"`
	DNS       []string `json:"dns,omitempty"`     // name servers for the unit
	Members   []string `json:"members,omitempty"` // an active-backup bond of these ports (Name is the bond's)
}

// Network is the unit's port configuration (ports not listed use DHCP).
type Network interface {
	Ports() []NetworkPort
	SetPorts(ctx context.Context, ports []NetworkPort) error
	// Nameservers are the name servers in effect (the static ones, or the last DHCP lease's).
	Nameservers() []string
	// Links are the ports' link states.
	Links() []NetworkLink
}

// NetworkLink is a port's link: carrier means a cable to a live switch port.
type NetworkLink struct {
	Name    string    `json:"name"`
	MAC     string    `json:"mac"`
	Carrier bool      `json:"carrier"`
	Seen    bool      `json:"seen"`  // had a link since the unit started
	Since   time.Time `json:"since"` // of the current state
}

// NetworkAlerts: a port that had its link and lost it (a port never plugged in is not a problem).
func NetworkAlerts(links []NetworkLink) []Alert {
	var out []Alert
	for _, l := range links {
		if l.Seen && !l.Carrier {
			out = append(out, NewAlert("warning", "network port %s (%s) lost its link: check its cable and the switch port", l.Name, l.MAC))
		}
	}
	return out
}

// BackupVerification is the outcome of restoring a backup into a scratch server.
type BackupVerification struct {
	ID      string    `json:"id"`
	Target  string    `json:"target"`
	Time    time.Time `json:"time"`
	OK      bool      `json:"ok"`
	Detail  string    `json:"detail"`
	Seconds float64   `json:"seconds"`
}

// Backup is one backup (GET /api/v1/backups).
type Backup struct {
	ID        string              `json:"id"`
	Kind      string              `json:"kind"` // dump | increment | base
	Created   time.Time           `json:"created"`
	SizeBytes int64               `json:"size_bytes"`
	Targets   []string            `json:"targets"` // where it is: "this unit", "s3://..."
	Verified  *BackupVerification `json:"verified"`
	Databases []string            `json:"databases"`
	Files     int                 `json:"files,omitempty"` // a documents backup: how many documents
}

// DocumentFile is one document in a documents backup (GET /api/v1/backups/{id}/documents).
type DocumentFile struct {
	Path     string    `json:"path"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
}

// DocumentsRestored is what a documents restore wrote.
type DocumentsRestored struct {
	Restored  int      `json:"restored"`
	Unchanged int      `json:"unchanged"` // there already, with the same content
	Beside    []string `json:"beside"`    // written beside a current file that differs (NAME.restored-DATE)
}

// BackupRestore asks for databases back from a backup (POST /api/v1/backups/{id}/restore).
type BackupRestore struct {
	Databases []string `json:"databases"` // none: every database in the backup, each under its own name
	Paths     []string `json:"paths"`     // a documents backup: the documents; none: every one
	Into      string   `json:"into"`      // one database only: restore it under this new name
	// Replace lets a restore take the name of a database that exists; that one is renamed and kept.
	Replace bool `json:"replace"`
}

// RestoredDatabase is one database brought back.
type RestoredDatabase struct {
	Database string `json:"database"`          // its name in the backup
	Into     string `json:"into"`              // its name now
	KeptAs   string `json:"kept_as,omitempty"` // the database it replaced, renamed and kept
	Tables   int    `json:"tables"`
	Rows     int64  `json:"rows"`
}

// BackupRestoreResult is the answer to a restore.
type BackupRestoreResult struct {
	ID        string             `json:"id"`
	Target    string             `json:"target"` // where it was read from
	Databases []RestoredDatabase `json:"databases"`
	Documents *DocumentsRestored `json:"documents,omitempty"`
	Seconds   float64            `json:"seconds"`
}

// BackupTarget is an offsite store (PUT /api/v1/backups/targets). Secrets are never shown again.
type BackupTarget struct {
	Kind     string `json:"kind"`     // "s3" or "sftp"
	Endpoint string `json:"endpoint"` // "host:port"
	// sftp: the account, its password or private key (OpenSSH PEM), the server's pinned host key
	// ("SHA256:...") and the directory.
	User       string `json:"user,omitempty"`
	Password   string `json:"password,omitempty"`
	PrivateKey string `json:"private_key,omitempty"`
	HostKey    string `json:"host_key,omitempty"`
	Path       string `json:"path,omitempty"`
	// s3
	Bucket    string `json:"bucket,omitempty"`
	Prefix    string `json:"prefix,omitempty"`
	Region    string `json:"region,omitempty"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
	Insecure  bool   `json:"insecure,omitempty"` // plain HTTP: only for a store on the office LAN
	// LimitKBps caps the upload rate to the target (KB/s), so backups leave room on the office's line; 0:
	// no limit.
	LimitKBps int `json:"limit_kbps,omitempty"`
}

// BackupRetention says which nightly dumps are kept, everywhere (PUT /api/v1/backups/retention): the last
// Daily, plus the newest of each of the last Weekly weeks and Monthly months.
type BackupRetention struct {
	Daily   int `json:"daily"`   // 1-365; 30 by default
	Weekly  int `json:"weekly"`  // 0-104
	Monthly int `json:"monthly"` // 0-120
}

// BackupTargetStatus is how the last copy to a target went.
type BackupTargetStatus struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// BackupStatus is GET /api/v1/backups.
type BackupStatus struct {
	SetUp     bool   `json:"set_up"`    // a recovery identity exists
	Recipient string `json:"recipient"` // its public half
	Running   string `json:"running,omitempty"`
	// ProgressDone of ProgressTotal stored bytes of the running copy or restore (0 of 0: not measured).
	ProgressDone  int64               `json:"progress_done,omitempty"`
	ProgressTotal int64               `json:"progress_total,omitempty"`
	LastError     string              `json:"last_error,omitempty"`
	LastVerified  *BackupVerification `json:"last_verified"`
	// PointInTimeSince is the oldest base copy: a restore to any moment since is possible.
	PointInTimeSince *time.Time           `json:"point_in_time_since,omitempty"`
	Retention        BackupRetention      `json:"retention"`
	DocumentFolders  []string             `json:"document_folders"`
	Targets          []BackupTargetStatus `json:"targets"`
	Backups          []Backup             `json:"backups"`
}

// Backups are the database backups, taken on the mirror.
type Backups interface {
	Backups(ctx context.Context) (BackupStatus, error)
	// CreateIdentity makes the recovery identity and returns it, the only time it is shown.
	CreateIdentity(ctx context.Context) (string, error)
	// ImportIdentity sets the recovery identity of a recovery sheet, on a unit that has none (disaster
	// recovery onto a new unit).
	ImportIdentity(ctx context.Context, identity string) error
	SetTargets(ctx context.Context, ts []BackupTarget) error
	SetRetention(ctx context.Context, r BackupRetention) error
	// SetDocumentFolders sets the folders on the data array whose documents are backed up.
	SetDocumentFolders(ctx context.Context, folders []string) error
	DocumentFiles(ctx context.Context, id string) ([]DocumentFile, error)
	OpenDocument(ctx context.Context, id, path string) (io.ReadCloser, DocumentFile, error)
	RunBackup(ctx context.Context, kind string) (Backup, error)
	VerifyBackup(ctx context.Context, id string) (BackupVerification, error)
	// RestoreBackup brings databases back from backup id into the production database; the replaced
	// ones are kept under another name.
	RestoreBackup(ctx context.Context, id string, req BackupRestore) (BackupRestoreResult, error)
	// RestorePointInTime brings databases back as they were at a moment (a base copy and the archived WAL
	// after it), like RestoreBackup.
	RestorePointInTime(ctx context.Context, at time.Time, req BackupRestore) (BackupRestoreResult, error)
	// Export writes a current dump (pg_dump custom format, not encrypted: it goes to the admin) of one
	// database to w.
	Export(ctx context.Context, database string, w io.Writer) error
}

// NotifySettings say where alerts are sent (PUT /api/v1/notifications). The SMTP password is never shown again.
type NotifySettings struct {
	SMTP      string   `json:"smtp"` // "mail.example.com:587"; "" for no email
	From      string   `json:"from"`
	To        []string `json:"to"`
	User      string   `json:"user,omitempty"`
	Password  string   `json:"password,omitempty"` // "" keeps the one stored
	PlainSMTP bool     `json:"plain_smtp"`         // allow a server without STARTTLS (office network only; never with a password)
	Syslog    string   `json:"syslog"`             // "192.0.2.5:514" (UDP); "" for none
}

// NotifyStatus is the notification settings (password left out) and how sending went.
type NotifyStatus struct {
	Settings    NotifySettings `json:"settings"`
	PasswordSet bool           `json:"password_set"`
	LastSent    *time.Time     `json:"last_sent,omitempty"`
	LastError   string         `json:"last_error,omitempty"`
}

// Notifications send the alerts by email and to a syslog server.
type Notifications interface {
	Notifications(ctx context.Context) (NotifyStatus, error)
	SetNotifications(ctx context.Context, s NotifySettings) error
	// TestNotification sends a test message everywhere configured and says what failed.
	TestNotification(ctx context.Context) error
	// AcknowledgeAlert records user's acknowledgement of the current alert key, for mute (0: until the
	// alert clears; at most MaxMute). An alert that is not there now is ErrNotFound.
	AcknowledgeAlert(ctx context.Context, key, user string, mute time.Duration) error
	// UnacknowledgeAlert withdraws it; the alert is notified again at the next round.
	UnacknowledgeAlert(ctx context.Context, key string) error
	// AlertAcks returns the acknowledgements by alert key.
	AlertAcks(ctx context.Context) (map[string]AlertAck, error)
}

// CertInfo describes the HTTPS certificate the unit presents.
type CertInfo struct {
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	Names       []string  `json:"names"` // DNS names and IP addresses it is valid for
	NotAfter    time.Time `json:"not_after"`
	Fingerprint string    `json:"fingerprint"` // SHA-256, AB:CD:...
	SelfSigned  bool      `json:"self_signed"`
}

// Certificates is the unit's HTTPS certificate: shown, replaced by the office's own, or made anew.
type Certificates interface {
	Certificate(ctx context.Context) (CertInfo, error)
	// SetCertificate installs a PEM certificate (leaf first, then intermediates) and its PEM private key.
	SetCertificate(ctx context.Context, certPEM, keyPEM string) error
	// ResetCertificate goes back to a new self-signed certificate.
	ResetCertificate(ctx context.Context) error
}
