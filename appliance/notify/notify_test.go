package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/certs"
	"github.com/lawbox/appliance/appliance/state"
)

// mailServer is a real SMTP server (go-smtp) on 127.0.0.1: STARTTLS with its own certificate unless plain,
// AUTH PLAIN for user "alerts" / "mail password".
type mailServer struct {
	addr  string
	ca    *x509.CertPool
	mu    sync.Mutex
	msgs  []string
	auths []string
}

type session struct{ s *mailServer }

func (x *session) AuthMechanisms() []string { return []string{sasl.Plain} }
func (x *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "alerts" || pass != "mail password" {
			return errors.New("bad credentials")
		}
		x.s.mu.Lock()
		x.s.auths = append(x.s.auths, user)
		x.s.mu.Unlock()
		return nil
	}), nil
}
func (x *session) Reset()                               {}
func (x *session) Logout() error                        { return nil }
func (x *session) Mail(string, *smtp.MailOptions) error { return nil }
func (x *session) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, string(b))
	x.s.mu.Unlock()
	return err
}

func startMailServer(t *testing.T, plain bool) *mailServer {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cert, err := certs.LoadOrCreate(st, "mail", []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ms := &mailServer{ca: x509.NewCertPool()}
	ms.ca.AddCert(cert.Leaf)
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{ms}, nil }))
	srv.Domain = "127.0.0.1"
	if !plain {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return ms
}

func (m *mailServer) messages() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.msgs...)
}

// syslogServer collects the datagrams sent to it.
func syslogServer(t *testing.T) (string, func() []string) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var mu sync.Mutex
	var lines []string
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			lines = append(lines, string(buf[:n]))
			mu.Unlock()
		}
	}()
	return c.LocalAddr().String(), func() []string {
		time.Sleep(200 * time.Millisecond) // datagrams in flight
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines...)
	}
}

type alerts struct {
	mu  sync.Mutex
	cur []appliance.Alert
}

func (a *alerts) set(cur ...appliance.Alert) { a.mu.Lock(); a.cur = cur; a.mu.Unlock() }
func (a *alerts) get(context.Context) []appliance.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cur
}

func newNotifier(t *testing.T, ms *mailServer, al *alerts) *Notifier {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n := &Notifier{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: st, Alerts: al.get, Hostname: "appliance-1",
		MinGap: time.Hour}
	if ms != nil {
		n.TLS = &tls.Config{RootCAs: ms.ca}
	}
	return n
}

