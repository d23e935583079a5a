package auth

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newAuth(t *testing.T) (*Auth, *clock) {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	return New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), c.now), c
}

const goodPW = "correct horse battery"

func TestSetup(t *testing.T) {
	a, _ := newAuth(t)
	if !a.NeedsSetup() {
		t.Fatal("NeedsSetup() = false on a new store")
	}
	code := a.SetupCode()
	if len(code) != 19 {
		t.Fatalf("SetupCode() = %q, want XXXX-XXXX-XXXX-XXXX", code)
	}
	if err := a.Setup("AAAA-BBBB-CCCC-DDDD", goodPW); !errors.Is(err, appliance.ErrBadSetupCode) {
		t.Errorf("Setup(wrong code) = %v, want ErrBadSetupCode", err)
	}
	if err := a.Setup(code, "short"); !errors.Is(err, appliance.ErrWeakPassword) {
		t.Errorf("Setup(short password) = %v, want ErrWeakPassword", err)
	}
	// Case and dashes do not matter: people copy codes from a screen.
	if err := a.Setup(" "+normalizeCode(code)+" ", goodPW); err != nil {
		t.Fatalf("Setup(right code) = %v", err)
	}
	if a.NeedsSetup() || a.SetupCode() != "" {
		t.Error("still needs setup after Setup")
	}
	if err := a.Setup(code, goodPW); !errors.Is(err, appliance.ErrAlreadySetUp) {
		t.Errorf("second Setup = %v, want ErrAlreadySetUp", err)
	}
}

func TestSetupCodeReplacedAfterTooManyTries(t *testing.T) {
	a, _ := newAuth(t)
	code := a.SetupCode()
	for range maxSetupTries {
		_ = a.Setup("WRONG", goodPW)
	}
	if err := a.Setup(code, goodPW); !errors.Is(err, appliance.ErrBadSetupCode) {
		t.Errorf("old code after %d wrong tries = %v, want ErrBadSetupCode", maxSetupTries, err)
	}
}

func setUp(t *testing.T) (*Auth, *clock) {
	a, c := newAuth(t)
	if err := a.Setup(a.SetupCode(), goodPW); err != nil {
		t.Fatal(err)
	}
	return a, c
}

func TestLoginSessionExpiry(t *testing.T) {
	a, c := setUp(t)
	if _, err := a.Login("admin", "wrong password!", "", "192.0.2.9"); !errors.Is(err, appliance.ErrBadCredentials) {
		t.Errorf("Login(wrong) = %v, want ErrBadCredentials", err)
	}
	if _, err := a.Login("nobody", goodPW, "", "192.0.2.9"); !errors.Is(err, appliance.ErrBadCredentials) {
		t.Errorf("Login(unknown user) = %v, want ErrBadCredentials", err)
	}
	s, err := a.Login("admin", goodPW, "", "192.0.2.9")
	if err != nil || s.Token == "" || s.Role != appliance.RoleAdmin {
		t.Fatalf("Login = %+v, %v", s, err)
	}
	if got, err := a.Authenticate(s.Token); err != nil || got.User != "admin" {
		t.Errorf("Authenticate = %+v, %v", got, err)
	}
	if _, err := a.Authenticate(s.Token + "x"); !errors.Is(err, appliance.ErrUnauthenticated) {
		t.Errorf("Authenticate(bad token) = %v", err)
	}
	// Idle timeout.
	c.t = c.t.Add(SessionIdle + time.Second)
	if _, err := a.Authenticate(s.Token); !errors.Is(err, appliance.ErrUnauthenticated) {
		t.Errorf("Authenticate after idle = %v, want ErrUnauthenticated", err)
	}
	// Absolute timeout, even when used every few minutes.
	s, _ = a.Login("admin", goodPW, "", "192.0.2.9")
	for i := time.Duration(0); i < SessionTTL; i += 20 * time.Minute {
		c.t = c.t.Add(20 * time.Minute)
		_, _ = a.Authenticate(s.Token)
	}
	c.t = c.t.Add(time.Minute)
	if _, err := a.Authenticate(s.Token); !errors.Is(err, appliance.ErrUnauthenticated) {
		t.Errorf("Authenticate after %v = %v, want ErrUnauthenticated", SessionTTL, err)
	}
	// Logout.
	s, _ = a.Login("admin", goodPW, "", "192.0.2.9")
	if err := a.Logout(s.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(s.Token); !errors.Is(err, appliance.ErrUnauthenticated) {
		t.Errorf("Authenticate after Logout = %v", err)
	}
}

func TestLoginRateLimit(t *testing.T) {
	a, c := setUp(t)
	for range maxFailures {
		_, _ = a.Login("admin", "wrong password!", "", "198.51.100.7")
	}
	_, err := a.Login("admin", goodPW, "", "198.51.100.7")
	var rl *appliance.RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, appliance.ErrRateLimited) || rl.RetryAfter <= 0 {
		t.Fatalf("Login after %d failures = %v, want a RateLimitError", maxFailures, err)
	}
	// Another client is not punished.
	if _, err := a.Login("admin", goodPW, "", "198.51.100.8"); err != nil {
		t.Errorf("Login from another client = %v", err)
	}
	c.t = c.t.Add(failWindow)
	if _, err := a.Login("admin", goodPW, "", "198.51.100.7"); err != nil {
		t.Errorf("Login after the window = %v", err)
	}
}

