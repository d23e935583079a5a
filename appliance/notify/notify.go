// Package notify sends the unit's alerts to people: by email (SMTP; STARTTLS required unless the admin
// allows a plain server on the office network) and to a remote syslog server (UDP). Long-running: Run(ctx).
package notify

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"log/syslog"
	"net"
	"net/smtp"
	"strings"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

const (
	configKey = "notify"
	// passwordKey is the mail server's password in the sealed secrets: a disk taken out does not give the
	// office's mailbox away.
	passwordKey = "notify.smtp-password"
	bucketAcks  = "alert-acks" // alert key -> appliance.AlertAck
)

// Notifier watches the alerts and sends what changed. It implements appliance.Notifications.
type Notifier struct {
	Log      *slog.Logger
	Store    *state.Store
	Alerts   func(ctx context.Context) []appliance.Alert // the unit's alerts now
	Hostname string
	Every    time.Duration // how often the alerts are looked at; 0: 30 s
	// MinGap is the least time between two emails, unless a new critical alert comes; 0: 5 minutes.
	MinGap time.Duration
	TLS    *tls.Config // base TLS settings (tests give their CA); nil: the system's roots

	mu       sync.Mutex
	mailed   map[string]appliance.Alert // by key: the alerts the last email told about
	logged   map[string]appliance.Alert // the same for syslog
	lastSent time.Time
	lastErr  error           // the last email's failure (nil once one went out)
	absent   map[string]bool // acknowledged alerts missing at the last round
}

var _ appliance.Notifications = (*Notifier)(nil)