// New alerts are mailed (over STARTTLS, logged in) and logged to syslog once; a number that changes is
// the same alert; a warning waits for the gap between emails, a critical alert does not; cleared alerts
// are said to be resolved.
func TestAlertsMailedAndLogged(t *testing.T) {
	ms := startMailServer(t, false)
	sl, logged := syslogServer(t)
	al := &alerts{}
	n := newNotifier(t, ms, al)
	ctx := context.Background()
	if err := n.SetNotifications(ctx, appliance.NotifySettings{SMTP: ms.addr, From: "Appliance <box@office.example>",
		To: []string{"it@office.example"}, User: "alerts", Password: "mail password", Syslog: sl}); err != nil {
		t.Fatal(err)
	}
	al.set(appliance.NewAlert("critical", "the data array is DEGRADED"), appliance.NewAlert("warning", "the database mirror is 61 s behind"))
	n.Round(ctx)
	msgs := ms.messages()
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: [appliance-1] CRITICAL: 2 new alert(s), 0 resolved") ||
		!strings.Contains(msgs[0], "NEW CRITICAL: the data array is DEGRADED") {
		t.Fatalf("first email: %q", msgs)
	}
	if len(ms.auths) != 1 {
		t.Errorf("logins %v", ms.auths)
	}
	al.set(appliance.NewAlert("critical", "the data array is DEGRADED"), appliance.NewAlert("warning", "the database mirror is 75 s behind"))
	n.Round(ctx)
	if len(ms.messages()) != 1 {
		t.Errorf("the same alerts were mailed again: %d messages", len(ms.messages()))
	}
	// A new warning within the gap waits; a new critical alert goes at once and carries it along.
	al.set(appliance.NewAlert("critical", "the data array is DEGRADED"), appliance.NewAlert("warning", "no heartbeats over 198.51.100.2"))
	n.Round(ctx)
	if len(ms.messages()) != 1 {
		t.Errorf("a warning was mailed within the gap")
	}
	al.set(appliance.NewAlert("critical", "the data array is DEGRADED"), appliance.NewAlert("warning", "no heartbeats over 198.51.100.2"),
		appliance.NewAlert("critical", "disk SN-B: failed"))
	n.Round(ctx)
	msgs = ms.messages()
	if len(msgs) != 2 || !strings.Contains(msgs[1], "NEW CRITICAL: disk SN-B: failed") || !strings.Contains(msgs[1], "NEW WARNING: no heartbeats") ||
		!strings.Contains(msgs[1], "RESOLVED: the database mirror is 61 s behind") {
		t.Errorf("second email: %q", msgs[len(msgs)-1])
	}
	lines := strings.Join(logged(), "\n")
	for _, want := range []string{"the data array is DEGRADED", "disk SN-B: failed", "resolved: the database mirror", "lawbox"} {
		if !strings.Contains(lines, want) {
			t.Errorf("syslog lacks %q:\n%s", want, lines)
		}
	}
	if strings.Count(lines, "the data array is DEGRADED") != 1 {
		t.Errorf("syslog repeated an alert:\n%s", lines)
	}
	st, _ := n.Notifications(ctx)
	if st.Settings.Password != "" || !st.PasswordSet || st.LastSent == nil || st.LastError != "" {
		t.Errorf("status %+v", st)
	}
}