func TestVerifyPasswordRejectsGarbage(t *testing.T) {
	if _, err := verifyPassword("$2y$10$bcrypt", "x"); err == nil {
		t.Error("verifyPassword(bcrypt string) = nil error")
	}
}

// Accounts: an admin adds a viewer and a second admin; bad names, roles, passwords and duplicates are
// refused; the last admin cannot be removed (else the first-boot setup would open again); removing an
// account or changing its password ends its sessions, keeping only the caller's own.
func TestUsers(t *testing.T) {
	a, _ := setUp(t)
	for _, bad := range []struct{ name, pw, role string }{
		{"Clerk", goodPW, appliance.RoleViewer}, {"", goodPW, appliance.RoleViewer}, {"a b", goodPW, appliance.RoleViewer},
		{"clerk", goodPW, "root"}, {"clerk", "short", appliance.RoleViewer},
	} {
		if err := a.AddUser(bad.name, bad.pw, bad.role); err == nil {
			t.Errorf("AddUser(%q, %q, %q) accepted", bad.name, bad.pw, bad.role)
		}
	}
	if err := a.AddUser("clerk", goodPW, appliance.RoleViewer); err != nil {
		t.Fatal(err)
	}
	if err := a.AddUser("clerk", goodPW, appliance.RoleAdmin); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("duplicate user: %v", err)
	}
	s, err := a.Login("clerk", goodPW, "", "192.0.2.9")
	if err != nil || s.Role != appliance.RoleViewer {
		t.Fatalf("viewer login: %+v %v", s, err)
	}
	if err := a.DeleteUser("admin"); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("deleting the last admin: %v", err)
	}
	if err := a.AddUser("it-person", goodPW, appliance.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteUser("admin"); err != nil {
		t.Errorf("deleting an admin while another exists: %v", err)
	}
	if a.NeedsSetup() {
		t.Error("the setup reopened after the first admin was removed")
	}
	users, _ := a.Users()
	if len(users) != 2 || users[0] != (appliance.User{Name: "clerk", Role: appliance.RoleViewer}) || users[1].Name != "it-person" {
		t.Errorf("users %+v", users)
	}

	// Two sessions of the clerk; a password change from the first ends the second.
	s2, _ := a.Login("clerk", goodPW, "", "192.0.2.10")
	if err := a.SetPassword("clerk", goodPW+"!", s.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(s.Token); err != nil {
		t.Errorf("the caller's own session ended: %v", err)
	}
	if _, err := a.Authenticate(s2.Token); err == nil {
		t.Error("another session survived the password change")
	}
	if _, err := a.Login("clerk", goodPW, "", "192.0.2.10"); !errors.Is(err, appliance.ErrBadCredentials) {
		t.Errorf("old password: %v", err)
	}
	if err := a.DeleteUser("clerk"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(s.Token); err == nil {
		t.Error("a deleted user's session still works")
	}
	if err := a.DeleteUser("clerk"); !errors.Is(err, appliance.ErrNotFound) {
		t.Errorf("deleting a missing user: %v", err)
	}
}

func TestEndSessionsAndAudit(t *testing.T) {
	a, c := setUp(t)
	var toks []string
	for range 3 {
		s, err := a.Login("admin", goodPW, "", "192.0.2.9")
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, s.Token)
	}
	if n, err := a.EndSessions("admin", toks[0]); err != nil || n != 2 {
		t.Errorf("EndSessions = %d, %v; want 2", n, err)
	}
	for i, tok := range toks {
		if _, err := a.Authenticate(tok); (err == nil) != (i == 0) {
			t.Errorf("session %d after logout elsewhere: %v", i, err)
		}
	}

	for i := range 5 {
		c.t = c.t.Add(time.Second)
		if err := a.Record(appliance.AuditEntry{Time: c.t, User: "admin", Action: "POST /x", Status: 200 + i}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.Audit(3, appliance.AuditLog)
	if err != nil || len(got) != 3 || got[0].Status != 204 || got[2].Status != 202 || !got[0].Time.Equal(c.t) {
		t.Errorf("Audit(3) = %+v, %v", got, err)
	}
}

// A flood of requests that did not authenticate fills the noise log, never the audit log; every entry
// of the audit log is shipped with its chain hash, and the chain verifies.
func TestAuditNoiseKeptApart(t *testing.T) {
	a, c := setUp(t)
	var shipped []string
	a.Ship = func(e appliance.AuditEntry, hash string) { shipped = append(shipped, e.User+" "+hash) }
	if err := a.Record(appliance.AuditEntry{Time: c.t, User: "admin", Action: "POST /api/v1/database/promote", Status: 200}); err != nil {
		t.Fatal(err)
	}
	for i := range keepNoise + 200 {
		if err := a.Record(appliance.AuditEntry{Time: c.t.Add(time.Duration(i) * time.Millisecond), User: "nobody", Action: "POST /api/v1/login", Status: 401, Noise: true}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.Audit(10, appliance.AuditLog)
	if err != nil || len(got) != 1 || got[0].User != "admin" {
		t.Errorf("audit log after the flood = %+v, %v", got, err)
	}
	noise, err := a.Audit(keepNoise+1000, appliance.AuditNoise)
	if err != nil || len(noise) < keepNoise || len(noise) > keepNoise+64 {
		t.Errorf("noise log holds %d entries (%v), want about %d", len(noise), err, keepNoise)
	}
	check, err := a.VerifyAudit()
	if err != nil || !check.OK || check.Entries != 1 || len(shipped) != 1 || !strings.HasSuffix(shipped[0], check.Head) {
		t.Errorf("VerifyAudit = %+v, %v; shipped %v", check, err, shipped)
	}
}

func TestTOTPVectors(t *testing.T) { // RFC 6238 appendix B, SHA-1, last 6 digits
	key := []byte("12345678901234567890")
	for ts, want := range map[int64]int{59: 287082, 1111111109: 81804, 1234567890: 5924, 2000000000: 279037} {
		if got := totpCode(key, ts/totpStep); got != want {
			t.Errorf("T=%d: %06d, want %06d", ts, got, want)
		}
	}
}

// A second factor: set up with a first code, then needed at every login; a code works once; turned off,
// the password alone is enough again.
func TestTOTPLogin(t *testing.T) {
	a, c := setUp(t)
	secret, uri, err := a.BeginTOTP("admin")
	if err != nil || !strings.HasPrefix(uri, "otpauth://totp/Lawbox:admin?") || !strings.Contains(uri, "secret="+secret) {
		t.Fatalf("BeginTOTP = %q %q %v", secret, uri, err)
	}
	key, _ := totpEncoding.DecodeString(secret)
	code := func(at time.Time) string { return fmt.Sprintf("%06d", totpCode(key, at.Unix()/totpStep)) }
	if _, err := a.Login("admin", goodPW, "", "192.0.2.9"); err != nil {
		t.Errorf("a pending second factor is already required: %v", err)
	}
	if err := a.ConfirmTOTP("admin", "000000"); !errors.Is(err, appliance.ErrBadInput) && code(c.t) != "000000" {
		t.Errorf("confirm with a wrong code: %v", err)
	}
	if err := a.ConfirmTOTP("admin", code(c.t)); err != nil {
		t.Fatal(err)
	}
	if users, _ := a.Users(); !users[0].TOTP {
		t.Errorf("users %+v", users)
	}
	c.t = c.t.Add(time.Minute)
	if _, err := a.Login("admin", goodPW, "", "192.0.2.9"); !errors.Is(err, appliance.ErrBadCredentials) {
		t.Errorf("login without the code: %v", err)
	}
	if _, err := a.Login("admin", goodPW, code(c.t.Add(-5*time.Minute)), "192.0.2.9"); !errors.Is(err, appliance.ErrBadCredentials) {
		t.Errorf("login with an old code: %v", err)
	}
	if _, err := a.Login("admin", goodPW, code(c.t), "192.0.2.10"); err != nil {
		t.Errorf("login with the code: %v", err)
	}
	if _, err := a.Login("admin", goodPW, code(c.t), "192.0.2.11"); !errors.Is(err, appliance.ErrBadCredentials) {
		t.Errorf("the same code twice: %v", err)
	}
	c.t = c.t.Add(totpStep * time.Second)
	if _, err := a.Login("admin", goodPW, code(c.t), "192.0.2.11"); err != nil {
		t.Errorf("the next code: %v", err)
	}
	if err := a.DisableTOTP("admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Login("admin", goodPW, "", "192.0.2.12"); err != nil {
		t.Errorf("after turning it off: %v", err)
	}
}

// Twenty wrong passwords sent at once from one client: at most the limit of them is checked, the rest
// are told to wait; the account's own limit holds across clients, so the second factor's codes cannot be
// tried one after another once the password is known; a right login forgives.
func TestLoginLimitsHoldInParallel(t *testing.T) {
	a, c := setUp(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	checked, limited := 0, 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.Login("admin", "wrong password!", "", "192.0.2.20")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, appliance.ErrRateLimited):
				limited++
			case errors.Is(err, appliance.ErrBadCredentials):
				checked++
			default:
				t.Errorf("Login = %v", err)
			}
		}()
	}
	wg.Wait()
	if checked != maxFailures || limited != 20-maxFailures {
		t.Errorf("20 parallel wrong logins: %d checked, %d limited; want %d checked", checked, limited, maxFailures)
	}
	// Other clients, each under its own limit, wear the account's down.
	c.t = c.t.Add(failWindow)
	tries := 0
	for i := range 30 {
		_, err := a.Login("admin", "wrong password!", "", fmt.Sprintf("192.0.2.%d", 100+i))
		if errors.Is(err, appliance.ErrRateLimited) {
			break
		}
		tries++
	}
	if tries != maxAccountFailures-maxFailures {
		// the first client's failures still count against the account within its window
		t.Errorf("logins before the account's limit: %d, want %d", tries, maxAccountFailures-maxFailures)
	}
	c.t = c.t.Add(accountWindow)
	if _, err := a.Login("admin", goodPW, "", "192.0.2.30"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if len(a.failures["user admin"]) != 0 {
		t.Errorf("a right login left failures: %v", a.failures["user admin"])
	}
}

// Password checks run maxHashing at a time: a flood waits, then is told to come back, and takes no more
// memory than those checks.
func TestPasswordChecksAreCapped(t *testing.T) {
	a, _ := setUp(t)
	a.hashWait = 50 * time.Millisecond
	for range maxHashing {
		a.hashing <- struct{}{} // checks that are running
	}
	if _, err := a.Login("admin", goodPW, "", "192.0.2.70"); !errors.Is(err, appliance.ErrRateLimited) {
		t.Errorf("Login while %d checks run = %v, want ErrRateLimited", maxHashing, err)
	}
	<-a.hashing
	if _, err := a.Login("admin", goodPW, "", "192.0.2.70"); err != nil {
		t.Errorf("Login with a free slot = %v", err)
	}
}

// A wrong second-factor code answers exactly as a wrong password does.
func TestWrongCodeLooksLikeWrongPassword(t *testing.T) {
	a, c := setUp(t)
	secret, _, _ := a.BeginTOTP("admin")
	key, _ := totpEncoding.DecodeString(secret)
	if err := a.ConfirmTOTP("admin", fmt.Sprintf("%06d", totpCode(key, c.t.Unix()/totpStep))); err != nil {
		t.Fatal(err)
	}
	_, errPW := a.Login("admin", "wrong password!", "", "192.0.2.40")
	_, errCode := a.Login("admin", goodPW, "", "192.0.2.41")
	if errPW == nil || errCode == nil || errPW.Error() != errCode.Error() {
		t.Errorf("wrong password: %v; right password, wrong code: %v; want the same answer", errPW, errCode)
	}
}

// A login whose password was checked while the account was deleted, or its password changed, opens no
// session.
func TestLoginInFlightWhileAccountChanges(t *testing.T) {
	a, _ := setUp(t)
	if err := a.AddUser("clerk", goodPW, appliance.RoleViewer); err != nil {
		t.Fatal(err)
	}
	u, err := a.verify("clerk", goodPW, "192.0.2.50")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetPassword("clerk", "another long password", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.open(u, "", "192.0.2.50"); !errors.Is(err, appliance.ErrBadCredentials) {
		t.Errorf("session after the password changed: %v", err)
	}
	u, _ = a.verify("clerk", "another long password", "192.0.2.51")
	if err := a.DeleteUser("clerk"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.open(u, "", "192.0.2.51"); !errors.Is(err, appliance.ErrBadCredentials) {
		t.Errorf("session after the account was deleted: %v", err)
	}
}

// Current does not count as activity: a session only a live page uses ends at its idle timeout.
func TestCurrentKeepsIdleTimeout(t *testing.T) {
	a, c := setUp(t)
	s, err := a.Login("admin", goodPW, "", "192.0.2.60")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c.t = c.t.Add(SessionIdle / 2)
		if _, err := a.Current(s.Token); err != nil {
			break
		}
	}
	if _, err := a.Current(s.Token); !errors.Is(err, appliance.ErrUnauthenticated) {
		t.Errorf("a session only the live page used is alive after %v: %v", 3*SessionIdle/2, err)
	}
}
