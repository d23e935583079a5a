package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// TOTP (RFC 6238): HMAC-SHA1, 30-second steps, 6 digits, one step of clock drift either way.
const (
	totpStep   = 30
	totpDigits = 1000000
	totpIssuer = "Lawbox"
)

// totpCode is the code of secret for a time step.
func totpCode(secret []byte, step int64) int {
	m := hmac.New(sha1.New, secret)
	binary.Write(m, binary.BigEndian, step)
	h := m.Sum(nil)
	off := h[len(h)-1] & 0x0f
	return int(binary.BigEndian.Uint32(h[off:off+4])&0x7fffffff) % totpDigits
}

var totpEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// totpCheck says whether code is right for the base32 secret around now, and for which step.
func totpCheck(secret, code string, now time.Time) (int64, bool) {
	key, err := totpEncoding.DecodeString(secret)
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if err != nil || len(code) != 6 {
		return 0, false
	}
	want, err := strconv.Atoi(code)
	if err != nil {
		return 0, false
	}
	t := now.Unix() / totpStep
	for _, step := range []int64{t, t - 1, t + 1} {
		if subtle.ConstantTimeEq(int32(totpCode(key, step)), int32(want)) == 1 {
			return step, true
		}
	}
	return 0, false
}

// BeginTOTP makes a new secret for name, pending until ConfirmTOTP.
func (a *Auth) BeginTOTP(name string) (string, string, error) {
	key := make([]byte, 20)
	rand.Read(key)
	secret := totpEncoding.EncodeToString(key)
	err := a.editUser(name, func(u *user) error {
		u.TOTPPending = secret
		return nil
	})
	if err != nil {
		return "", "", err
	}
	uri := (&url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + totpIssuer + ":" + name,
		RawQuery: url.Values{"secret": {secret}, "issuer": {totpIssuer}}.Encode()}).String()
	return secret, uri, nil
}

// ConfirmTOTP turns the pending secret on when code is right for it.
func (a *Auth) ConfirmTOTP(name, code string) error {
	err := a.editUser(name, func(u *user) error {
		if u.TOTPPending == "" {
			return fmt.Errorf("second factor of %s: %w: start the setup first", name, appliance.ErrConflict)
		}
		if _, ok := totpCheck(u.TOTPPending, code, a.now()); !ok {
			return fmt.Errorf("%w: the code does not match: check the authenticator app's clock and try the next code", appliance.ErrBadInput)
		}
		u.TOTP, u.TOTPPending = u.TOTPPending, ""
		return nil
	})
	if err == nil {
		a.log.Info("second factor on", "user", name)
	}
	return err
}

// DisableTOTP turns name's second factor off.
func (a *Auth) DisableTOTP(name string) error {
	err := a.editUser(name, func(u *user) error {
		u.TOTP, u.TOTPPending = "", ""
		return nil
	})
	if err == nil {
		a.log.Warn("second factor off", "user", name)
	}
	return err
}