// An acknowledged alert is not told (nor its end, when nobody was told it began); a mute that expires tells
// it again; an acknowledgement ends when its alert has cleared for two rounds, or when withdrawn.
func TestAcknowledgedAlerts(t *testing.T) {
	sl, logged := syslogServer(t)
	al := &alerts{}
	n := newNotifier(t, nil, al)
	ctx := context.Background()
	if err := n.SetNotifications(ctx, appliance.NotifySettings{Syslog: sl}); err != nil {
		t.Fatal(err)
	}
	backups := appliance.NewAlert("warning", "backups are not set up: nothing is kept away from this office")
	disk := appliance.NewAlert("critical", "disk SN-B: 12 reallocated sectors")
	al.set(backups, disk)
	bk, dk := backups.Key, disk.Key
	if err := n.AcknowledgeAlert(ctx, "warning nothing like this", "admin", 0); !errors.Is(err, appliance.ErrNotFound) {
		t.Errorf("acknowledged an alert that is not there: %v", err)
	}
	if err := n.AcknowledgeAlert(ctx, bk, "admin", 31*24*time.Hour); !errors.Is(err, appliance.ErrBadInput) {
		t.Errorf("muted for 31 days: %v", err)
	}
	if err := n.AcknowledgeAlert(ctx, bk, "admin", 0); err != nil {
		t.Fatal(err)
	}
	n.Round(ctx)
	if lines := strings.Join(logged(), "\n"); strings.Contains(lines, "backups are not set up") || !strings.Contains(lines, "disk SN-B") {
		t.Fatalf("first round:\n%s", lines)
	}
	count := func(s string) int { return strings.Count(strings.Join(logged(), "\n"), s) }

	// Muted for an hour: nothing; the mute over (its end written as past): told again.
	if err := n.AcknowledgeAlert(ctx, dk, "admin", time.Hour); err != nil {
		t.Fatal(err)
	}
	acks, _ := n.AlertAcks(ctx)
	if a := acks[dk]; a.By != "admin" || a.Until == nil || a.Until.Sub(a.At) != time.Hour {
		t.Errorf("mute %+v", a)
	}
	n.Round(ctx)
	if c := count("disk SN-B"); c != 1 {
		t.Errorf("a muted alert was told again (%d)", c)
	}
	past := time.Now().Add(-time.Minute)
	if err := n.Store.PutJSON(bucketAcks, dk, appliance.AlertAck{By: "admin", At: past.Add(-time.Hour), Until: &past}); err != nil {
		t.Fatal(err)
	}
	n.Round(ctx)
	if c := count("disk SN-B"); c != 2 {
		t.Errorf("the mute expired but the alert was told %d times", c)
	}
	if acks, _ := n.AlertAcks(ctx); len(acks) != 1 {
		t.Errorf("the expired mute is still stored: %v", acks)
	}

	// The acknowledged alert clears: its acknowledgement lasts one round missing, ends at the second; when it
	// comes back, it is told.
	al.set(disk)
	n.Round(ctx)
	if acks, _ := n.AlertAcks(ctx); len(acks) != 1 {
		t.Errorf("the acknowledgement ended after one round without its alert")
	}
	n.Round(ctx)
	if acks, _ := n.AlertAcks(ctx); len(acks) != 0 {
		t.Errorf("the acknowledgement outlived its alert: %v", acks)
	}
	if count("resolved: backups") != 0 {
		t.Error("the end of an alert nobody was told about was told")
	}
	al.set(backups, disk)
	n.Round(ctx)
	if c := count("backups are not set up"); c != 1 {
		t.Errorf("the alert came back but was told %d times", c)
	}

	// Withdrawn: told again at the next round.
	if err := n.AcknowledgeAlert(ctx, dk, "admin", 0); err != nil {
		t.Fatal(err)
	}
	if err := n.UnacknowledgeAlert(ctx, dk); err != nil {
		t.Fatal(err)
	}
	if err := n.UnacknowledgeAlert(ctx, dk); !errors.Is(err, appliance.ErrNotFound) {
		t.Errorf("withdrew twice: %v", err)
	}
	n.Round(ctx)
	if c := count("disk SN-B"); c != 3 {
		t.Errorf("the withdrawn acknowledgement: told %d times", c)
	}
}

// A wrong password on a server with STARTTLS: refused, and said as such on the page.
func TestMailLoginRefused(t *testing.T) {
	ms := startMailServer(t, false)
	n := newNotifier(t, ms, &alerts{})
	ctx := context.Background()
	set := appliance.NotifySettings{SMTP: ms.addr, From: "box@office.example", To: []string{"it@office.example"}, User: "alerts", Password: "not the password"}
	if err := n.SetNotifications(ctx, set); err != nil {
		t.Fatal(err)
	}
	err := n.TestNotification(ctx)
	if !errors.Is(err, errLogin) || !errors.Is(err, appliance.ErrUnavailable) || !strings.Contains(err.Error(), "refuses the user name or the password") {
		t.Errorf("a wrong password: %v", err)
	}
	if len(ms.messages()) != 0 {
		t.Error("a message went out without a login")
	}
}

