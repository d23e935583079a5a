package pair

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// Pairing: unit A issues a one-time code; unit B sends A a join request sealed with a key derived from the
// code (argon2id, so a captured exchange cannot be brute-forced cheaply; the code holds 80 random bits);
// A answers with the pair key and the settings, sealed the same way. Nothing in the exchange is readable or
// forgeable without the code, and the code is good for one peer and 15 minutes.

const (
	inviteFor   = 15 * time.Minute
	kindJoin    = 'J'
	kindWelcome = 'W'
)

// NewCode returns a pairing code: 16 base32 characters in four groups.
func NewCode() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	s := base32.StdEncoding.EncodeToString(b)
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
}

// codeKey derives the sealing key of a pairing exchange from the code.
func codeKey(code string) []byte {
	norm := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code))
	return argon2.IDKey([]byte(norm), []byte("lawbox pairing v1"), 2, 16<<10, 1, 32)
}

// joinRequest is B's half.
type joinRequest struct {
	Name  string    `json:"name"`
	Addrs []string  `json:"addrs"`
	Nonce []byte    `json:"nonce"`
	Time  time.Time `json:"time"`
}

// welcome is A's answer.
type welcome struct {
	Name      string   `json:"name"`
	Addrs     []string `json:"addrs"`
	Key       []byte   `json:"key"`
	Nonce     []byte   `json:"nonce"` // the request's, echoed
	Witness   string   `json:"witness"`
	Mode      string   `json:"mode"`
	VIP       string   `json:"vip"`
	Heartbeat int      `json:"heartbeat_ms"`
	Timeout   int      `json:"timeout_ms"`
}

// sealJoin encrypts v as a datagram of the given kind.
func sealJoin(key []byte, kind byte, v any) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	out := append([]byte{kind}, nonce...)
	return aead.Seal(out, nonce, plain, []byte{kind}), nil
}

var errJoinAuth = errors.New("pairing message not sealed with this code")

// openJoin decrypts a datagram of the given kind into v.
func openJoin(key []byte, b []byte, v any) error {
	aead, err := newAEAD(key)
	if err != nil {
		return err
	}
	if len(b) < 1+aead.NonceSize() {
		return errJoinAuth
	}
	nonce, ct := b[1:1+aead.NonceSize()], b[1+aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, ct, b[:1])
	if err != nil {
		return errJoinAuth
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return fmt.Errorf("decode pairing message: %w", err)
	}
	return nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	c, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(c)
}