// Run looks at the alerts every Every and notifies new and cleared ones.
func (n *Notifier) Run(ctx context.Context) error {
	every := n.Every
	if every == 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n.Round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// diff returns the alerts of cur not in before and those of before not in cur. An alert acknowledged
// before anyone was told about it is left out: nobody is told about it, neither now nor when it clears.
func diff(before map[string]appliance.Alert, cur []appliance.Alert, acks map[string]appliance.AlertAck) (added, cleared []appliance.Alert, now map[string]appliance.Alert) {
	now = map[string]appliance.Alert{}
	for _, a := range cur {
		_, told := before[a.Key]
		if _, acked := acks[a.Key]; acked && !told {
			continue
		}
		now[a.Key] = a
		if !told {
			added = append(added, a)
		}
	}
	for k, a := range before {
		if _, ok := now[k]; !ok {
			cleared = append(cleared, a)
		}
	}
	return added, cleared, now
}

// Round looks at the alerts once and sends what changed since the last message that went out.
func (n *Notifier) Round(ctx context.Context) {
	cfg, err := n.settings()
	if err != nil {
		n.Log.Error("notifications", "err", err)
		return
	}
	cur := n.Alerts(ctx)
	n.mu.Lock()
	defer n.mu.Unlock()
	acks, err := n.tidyAcks(cur, time.Now())
	if err != nil {
		n.Log.Error("alert acknowledgements", "err", err)
	}
	cur = appliance.MarkAlerts(cur, acks, time.Now())
	if cfg.SMTP == "" && cfg.Syslog == "" {
		return
	}
	if cfg.Syslog != "" {
		added, cleared, now := diff(n.logged, cur, acks)
		if err := n.syslog(cfg.Syslog, added, cleared); err != nil {
			n.Log.Warn("syslog", "server", cfg.Syslog, "err", err)
		} else {
			n.logged = now
		}
	}
	if cfg.SMTP == "" {
		return
	}
	added, cleared, now := diff(n.mailed, cur, acks)
	if len(added) == 0 && len(cleared) == 0 {
		return
	}
	gap := n.MinGap
	if gap == 0 {
		gap = 5 * time.Minute
	}
	critical := false
	for _, a := range added {
		critical = critical || a.Level == "critical"
	}
	if !critical && time.Since(n.lastSent) < gap {
		return // told at the next round after the gap, with whatever else changed
	}
	subject, body := message(n.Hostname, added, cleared, cur)
	if err := n.mail(ctx, cfg, subject, body); err != nil {
		n.lastErr = err
		n.Log.Warn("alert email not sent; retried at the next round", "err", err)
		return
	}
	n.mailed, n.lastSent, n.lastErr = now, time.Now(), nil
	n.Log.Info("alert email sent", "to", cfg.To, "new", len(added), "cleared", len(cleared))
}

// message is the email about what changed, with every current alert below.
func message(host string, added, cleared, cur []appliance.Alert) (string, string) {
	var b strings.Builder
	crit := 0
	for _, a := range added {
		if a.Level == "critical" {
			crit++
		}
	}
	subject := fmt.Sprintf("[%s] %d new alert(s), %d resolved", host, len(added), len(cleared))
	if crit > 0 {
		subject = fmt.Sprintf("[%s] CRITICAL: %d new alert(s), %d resolved", host, len(added), len(cleared))
	}
	fmt.Fprintf(&b, "The appliance %s reports:\r\n\r\n", host)
	for _, a := range added {
		fmt.Fprintf(&b, "NEW %s: %s\r\n", strings.ToUpper(a.Level), a.Message)
	}
	for _, a := range cleared {
		fmt.Fprintf(&b, "RESOLVED: %s\r\n", a.Message)
	}
	if len(cur) == 0 {
		b.WriteString("\r\nNothing is wrong now.\r\n")
	} else {
		b.WriteString("\r\nAll current alerts:\r\n")
		for _, a := range cur {
			fmt.Fprintf(&b, "- %s: %s", a.Level, a.Message)
			if a.Acknowledged != nil {
				fmt.Fprintf(&b, " (acknowledged by %s)", a.Acknowledged.By)
			}
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\nOpen the appliance's web page for details.\r\n")
	return subject, b.String()
}

// What a failed email is, for the page's sentence (mailProblem); the error keeps the server's words.
var (
	errUnreachable = errors.New("does not answer")
	errTLS         = errors.New("no encryption")
	errLogin       = errors.New("login refused")
	errLocked      = errors.New("the mail password is kept encrypted on the data array, which is not unlocked")
	errAddress     = errors.New("address refused")
)

// said is an error whose message is a sentence for the page; the error it wraps has the details.
type said struct {
	sentence string
	err      error
}

func (e said) Error() string { return e.sentence }
func (e said) Unwrap() error { return e.err }

// mailProblem says in a sentence what a failed email means and what to do.
func mailProblem(err error) string {
	switch {
	case errors.Is(err, errUnreachable):
		return "The mail server cannot be reached: check its address and port."
	case errors.Is(err, errTLS):
		return "The mail server offers no working encryption: nothing was sent. Check the server, or allow a plain server on the office network."
	case errors.Is(err, errLogin):
		return "The mail server refuses the user name or the password."
	case errors.Is(err, errLocked):
		return "The mail password is kept encrypted on the data array, which is locked: no email goes out until it is unlocked (storage page)."
	case errors.Is(err, errAddress):
		return "The mail server refuses the sender or a recipient address: check them."
	}
	return "The mail server refused the message; the unit's log says why."
}

// mail sends one message. The password never travels without TLS.
func (n *Notifier) mail(ctx context.Context, cfg appliance.NotifySettings, subject, body string) error {
	host, _, err := net.SplitHostPort(cfg.SMTP)
	if err != nil {
		return fmt.Errorf("mail server %q: %w", cfg.SMTP, err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.SMTP)
	if err != nil {
		return fmt.Errorf("mail server %s: %w: %w", cfg.SMTP, errUnreachable, err)
	}
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("mail server %s: %w: %w", cfg.SMTP, errUnreachable, err)
	}
	defer c.Close()
	if err := c.Hello(n.Hostname); err != nil {
		return fmt.Errorf("mail server %s: HELO: %w", cfg.SMTP, err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		tc := &tls.Config{}
		if n.TLS != nil {
			tc = n.TLS.Clone()
		}
		tc.ServerName = host
		if err := c.StartTLS(tc); err != nil {
			return fmt.Errorf("mail server %s: STARTTLS: %w: %w", cfg.SMTP, errTLS, err)
		}
	} else if !cfg.PlainSMTP || cfg.User != "" {
		return fmt.Errorf("mail server %s does not offer STARTTLS: nothing was sent in clear (allow a plain server only on the office network, without a password): %w", cfg.SMTP, errTLS)
	}
	if cfg.User != "" {
		pw, err := n.password()
		if err != nil {
			return fmt.Errorf("mail server %s: login as %s: %w", cfg.SMTP, cfg.User, err)
		}
		if err := c.Auth(smtp.PlainAuth("", cfg.User, pw, host)); err != nil {
			return fmt.Errorf("mail server %s: login as %s: %w: %w", cfg.SMTP, cfg.User, errLogin, err)
		}
	}
	if err := c.Mail(cfg.From); err != nil {
		return fmt.Errorf("mail server %s: sender %s: %w: %w", cfg.SMTP, cfg.From, errAddress, err)
	}
	for _, to := range cfg.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("mail server %s: recipient %s: %w: %w", cfg.SMTP, to, errAddress, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("mail server %s: %w", cfg.SMTP, err)
	}
	now := time.Now()
	fmt.Fprintf(w, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d.%s@%s>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s",
		cfg.From, strings.Join(cfg.To, ", "), subject, now.Format(time.RFC1123Z), now.UnixNano(), n.Hostname, n.Hostname, body)
	if err := w.Close(); err != nil {
		return fmt.Errorf("mail server %s: message refused: %w", cfg.SMTP, err)
	}
	return c.Quit()
}

// syslog sends a line per new alert (its level) and per cleared one (notice).
func (n *Notifier) syslog(addr string, added, cleared []appliance.Alert) error {
	if len(added) == 0 && len(cleared) == 0 {
		return nil
	}
	w, err := syslog.Dial("udp", addr, syslog.LOG_WARNING|syslog.LOG_LOCAL0, "lawbox")
	if err != nil {
		return err
	}
	defer w.Close()
	for _, a := range added {
		if a.Level == "critical" {
			err = errors.Join(err, w.Crit(a.Message))
		} else {
			err = errors.Join(err, w.Warning(a.Message))
		}
	}
	for _, a := range cleared {
		err = errors.Join(err, w.Notice("resolved: "+a.Message))
	}
	return err
}

// ShipAudit sends an audit entry and its chain hash to the syslog server, when one is set, in the
// background: a log rewritten on the unit later no longer matches what the office's server received.
func (n *Notifier) ShipAudit(e appliance.AuditEntry, hash string) {
	cfg, err := n.settings()
	if err != nil || cfg.Syslog == "" {
		return
	}
	line := fmt.Sprintf("audit time=%s user=%q remote=%s action=%q path=%q status=%d hash=%s",
		e.Time.UTC().Format(time.RFC3339Nano), e.User, e.Remote, e.Action, e.Path, e.Status, hash)
	go func() {
		w, err := syslog.Dial("udp", cfg.Syslog, syslog.LOG_NOTICE|syslog.LOG_AUTHPRIV, "lawbox")
		if err == nil {
			err = w.Notice(line)
			w.Close()
		}
		if err != nil {
			n.Log.Warn("audit entry not shipped to syslog", "err", err)
		}
	}()
}

// TestNotification sends a test email and a test syslog line now.
func (n *Notifier) TestNotification(ctx context.Context) error {
	cfg, err := n.settings()
	if err != nil {
		return err
	}
	if cfg.SMTP == "" && cfg.Syslog == "" {
		return fmt.Errorf("notifications: %w: no mail or syslog server is set", appliance.ErrConflict)
	}
	var errs []error
	if cfg.SMTP != "" {
		if err := n.mail(ctx, cfg, fmt.Sprintf("[%s] test message", n.Hostname),
			"This is a test message from the appliance "+n.Hostname+". Alerts will arrive like this.\r\n"); err != nil {
			n.Log.Warn("test email not sent", "err", err)
			errs = append(errs, said{mailProblem(err), err}) // the page shows the sentence; the log has the rest
		}
	}
	if cfg.Syslog != "" {
		if err := n.syslog(cfg.Syslog, []appliance.Alert{{Level: "warning", Message: "test message from " + n.Hostname}}, nil); err != nil {
			errs = append(errs, fmt.Errorf("syslog %s: %w", cfg.Syslog, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", appliance.ErrUnavailable, err)
	}
	return nil
}

// tidyAcks drops the acknowledgements that ended: a mute that expired (the alert is then told again, as
// new) and those of an alert that cleared (missing two rounds in a row, so that one part that could not be
// read once does not end them). It returns those left. Called with n.mu held.
func (n *Notifier) tidyAcks(cur []appliance.Alert, now time.Time) (map[string]appliance.AlertAck, error) {
	acks, err := n.AlertAcks(context.Background())
	if err != nil {
		return nil, err
	}
	present := map[string]bool{}
	for _, a := range cur {
		present[a.Key] = true
	}
	if n.absent == nil {
		n.absent = map[string]bool{}
	}
	for k, ack := range acks {
		switch {
		case !ack.Active(now):
			delete(n.mailed, k)
			delete(n.logged, k)
		case !present[k] && n.absent[k]:
		case !present[k]:
			n.absent[k] = true
			continue
		default:
			delete(n.absent, k)
			continue
		}
		delete(acks, k)
		delete(n.absent, k)
		if err := n.Store.Delete(bucketAcks, k); err != nil {
			return acks, fmt.Errorf("drop the acknowledgement of %q: %w", k, err)
		}
		n.Log.Info("alert acknowledgement ended", "alert", k, "expired", !ack.Active(now))
	}
	return acks, nil
}

// AlertAcks returns the acknowledgements by alert key.
func (n *Notifier) AlertAcks(context.Context) (map[string]appliance.AlertAck, error) {
	acks := map[string]appliance.AlertAck{}
	err := n.Store.ForEach(bucketAcks, func(k string, v []byte) error {
		var a appliance.AlertAck
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("alert acknowledgement %q: %w", k, err)
		}
		acks[k] = a
		return nil
	})
	return acks, err
}

// AcknowledgeAlert records user's acknowledgement of the current alert key, until it clears or, when mute
// is more than 0, for that long.
func (n *Notifier) AcknowledgeAlert(ctx context.Context, key, user string, mute time.Duration) error {
	if mute < 0 || mute > appliance.MaxMute {
		return fmt.Errorf("%w: an alert can be muted for %d days at most", appliance.ErrBadInput, appliance.MaxMute/(24*time.Hour))
	}
	found := false
	for _, a := range n.Alerts(ctx) {
		found = found || a.Key == key
	}
	if !found {
		return fmt.Errorf("acknowledge alert %q: %w: it is not a current alert (it may have cleared)", key, appliance.ErrNotFound)
	}
	ack := appliance.AlertAck{By: user, At: time.Now().UTC()}
	if mute > 0 {
		until := ack.At.Add(mute)
		ack.Until = &until
	}
	if err := n.Store.PutJSON(bucketAcks, key, ack); err != nil {
		return fmt.Errorf("acknowledge alert %q: %w", key, err)
	}
	n.Log.Info("alert acknowledged", "alert", key, "by", user, "mute", mute)
	return nil
}

// UnacknowledgeAlert withdraws an acknowledgement; the alert is told again at the next round.
func (n *Notifier) UnacknowledgeAlert(_ context.Context, key string) error {
	if _, err := n.Store.Get(bucketAcks, key); errors.Is(err, state.ErrNotFound) {
		return fmt.Errorf("withdraw the acknowledgement of %q: %w", key, appliance.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("withdraw the acknowledgement of %q: %w", key, err)
	}
	if err := n.Store.Delete(bucketAcks, key); err != nil {
		return fmt.Errorf("withdraw the acknowledgement of %q: %w", key, err)
	}
	n.mu.Lock()
	delete(n.mailed, key)
	delete(n.logged, key)
	n.mu.Unlock()
	n.Log.Info("alert acknowledgement withdrawn", "alert", key)
	return nil
}