// A server without STARTTLS gets nothing when a password is set (refused at once by the settings, and at
// sending); allowed as plain without a password, it gets the mail. An unreachable server is retried.
func TestMailServerProblems(t *testing.T) {
	plain := startMailServer(t, true)
	al := &alerts{}
	n := newNotifier(t, plain, al)
	ctx := context.Background()
	set := appliance.NotifySettings{SMTP: plain.addr, From: "box@office.example", To: []string{"it@office.example"}, User: "alerts", Password: "mail password", PlainSMTP: true}
	if err := n.SetNotifications(ctx, set); !errors.Is(err, appliance.ErrBadInput) {
		t.Errorf("plain with a password: %v", err)
	}
	set.PlainSMTP = false
	if err := n.SetNotifications(ctx, set); err != nil {
		t.Fatal(err)
	}
	if err := n.TestNotification(ctx); !errors.Is(err, errTLS) || !strings.Contains(err.Error(), "no working encryption") || strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("test to a server without STARTTLS: %v", err) // the sentence, not the server's words
	}
	if len(plain.messages()) != 0 || len(plain.auths) != 0 {
		t.Fatal("something was sent in clear")
	}
	set.User, set.Password, set.PlainSMTP = "", "", true
	if err := n.SetNotifications(ctx, set); err != nil {
		t.Fatal(err)
	}
	if err := n.TestNotification(ctx); err != nil || len(plain.messages()) != 1 || !strings.Contains(plain.messages()[0], "test message") {
		t.Errorf("plain test: %v %q", err, plain.messages())
	}

	// Unreachable: the error is kept and the alert goes out once the server answers.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	set.SMTP = dead
	if err := n.SetNotifications(ctx, set); err != nil {
		t.Fatal(err)
	}
	al.set(appliance.NewAlert("critical", "the data array is DEGRADED"))
	n.Round(ctx)
	if st, _ := n.Notifications(ctx); !strings.Contains(st.LastError, dead) || !strings.Contains(st.LastProblem, "cannot be reached") {
		t.Errorf("after a failed send: %+v", st)
	}
	set.SMTP = plain.addr
	if err := n.SetNotifications(ctx, set); err != nil {
		t.Fatal(err)
	}
	n.Round(ctx)
	if msgs := plain.messages(); len(msgs) != 2 || !strings.Contains(msgs[1], "DEGRADED") {
		t.Errorf("the alert was not sent once the server answered: %q", msgs)
	}
}

func TestValidate(t *testing.T) {
	for _, s := range []appliance.NotifySettings{
		{SMTP: "mail.example.com", From: "a@b.example", To: []string{"c@d.example"}},
		{SMTP: "mail.example.com:587", From: "not an address", To: []string{"c@d.example"}},
		{SMTP: "mail.example.com:587", From: "a@b.example"},
		{SMTP: "mail.example.com:587", From: "a@b.example", To: []string{"c@d.example\r\nBcc: x@y.example"}},
		{Syslog: "192.0.2.5"},
	} {
		if err := Validate(&s); !errors.Is(err, appliance.ErrBadInput) {
			t.Errorf("%+v: %v", s, err)
		}
	}
	ok := appliance.NotifySettings{SMTP: "mail.example.com:587", From: " Box <a@b.example> ", To: []string{"c@d.example"}, Syslog: "192.0.2.5:514"}
	if err := Validate(&ok); err != nil || ok.From != "a@b.example" {
		t.Errorf("valid settings: %v %+v", err, ok)
	}
}

// Audit entries go to the syslog server, with their chain hash, once one is set.
func TestAuditShippedToSyslog(t *testing.T) {
	sl, logged := syslogServer(t)
	n := newNotifier(t, nil, &alerts{})
	e := appliance.AuditEntry{Time: time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC), User: "admin", Remote: "192.0.2.7", Action: "POST /api/v1/database/promote", Path: "/api/v1/database/promote", Status: 200}
	n.ShipAudit(e, "aaaa") // no syslog server yet: nothing sent, nothing blocks
	if err := n.SetNotifications(context.Background(), appliance.NotifySettings{Syslog: sl}); err != nil {
		t.Fatal(err)
	}
	n.ShipAudit(e, "bbbb")
	lines := logged()
	if len(lines) != 1 || !strings.Contains(lines[0], `user="admin"`) || !strings.Contains(lines[0], "hash=bbbb") || !strings.Contains(lines[0], "database/promote") {
		t.Errorf("syslog got %q, want one audit line with its hash", lines)
	}
}

