package auth

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
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
	got, err := a.Audit(3)
	if err != nil || len(got) != 3 || got[0].Status != 204 || got[2].Status != 202 || !got[0].Time.Equal(c.t) {
		t.Errorf("Audit(3) = %+v, %v", got, err)
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
