// Package auth implements appliance.Auth: the first-boot setup code, argon2id password hashes, sessions kept
// in the state store, and login rate limiting. It does not speak HTTP; webui does.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

// MinPasswordLen is the shortest password accepted.
const MinPasswordLen = 12

// Argon2id parameters (RFC 9106's second recommendation, scaled to a small appliance): 19 MiB, 2 passes.
const (
	argonTime    = 2
	argonMemKiB  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// Limits for sessions and login attempts.
const (
	SessionTTL  = 8 * time.Hour    // absolute lifetime of a session
	SessionIdle = 30 * time.Minute // a session unused this long ends
	maxFailures = 5                // failed logins per client within failWindow before 429
	failWindow  = time.Minute
	// An account takes maxAccountFailures failed logins (password or code) within accountWindow from all
	// clients together: a second factor's million codes cannot be tried once the password is known.
	maxAccountFailures = 10
	accountWindow      = 15 * time.Minute
	// maxHashing password checks run at once (argon2id takes 19 MiB each); a check waits at most
	// hashWait for its turn, then the client is told to come back.
	maxHashing     = 2
	hashWait       = 5 * time.Second
	maxSetupTries  = 10              // wrong setup codes per boot before the code is replaced
	adminName      = "admin"         // the account the first-boot setup creates
	bucketAudit    = "audit-chain"   // what users did: hash-chained
	bucketNoise    = "audit-noise"   // requests that did not authenticate
	bucketPartner  = "audit-partner" // the copy of the partner unit's audit log
	keepAudit      = 100000          // audit entries kept
	keepNoise      = 20000
	setupCodeBytes = 10 // 80 bits, printed as 16 base32 characters
)

type user struct {
	Name        string `json:"name"`
	Role        string `json:"role"`
	Hash        string `json:"hash"`                   // PHC string: $argon2id$v=19$m=..,t=..,p=..$salt$hash
	TOTP        string `json:"totp,omitempty"`         // base32 secret of the second factor, once confirmed
	TOTPPending string `json:"totp_pending,omitempty"` // a new secret waiting for its first code
}

type session struct {
	User     string    `json:"user"`
	Role     string    `json:"role"`
	Expires  time.Time `json:"expires"`
	LastSeen time.Time `json:"last_seen"`
}

// Auth is the appliance's authentication. It is safe for concurrent use.
type Auth struct {
	store *state.Store
	log   *slog.Logger
	now   func() time.Time

	// Announce, if set, is called with every new setup code (the daemon prints it on the console).
	Announce func(code string)
	// Ship, if set, sends every audit entry and its chain hash away as it is recorded (syslog): a log
	// rewritten on the unit no longer matches what was shipped. It must not block.
	Ship func(e appliance.AuditEntry, hash string)

	mu         sync.Mutex // guards the fields below
	setupCode  string
	setupTries int
	failures   map[string][]time.Time // "remote "+address, "user "+name -> times of recent failed logins
	usedStep   map[string]int64       // user -> the last TOTP time step accepted (a code works once)

	hashing  chan struct{} // a slot per password check running
	hashWait time.Duration // how long a check waits for a slot
}

var _ appliance.Auth = (*Auth)(nil)

// New returns the Auth backed by store. now is the clock (time.Now outside tests).
func New(store *state.Store, log *slog.Logger, now func() time.Time) *Auth {
	return &Auth{store: store, log: log, now: now, failures: map[string][]time.Time{}, usedStep: map[string]int64{},
		hashing: make(chan struct{}, maxHashing), hashWait: hashWait}
}

// SetupCode returns the one-time code that Setup wants, making one if needed, or "" once set up.
// The caller prints it on the console, which only someone with the box in hand can read.
func (a *Auth) SetupCode() string {
	if !a.NeedsSetup() {
		return ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.setupCode == "" {
		a.setupCode = newSetupCode()
		if a.Announce != nil {
			a.Announce(a.setupCode)
		}
	}
	return a.setupCode
}

func newSetupCode() string {
	b := make([]byte, setupCodeBytes)
	rand.Read(b)
	s := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
}

// NeedsSetup reports whether no admin account exists.
func (a *Auth) NeedsSetup() bool {
	users, err := a.Users()
	return err == nil && !slices.ContainsFunc(users, func(u appliance.User) bool { return u.Role == appliance.RoleAdmin })
}

// Setup sets the admin password if code matches the console's setup code.
func (a *Auth) Setup(code, password string) error {
	if !a.NeedsSetup() {
		return appliance.ErrAlreadySetUp
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	want := normalizeCode(a.setupCode)
	if want == "" || subtle.ConstantTimeCompare([]byte(normalizeCode(code)), []byte(want)) != 1 {
		a.setupTries++
		if a.setupTries >= maxSetupTries {
			a.setupCode = newSetupCode()
			a.setupTries = 0
			a.log.Warn("too many wrong setup codes; new code issued")
			if a.Announce != nil {
				a.Announce(a.setupCode)
			}
		}
		return appliance.ErrBadSetupCode
	}
	if err := CheckPassword(password); err != nil {
		return err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	if err := a.store.PutJSON(state.BucketAuth, adminName, user{Name: adminName, Role: appliance.RoleAdmin, Hash: hash}); err != nil {
		return fmt.Errorf("save admin password: %w", err)
	}
	a.setupCode = ""
	a.log.Info("first-boot setup done: admin password set")
	return nil
}

func normalizeCode(c string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(c))
}

// CheckPassword says why a password is refused, or nil.
func CheckPassword(pw string) error {
	if n := utf8.RuneCountInString(pw); n < MinPasswordLen {
		return fmt.Errorf("%w: it has %d characters, at least %d are needed", appliance.ErrWeakPassword, n, MinPasswordLen)
	}
	if len(pw) > 1024 {
		return fmt.Errorf("%w: longer than 1024 bytes", appliance.ErrWeakPassword)
	}
	return nil
}

func hashPassword(pw string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemKiB, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemKiB, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// verifyPassword checks pw against a PHC argon2id string, using the parameters stored in it.
func verifyPassword(phc, pw string) (bool, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("not an argon2id hash")
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, fmt.Errorf("argon2id parameters: %w", err)
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err := errors.Join(err1, err2); err != nil {
		return false, fmt.Errorf("argon2id encoding: %w", err)
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// Login checks the password (and the second factor's code) and opens a session. Every attempt counts as
// a failure against its client and its account until it succeeded, so parallel attempts cannot pass the
// limits (maxFailures a minute a client, maxAccountFailures a quarter of an hour an account): past them
// it answers a *appliance.RateLimitError without checking. A wrong password and a wrong code give the same
// answer. A session is opened only if the account still has the password that was checked (a login in
// flight while the account is deleted or its password changed opens none).
func (a *Auth) Login(name, password, code, remote string) (appliance.Session, error) {
	u, err := a.verify(name, password, remote)
	if err != nil {
		return appliance.Session{}, err
	}
	return a.open(u, code, remote)
}

// open checks the second factor of u, whose password verify checked, and opens its session if the
// account is still as it was checked.
func (a *Auth) open(u user, code, remote string) (appliance.Session, error) {
	tok := make([]byte, 32)
	rand.Read(tok)
	token := base64.RawURLEncoding.EncodeToString(tok)

	a.mu.Lock()
	defer a.mu.Unlock()
	if u.TOTP != "" {
		step, good := totpCheck(u.TOTP, code, a.now())
		if !good || step <= a.usedStep[u.Name] {
			a.log.Warn("failed login", "remote", remote)
			return appliance.Session{}, appliance.ErrBadCredentials
		}
		a.usedStep[u.Name] = step
	}
	var now user
	if err := a.store.GetJSON(state.BucketAuth, u.Name, &now); err != nil || now.Hash != u.Hash || now.Role != u.Role {
		a.log.Warn("login refused: the account changed while its password was checked", "user", u.Name, "remote", remote)
		return appliance.Session{}, appliance.ErrBadCredentials
	}
	a.succeeded(u.Name, remote)
	t := a.now()
	s := session{User: u.Name, Role: u.Role, Expires: t.Add(SessionTTL), LastSeen: t}
	if err := a.store.PutJSON(state.BucketSessions, tokenKey(token), s); err != nil {
		return appliance.Session{}, fmt.Errorf("save session: %w", err)
	}
	a.log.Info("login", "user", u.Name, "remote", remote)
	return appliance.Session{Token: token, User: s.User, Role: s.Role, Expires: s.Expires}, nil
}

// dummyHash is checked for unknown users: the same work as a real check, so timing does not tell which
// user names exist.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// verify checks a password. The attempt is counted as a failure against remote and name before the
// check (answering a *appliance.RateLimitError past the limits) and is forgiven only by a success.
func (a *Auth) verify(name, password, remote string) (user, error) {
	if err := a.attempt(name, remote); err != nil {
		return user{}, err
	}
	select {
	case a.hashing <- struct{}{}:
		defer func() { <-a.hashing }()
	case <-time.After(a.hashWait):
		return user{}, &appliance.RateLimitError{RetryAfter: time.Second}
	}
	var u user
	err := a.store.GetJSON(state.BucketAuth, name, &u)
	if errors.Is(err, state.ErrNotFound) {
		_, _ = verifyPassword(dummyHash, password)
		a.log.Warn("failed login", "remote", remote)
		return user{}, appliance.ErrBadCredentials
	}
	if err != nil {
		return user{}, fmt.Errorf("login %s: %w", name, err)
	}
	ok, err := verifyPassword(u.Hash, password)
	if err != nil {
		return user{}, fmt.Errorf("login %s: %w", name, err)
	}
	if !ok {
		a.log.Warn("failed login", "remote", remote)
		return user{}, appliance.ErrBadCredentials
	}
	return u, nil
}

// Check checks a password without opening a session (monitoring). Accounts with a second factor cannot.
func (a *Auth) Check(name, password, remote string) (appliance.Session, error) {
	u, err := a.verify(name, password, remote)
	if err != nil {
		return appliance.Session{}, err
	}
	if u.TOTP != "" {
		return appliance.Session{}, fmt.Errorf("%w: an account with a second factor cannot log in without its code", appliance.ErrBadCredentials)
	}
	a.mu.Lock()
	a.succeeded(name, remote)
	a.mu.Unlock()
	return appliance.Session{User: u.Name, Role: u.Role}, nil
}

// Reauthenticate checks the password of a user who is logged in (whatever their second factor).
func (a *Auth) Reauthenticate(name, password, remote string) error {
	_, err := a.verify(name, password, remote)
	if errors.Is(err, appliance.ErrBadCredentials) {
		return fmt.Errorf("%w: the current password is wrong", appliance.ErrBadInput)
	}
	if err == nil {
		a.mu.Lock()
		a.succeeded(name, remote)
		a.mu.Unlock()
	}
	return err
}

// attempt records a login attempt of name from remote as a failure, or answers a *appliance.RateLimitError
// if either has too many recent failures. Checking and recording are one step: parallel attempts count.
func (a *Auth) attempt(name, remote string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	var wait time.Duration
	for _, l := range []struct {
		key    string
		max    int
		window time.Duration
	}{{"remote " + remote, maxFailures, failWindow}, {"user " + name, maxAccountFailures, accountWindow}} {
		recent := a.failures[l.key][:0]
		for _, t := range a.failures[l.key] {
			if now.Sub(t) < l.window {
				recent = append(recent, t)
			}
		}
		a.failures[l.key] = recent
		if len(recent) >= l.max {
			wait = max(wait, l.window-now.Sub(recent[0]))
		}
	}
	if wait > 0 {
		return &appliance.RateLimitError{RetryAfter: wait}
	}
	if len(a.failures) > 4096 { // a flood of made-up names: drop what no window holds any more
		for k, ts := range a.failures {
			if len(ts) == 0 || now.Sub(ts[len(ts)-1]) >= accountWindow {
				delete(a.failures, k)
			}
		}
	}
	a.failures["remote "+remote] = append(a.failures["remote "+remote], now)
	a.failures["user "+name] = append(a.failures["user "+name], now)
	return nil
}

// succeeded forgives the failures of remote and name after a successful login. a.mu is held.
func (a *Auth) succeeded(name, remote string) {
	delete(a.failures, "remote "+remote)
	delete(a.failures, "user "+name)
}

func tokenKey(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Authenticate returns the session of token and refreshes its idle timer.
func (a *Auth) Authenticate(token string) (appliance.Session, error) {
	return a.session(token, true)
}

// Current returns the session of token without refreshing its idle timer: a page left open that
// updates itself is no sign of someone at the screen.
func (a *Auth) Current(token string) (appliance.Session, error) {
	return a.session(token, false)
}

func (a *Auth) session(token string, active bool) (appliance.Session, error) {
	if token == "" {
		return appliance.Session{}, appliance.ErrUnauthenticated
	}
	key := tokenKey(token)
	var s session
	if err := a.store.GetJSON(state.BucketSessions, key, &s); err != nil {
		return appliance.Session{}, appliance.ErrUnauthenticated
	}
	now := a.now()
	if now.After(s.Expires) || now.Sub(s.LastSeen) > SessionIdle {
		_ = a.store.Delete(state.BucketSessions, key)
		return appliance.Session{}, appliance.ErrUnauthenticated
	}
	if active && now.Sub(s.LastSeen) > time.Minute { // do not write on every request
		s.LastSeen = now
		_ = a.store.PutJSON(state.BucketSessions, key, s)
	}
	return appliance.Session{User: s.User, Role: s.Role, Expires: s.Expires}, nil
}

// Logout ends the session of token.
func (a *Auth) Logout(token string) error {
	if err := a.store.Delete(state.BucketSessions, tokenKey(token)); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,31}$`)

// Users lists the accounts, by name.
func (a *Auth) Users() ([]appliance.User, error) {
	var out []appliance.User
	err := a.store.ForEach(state.BucketAuth, func(_ string, v []byte) error {
		var u user
		if err := json.Unmarshal(v, &u); err != nil {
			return fmt.Errorf("decode user: %w", err)
		}
		out = append(out, appliance.User{Name: u.Name, Role: u.Role, TOTP: u.TOTP != ""})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	slices.SortFunc(out, func(x, y appliance.User) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// AddUser creates an account.
func (a *Auth) AddUser(name, password, role string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("%w: a user name is 1-32 lower-case letters, digits, '.', '_' or '-', starting with a letter", appliance.ErrBadInput)
	}
	if role != appliance.RoleAdmin && role != appliance.RoleViewer {
		return fmt.Errorf("%w: role %q: use %q or %q", appliance.ErrBadInput, role, appliance.RoleAdmin, appliance.RoleViewer)
	}
	if err := CheckPassword(password); err != nil {
		return err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.store.Get(state.BucketAuth, name); err == nil {
		return fmt.Errorf("user %s already exists: %w", name, appliance.ErrConflict)
	}
	if err := a.store.PutJSON(state.BucketAuth, name, user{Name: name, Role: role, Hash: hash}); err != nil {
		return fmt.Errorf("add user %s: %w", name, err)
	}
	a.log.Info("user added", "user", name, "role", role)
	return nil
}

// DeleteUser removes an account and ends its sessions; the last admin stays.
func (a *Auth) DeleteUser(name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	users, err := a.Users()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(users, func(u appliance.User) bool { return u.Name == name })
	if i < 0 {
		return fmt.Errorf("user %s: %w", name, appliance.ErrNotFound)
	}
	admins := 0
	for _, u := range users {
		if u.Role == appliance.RoleAdmin {
			admins++
		}
	}
	if users[i].Role == appliance.RoleAdmin && admins == 1 {
		return fmt.Errorf("user %s is the last admin; add another admin first: %w", name, appliance.ErrConflict)
	}
	if err := a.store.Delete(state.BucketAuth, name); err != nil {
		return fmt.Errorf("delete user %s: %w", name, err)
	}
	if _, err := a.endSessions(name, ""); err != nil {
		return err
	}
	a.log.Info("user deleted", "user", name)
	return nil
}

// SetPassword replaces an account's password and ends its other sessions.
func (a *Auth) SetPassword(name, password, keep string) error {
	if err := CheckPassword(password); err != nil {
		return err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	if err := a.editUser(name, func(u *user) error { u.Hash = hash; return nil }); err != nil {
		return err
	}
	_, err = a.EndSessions(name, keep)
	return err
}

// EndSessions ends every session of name but keep's.
func (a *Auth) EndSessions(name, keep string) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.endSessions(name, keep)
}

func (a *Auth) endSessions(name, keep string) (int, error) {
	keepKey := ""
	if keep != "" {
		keepKey = tokenKey(keep)
	}
	var ended []string
	err := a.store.ForEach(state.BucketSessions, func(k string, v []byte) error {
		var s session
		if json.Unmarshal(v, &s) == nil && s.User == name && k != keepKey {
			ended = append(ended, k)
		}
		return nil
	})
	for _, k := range ended {
		err = errors.Join(err, a.store.Delete(state.BucketSessions, k))
	}
	if err != nil {
		return 0, fmt.Errorf("end sessions of %s: %w", name, err)
	}
	return len(ended), nil
}

func (a *Auth) editUser(name string, edit func(*user) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var u user
	if err := a.store.GetJSON(state.BucketAuth, name, &u); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			return fmt.Errorf("user %s: %w", name, appliance.ErrNotFound)
		}
		return fmt.Errorf("user %s: %w", name, err)
	}
	if err := edit(&u); err != nil {
		return err
	}
	if err := a.store.PutJSON(state.BucketAuth, name, u); err != nil {
		return fmt.Errorf("save user %s: %w", name, err)
	}
	return nil
}
