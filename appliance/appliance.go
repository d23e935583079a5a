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
	// Login checks a user's password and opens a session. remote identifies the client for rate limiting.
	Login(user, password, remote string) (Session, error)
	// Authenticate returns the session a token belongs to, or ErrUnauthenticated.
	Authenticate(token string) (Session, error)
	// Logout ends the session a token belongs to.
	Logout(token string) error
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