// The mail password is sealed with the data array (state.BucketSecrets): one an older firmware kept with
// the settings still logs in while sealed and moves into the secrets once they open; a new one is refused
// while sealed; a unit whose secrets are sealed mails nothing that needs a login, says why, and still logs
// to syslog.
func TestMailPasswordSealed(t *testing.T) {
	ms := startMailServer(t, false)
	sl, logged := syslogServer(t)
	al := &alerts{}
	n := newNotifier(t, ms, al)
	ctx := context.Background()
	old := appliance.NotifySettings{SMTP: ms.addr, From: "box@office.example", To: []string{"it@office.example"}, User: "alerts", Password: "mail password", Syslog: sl}
	if err := n.Store.PutJSON(state.BucketConfig, configKey, old); err != nil {
		t.Fatal(err)
	}
	n.Store.SealBuckets(state.BucketSecrets)
	if err := n.Store.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := n.TestNotification(ctx); err != nil || len(ms.auths) != 1 {
		t.Fatalf("the older firmware's password while sealed: %v, logins %v", err, ms.auths)
	}
	set := old
	set.Password = "a new password"
	if err := n.SetNotifications(ctx, set); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("a new password while sealed = %v, want a conflict", err)
	}
	key := make([]byte, state.SealKeySize)
	if err := n.Store.Unseal(key); err != nil {
		t.Fatal(err)
	}
	if st, err := n.Notifications(ctx); err != nil || !st.PasswordSet || st.Settings.Password != "" {
		t.Fatalf("status %+v %v", st, err)
	}
	var kept appliance.NotifySettings
	if err := n.Store.GetJSON(state.BucketConfig, configKey, &kept); err != nil || kept.Password != "" || kept.User != "alerts" {
		t.Errorf("the settings after the move: %+v %v", kept, err)
	}
	if err := n.TestNotification(ctx); err != nil || len(ms.auths) != 2 {
		t.Fatalf("the moved password: %v, logins %v", err, ms.auths)
	}
	// The same store opened again: sealed until the key is given.
	path := n.Store.Path()
	n.Store.Close()
	st, err := state.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	st.SealBuckets(state.BucketSecrets)
	if err := st.Seal(); err != nil {
		t.Fatal(err)
	}
	n.Store = st
	if s, err := n.Notifications(ctx); err != nil || !s.PasswordSet {
		t.Errorf("sealed: status %+v %v (a password is set, only unreadable)", s, err)
	}
	al.set(appliance.NewAlert("critical", "the data array is LOCKED"))
	n.Round(ctx)
	s, _ := n.Notifications(ctx)
	if len(ms.messages()) != 2 || !errors.Is(n.lastErr, errLocked) || !strings.Contains(s.LastProblem, "locked") {
		t.Errorf("sealed: %d messages, status %+v", len(ms.messages()), s)
	}
	if !strings.Contains(strings.Join(logged(), "\n"), "the data array is LOCKED") {
		t.Error("sealed: the alert did not reach syslog")
	}
	if err := st.Unseal(key); err != nil {
		t.Fatal(err)
	}
	if err := n.TestNotification(ctx); err != nil || len(ms.auths) != 3 {
		t.Fatalf("unsealed again: %v, logins %v", err, ms.auths)
	}
	// Going back to a firmware that does not read the secrets: the password is with the settings again, and
	// a new one (written while not sealing, as on trial) stays there.
	if err := errors.Join(st.Clear(), n.ForOlderFirmware()); err != nil {
		t.Fatal(err)
	}
	if err := st.GetJSON(state.BucketConfig, configKey, &kept); err != nil || kept.Password != "mail password" {
		t.Errorf("for an older firmware: %+v %v", kept, err)
	}
	if _, err := st.Get(state.BucketSecrets, passwordKey); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("the secret is still kept: %v", err)
	}
	if err := n.SetNotifications(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := st.GetJSON(state.BucketConfig, configKey, &kept); err != nil || kept.Password != "mail password" {
		t.Errorf("set while not sealing: %+v %v", kept, err)
	}
	if s, err := n.Notifications(ctx); err != nil || !s.PasswordSet || s.Settings.Password != "" {
		t.Errorf("not sealing: status %+v %v", s, err)
	}
}
