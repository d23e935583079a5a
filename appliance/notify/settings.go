package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strings"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

// settings are the notification settings; the mail password is not among them (password).
func (n *Notifier) settings() (appliance.NotifySettings, error) {
	var cfg appliance.NotifySettings
	if err := n.Store.GetJSON(state.BucketConfig, configKey, &cfg); err != nil && !errors.Is(err, state.ErrNotFound) {
		return cfg, fmt.Errorf("notification settings: %w", err)
	}
	if cfg.Password != "" && n.Store.Sealing() { // kept with the settings (an older firmware, or one on trial)
		if err := n.keepPassword(cfg, cfg.Password); err != nil && !errors.Is(err, errSealed) { // sealed: moved once unlocked
			n.Log.Error("notification settings: the mail password stays with the settings", "err", err)
		}
	}
	cfg.Password = ""
	return cfg, nil
}

// password is the mail server's password: among the sealed secrets (state.BucketSecrets), or with the
// settings where an older firmware or one on trial keeps it.
func (n *Notifier) password() (string, error) {
	var cfg appliance.NotifySettings
	if err := n.Store.GetJSON(state.BucketConfig, configKey, &cfg); err == nil && cfg.Password != "" {
		return cfg.Password, nil
	}
	pw, err := n.Store.Secret(passwordKey)
	if errors.Is(err, state.ErrSealed) {
		return "", errLocked
	}
	return pw, err
}

// keepPassword stores cfg and the mail password pw: among the sealed secrets once the store seals them,
// else with the settings, where a firmware this one may go back to reads it.
func (n *Notifier) keepPassword(cfg appliance.NotifySettings, pw string) error {
	sealed, err := n.Store.KeepSecret(passwordKey, pw)
	if errors.Is(err, state.ErrSealed) {
		return errSealed
	}
	cfg.Password = pw
	if sealed {
		cfg.Password = ""
	}
	if err == nil {
		err = n.Store.PutJSON(state.BucketConfig, configKey, cfg)
	}
	if err != nil {
		return fmt.Errorf("save notification settings: %w", err)
	}
	return nil
}

// ForOlderFirmware puts the mail password back with the settings once the store no longer seals (its
// Clear): before the unit goes back to a firmware that does not read the sealed secrets.
func (n *Notifier) ForOlderFirmware() error {
	pw, err := n.password()
	if err != nil {
		return err
	}
	var cfg appliance.NotifySettings
	if err := n.Store.GetJSON(state.BucketConfig, configKey, &cfg); errors.Is(err, state.ErrNotFound) {
		return nil
	} else if err != nil {
		return fmt.Errorf("notification settings: %w", err)
	}
	return n.keepPassword(cfg, pw)
}

// Notifications returns the settings without the password, and how sending went.
func (n *Notifier) Notifications(context.Context) (appliance.NotifyStatus, error) {
	cfg, err := n.settings()
	if err != nil {
		return appliance.NotifyStatus{}, err
	}
	pw, err := n.password()
	st := appliance.NotifyStatus{PasswordSet: pw != "" || errors.Is(err, errLocked)}
	if cfg.To == nil {
		cfg.To = []string{}
	}
	st.Settings = cfg
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.lastSent.IsZero() {
		t := n.lastSent
		st.LastSent = &t
	}
	if n.lastErr != nil {
		st.LastError, st.LastProblem = n.lastErr.Error(), mailProblem(n.lastErr)
	}
	return st, nil
}

// errSealed refuses a new mail password while the data array, which keeps it, is locked.
var errSealed = fmt.Errorf("%w: the mail password is kept encrypted on the data array, which is not unlocked yet: unlock it on the storage page first", appliance.ErrConflict)

// SetNotifications checks and stores the settings; an empty password keeps the stored one.
func (n *Notifier) SetNotifications(_ context.Context, s appliance.NotifySettings) error {
	if err := Validate(&s); err != nil {
		return err
	}
	pw := s.Password
	if s.User == "" {
		pw = ""
	} else if pw == "" { // an empty one keeps the stored one
		var err error
		if pw, err = n.password(); errors.Is(err, errLocked) {
			return errSealed
		} else if err != nil {
			return err
		}
	}
	if err := n.keepPassword(s, pw); err != nil {
		return err
	}
	n.Log.Info("notification settings changed", "smtp", s.SMTP, "to", s.To, "syslog", s.Syslog)
	return nil
}

// Validate says what is wrong with settings, and tidies them (addresses trimmed).
func Validate(s *appliance.NotifySettings) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", appliance.ErrBadInput, fmt.Sprintf(format, args...))
	}
	hostPort := func(what, v string) error {
		h, p, err := net.SplitHostPort(v)
		if err != nil || h == "" || p == "" || strings.ContainsAny(v, " \r\n") {
			return bad("%s %q: give host:port, e.g. mail.example.com:587", what, v)
		}
		return nil
	}
	if s.SMTP != "" {
		if err := hostPort("mail server", s.SMTP); err != nil {
			return err
		}
		addr := func(v string) (string, error) {
			a, err := mail.ParseAddress(strings.TrimSpace(v))
			if err != nil || strings.ContainsAny(a.Address, "\r\n") {
				return "", bad("address %q is not an email address", v)
			}
			return a.Address, nil
		}
		var err error
		if s.From, err = addr(s.From); err != nil {
			return err
		}
		if len(s.To) == 0 || len(s.To) > 20 {
			return bad("give 1 to 20 recipients")
		}
		for i := range s.To {
			if s.To[i], err = addr(s.To[i]); err != nil {
				return err
			}
		}
		if s.PlainSMTP && s.User != "" {
			return bad("a password is never sent to a mail server without STARTTLS: clear the user or the plain option")
		}
	}
	if s.Syslog != "" {
		if err := hostPort("syslog server", s.Syslog); err != nil {
			return err
		}
	}
	return nil
}
