// Package appliance defines what the rest of the firmware may ask of the appliance: the types and
// interfaces the web UI is written against, and the errors it maps to HTTP answers. Implementations live in
// its subpackages (auth, state, ...); this package holds no state and talks to no hardware.
package appliance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lawbox/appliance/appliance/supervise"
	"github.com/lawbox/appliance/hw/disk"
)

// Errors the web UI turns into answers. Implementations wrap them; callers match with errors.Is.
var (
	ErrAlreadySetUp    = errors.New("the appliance is already set up")
	ErrBadSetupCode    = errors.New("wrong setup code")
	ErrWeakPassword    = errors.New("password too weak")
	ErrBadCredentials  = errors.New("wrong user name, password or code")
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
	// Authenticate returns the session a token belongs to, or ErrUnauthenticated, and counts as the
	// user's activity (the session's idle timeout starts again).
	Authenticate(token string) (Session, error)
	// Current is Authenticate without counting as activity: for what a page does by itself (the live
	// dashboard), which must not keep a session alive past its idle timeout.
	Current(token string) (Session, error)
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
	// Audit returns the last n entries of an audit log, newest first: AuditLog (what users did), AuditNoise
	// (requests that did not authenticate) or AuditPartner (the copy of the partner unit's audit log).
	Audit(n int, log string) ([]AuditEntry, error)
	// VerifyAudit checks the audit log's hash chain.
	VerifyAudit() (AuditCheck, error)
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
	// Noise is a request that did not authenticate (a wrong login, a probe, a page without a session): it
	// goes to a log of its own, so a flood of them never pushes what users did out of the audit log.
	Noise bool `json:"noise,omitempty"`
}

// The audit logs.
const (
	AuditLog     = ""
	AuditNoise   = "noise"
	AuditPartner = "partner"
)

// AuditCheck is the verification of the audit log's hash chain.
type AuditCheck struct {
	Entries int    `json:"entries"`
	Head    string `json:"head"` // the newest entry's hash (also sent to syslog with every entry)
	OK      bool   `json:"ok"`
	Problem string `json:"problem,omitempty"` // where the chain breaks
	// Partner is the check of the copy of the partner unit's log kept here (nil: none kept).
	Partner *AuditCheck `json:"partner,omitempty"`
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
	Parts    []Service `json:"parts,omitempty"` // the daemon's parts (storage, database, pair, ...): running, or failed and restarting
	TimeZone string    `json:"time_zone"`       // the office's, in which pages show times ("Europe/Paris"); the API's are UTC
}

// System reports on the unit and powers it off or reboots it.
type System interface {
	Status(ctx context.Context) (Status, error)
	// Shutdown asks PID 1 to stop every service and power off (reboot false) or reboot.
	Shutdown(ctx context.Context, reboot bool) error
	// TimeZone is the office's time zone, in which pages show times (UTC until one is set).
	TimeZone() *time.Location
	// SetTimeZone sets it by its IANA name ("Europe/Paris"); an unknown name is ErrBadInput.
	SetTimeZone(name string) error
}

// ErrNotFound means the thing named in a request (a disk, an array) does not exist.
var ErrNotFound = errors.New("not found")

// ErrBadInput means a request names something in a way that cannot work (an unknown self-test kind, ...).
var ErrBadInput = errors.New("bad request")

// ErrConflict means the request does not fit the current state (e.g. a scrub while rebuilding).
var ErrConflict = errors.New("not possible now")

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
	LastError   string         `json:"last_error,omitempty"`   // the mail server's or the network's words
	LastProblem string         `json:"last_problem,omitempty"` // the same in a sentence: what to do
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
