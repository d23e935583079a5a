package storage

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/hw/luks"
	"github.com/lawbox/appliance/hw/tpm"
)

// The data array is encrypted (docs/storage.md): LUKS2 on md1, the volume group on the plaintext mapping.
// The volume key opens with the unit key (a keyslot named by the header's token), and with the recovery
// key (keyslot recoverySlot) once an admin has made the recovery sheet. The unit key is random and kept
// nowhere in the clear when a holder keeps it: the box's TPM, which seals it (hw/tpm), and the pair's
// partner unit and witness, each of which keeps a secret the unit key is wrapped with (any one of them
// opens it). A unit with no holder, or no recovery sheet yet, keeps the unit key in the token in the
// clear and says so: a disk taken out of it is then not protected.
const (
	CryptName    = "data-crypt" // /dev/mapper/data-crypt (not "lawbox-data": LVM's name for the data volume)
	tokenID      = 0
	tokenType    = "lawbox-key"
	recoverySlot = 1
	unitKeyBytes = 32
)

// Sealer keeps the unit key sealed to the box (hw/tpm).
type Sealer interface {
	Present() bool
	Seal(secret []byte) (tpm.Sealed, error)
	Unseal(s tpm.Sealed) ([]byte, error)
}

// keyToken is the LUKS2 token of the data array: which keyslot the unit key opens and who holds that key.
type keyToken struct {
	Type     string   `json:"type"`     // tokenType
	Keyslots []string `json:"keyslots"` // the unit key's slot
	// Need is how many of the forms below must be opened (0 or 1: each holds the whole key; 2: each holds
	// a share, X giving each holder's share's x).
	Need int            `json:"need,omitempty"`
	X    map[string]int `json:"x,omitempty"`
	TPM  *tpm.Sealed    `json:"tpm,omitempty"`
	// Wrapped is the unit key sealed (AES-GCM) with each network holder's secret, by holder name.
	Wrapped  map[string][]byte `json:"wrapped,omitempty"`
	Clear    []byte            `json:"clear,omitempty"` // the unit key itself, while nothing holds it or there is no recovery sheet
	Recovery bool              `json:"recovery,omitempty"`
}

func (t keyToken) slot() (int, error) {
	if t.Type != tokenType || len(t.Keyslots) != 1 {
		return 0, fmt.Errorf("the key token names %d keyslots, type %q", len(t.Keyslots), t.Type)
	}
	return strconv.Atoi(t.Keyslots[0])
}

// cryptState is the data array's encryption as this boot knows it.
type cryptState struct {
	encrypted bool
	locked    string // why the array is locked ("": it is not)
	key       []byte // the unit key, while the array is open
	token     keyToken
	triedAt   time.Time
	keptAt    time.Time // keepHeld's last look at the holders
	holders   string    // their names then
}

// notKnownYet is why the data array is locked while the pair, which knows the holders, is not running yet
// (the first pass at boot): not said as an event, since the next pass usually unlocks it.
const notKnownYet = "the units that keep its key (the partner unit, the witness) are not known to this unit"

// ErrLocked: the data array is encrypted and no holder of its key answered.
var ErrLocked = errors.New("the data array is locked")

// ErrWrongKey: the recovery key typed opens nothing.
var ErrWrongKey = fmt.Errorf("this is not the recovery key of these disks (%w)", appliance.ErrBadInput)

// pv is the device under the volume group: the plaintext of the encrypted array, or the array.
func (m *Manager) pv() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.crypt.encrypted {
		return "/dev/mapper/" + CryptName
	}
	return m.dev(Data.md)
}

// encrypt makes the new data array an encrypted one and opens it: a random unit key in keyslot 0, sealed to
// the TPM when the box has one.
func (m *Manager) encrypt(ctx context.Context, md string) error {
	key := make([]byte, unitKeyBytes)
	rand.Read(key)
	if err := m.Crypt.Format(ctx, md, 0, key); err != nil {
		return err
	}
	tok := keyToken{Type: tokenType, Keyslots: []string{"0"}}
	if err := m.protect(&tok, key); err != nil {
		return err
	}
	if err := m.Crypt.SetToken(ctx, md, tokenID, tok); err != nil {
		return err
	}
	if err := m.Crypt.Open(ctx, md, CryptName, key); err != nil {
		return err
	}
	m.mu.Lock()
	m.crypt = cryptState{encrypted: true, key: key, token: tok}
	m.mu.Unlock()
	return nil
}

// protect puts the unit key in tok: sealed to the TPM when there is one, and in the clear unless the TPM
// keeps it and a recovery sheet exists (keepHeld drops the clear copy once one of them does).
func (m *Manager) protect(tok *keyToken, key []byte) error {
	tok.TPM, tok.Clear = nil, nil
	if m.TPM != nil && m.TPM.Present() {
		s, err := m.TPM.Seal(key)
		if err != nil {
			return fmt.Errorf("seal the unit key to the TPM: %w", err)
		}
		tok.TPM = &s
	}
	if tok.TPM == nil || !tok.Recovery {
		tok.Clear = key
	}
	return nil
}

// unlock opens the encrypted data array with the unit key from its holder, if it is not open already.
// ErrLocked when no holder gives it (the reason is kept for the status).
func (m *Manager) unlock(ctx context.Context) error {
	md, start := m.dev(Data.md), time.Now()
	_, err := os.Stat("/dev/mapper/" + CryptName)
	mapped := err == nil // open already: this process restarted, or an admin opened it by hand
	if mapped && m.cryptKey() != nil {
		return nil
	}
	var tok keyToken
	found, err := m.Crypt.Token(ctx, md, tokenID, &tok)
	if err == nil && !found {
		err = errors.New("its header has no key token")
	}
	if err != nil {
		return fmt.Errorf("read the key token of %s: %w", md, err)
	}
	key, why := m.keyFrom(ctx, tok)
	if key != nil && !mapped {
		if err := m.Crypt.Open(ctx, md, CryptName, key); err != nil {
			return err
		}
		m.Log.Info("data array unlocked", "took", time.Since(start).Round(time.Millisecond))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.crypt.encrypted, m.crypt.token, m.crypt.triedAt = true, tok, m.Now()
	if key == nil {
		m.crypt.locked = why
		return ErrLocked
	}
	m.crypt.locked, m.crypt.key = "", key
	return nil
}

// saidLocked tells the console and the event log that the data is locked, and why.
func (m *Manager) saidLocked(why string) {
	m.event("critical", "the data is LOCKED: the data array is encrypted and %s. Nothing was changed on the disks. "+
		"An admin can unlock it with the recovery key on the storage page", why)
}

func (m *Manager) lockedReason() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.crypt.locked
}

func (m *Manager) cryptKey() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.crypt.key
}

// retryUnlock tries the holders again every 5 s while the data array is locked, and mounts it once open.
func (m *Manager) retryUnlock(ctx context.Context) {
	m.mu.Lock()
	retry := m.crypt.locked != "" && m.Now().Sub(m.crypt.triedAt) >= 5*time.Second
	m.mu.Unlock()
	if !retry {
		return
	}
	before := m.lockedReason()
	if err := m.unlock(ctx); err != nil {
		if !errors.Is(err, ErrLocked) {
			m.Log.Error("unlock the data array", "err", err)
		} else if now := m.lockedReason(); before == notKnownYet && now != notKnownYet {
			m.saidLocked(now)
		}
		return
	}
	m.event("info", "the data array was unlocked: its key holder answered")
	if err := m.mountArray(ctx, Data); err != nil {
		m.Log.Error("mount the data array", "err", err)
	}
}

// normalRecoveryKey is the recovery key as stored in its keyslot: the sheet's 32 letters and digits
// (base32), whatever the case, spaces and dashes typed.
func normalRecoveryKey(typed string) []byte {
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		if r != ' ' && r != '-' && r != '\t' {
			b.WriteRune(r)
		}
	}
	return []byte(b.String())
}

// Unlock opens the locked data array with the recovery key an admin typed, mounts it, and gives it a new
// unit key its holder keeps (the old one could not be had: the TPM was replaced, the disks moved), so the
// next boot unlocks by itself again.
func (m *Manager) Unlock(ctx context.Context, recovery string) error {
	m.work.Lock()
	defer m.work.Unlock()
	m.mu.Lock()
	locked, tok := m.crypt.locked != "", m.crypt.token
	m.mu.Unlock()
	if !locked {
		return fmt.Errorf("%w: the data is not locked", appliance.ErrConflict)
	}
	md, r := m.dev(Data.md), normalRecoveryKey(recovery)
	if err := m.Crypt.Check(ctx, md, r); errors.Is(err, luks.ErrWrongKey) {
		return ErrWrongKey
	} else if err != nil {
		return err
	}
	if err := m.Crypt.Open(ctx, md, CryptName, r); err != nil {
		return err
	}
	m.event("warning", "the data array was unlocked with the recovery key")
	key, err := m.rekey(ctx, tok, r)
	if err != nil {
		m.Log.Error("give the data array a new unit key", "err", err)
		m.event("critical", "the data array is open, but its key could not be given to its holder: the next start will need the recovery key again (the unit's log says why)")
	}
	m.mu.Lock()
	m.crypt.locked, m.crypt.key = "", key
	m.mu.Unlock()
	return m.mountArray(ctx, Data)
}

// rekey gives the data array a new unit key in a free keyslot, proven with proof (the recovery key),
// has its holder keep it, then erases the old one. A power cut anywhere leaves a key that opens it: the
// token names the old slot until the new one is in place, and the recovery key's slot is not touched.
func (m *Manager) rekey(ctx context.Context, old keyToken, proof []byte) ([]byte, error) {
	md := m.dev(Data.md)
	slots, err := m.Crypt.Slots(ctx, md)
	if err != nil {
		return nil, err
	}
	used := map[int]bool{}
	for _, s := range slots {
		used[s] = true
	}
	free := 0
	for used[free] || free == recoverySlot {
		free++
	}
	key := make([]byte, unitKeyBytes)
	rand.Read(key)
	if err := m.Crypt.AddKey(ctx, md, proof, free, key); err != nil {
		return nil, err
	}
	tok := keyToken{Type: tokenType, Keyslots: []string{strconv.Itoa(free)}, Recovery: old.Recovery}
	m.mu.Lock()
	m.crypt.keptAt, m.crypt.holders = time.Time{}, "-" // the network holders wrap the new key at the next pass
	m.mu.Unlock()
	if err := m.protect(&tok, key); err != nil {
		return nil, err
	}
	if err := m.Crypt.SetToken(ctx, md, tokenID, tok); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.crypt.token = tok
	m.mu.Unlock()
	if s, err := old.slot(); err == nil && s != free && s != recoverySlot && used[s] {
		if err := m.Crypt.KillSlot(ctx, md, s); err != nil {
			m.Log.Error("erase the old unit key", "err", err)
		}
	}
	return key, nil
}

// recoveryAlphabet writes the recovery key: base32 without padding, capital letters and the digits 2 to 7
// (no 0 or 1 to be read as O or I from paper).
var recoveryAlphabet = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewRecoveryKey makes a new recovery key for the data array (160 random bits) and puts it in the
// recovery keyslot, replacing the one before: it is shown once, for the recovery sheet, and kept nowhere
// else. Groups of four, for reading aloud.
func (m *Manager) NewRecoveryKey(ctx context.Context) (string, error) {
	m.work.Lock()
	defer m.work.Unlock()
	m.mu.Lock()
	key, tok := m.crypt.key, m.crypt.token
	m.mu.Unlock()
	if key == nil {
		return "", fmt.Errorf("%w: the data array is not encrypted, or it is locked", appliance.ErrConflict)
	}
	raw := make([]byte, 20)
	rand.Read(raw)
	r := recoveryAlphabet.EncodeToString(raw)
	md := m.dev(Data.md)
	slots, err := m.Crypt.Slots(ctx, md)
	if err != nil {
		return "", err
	}
	for _, s := range slots {
		if s == recoverySlot {
			if err := m.Crypt.KillSlot(ctx, md, recoverySlot); err != nil {
				return "", err
			}
		}
	}
	if err := m.Crypt.AddKey(ctx, md, key, recoverySlot, []byte(r)); err != nil {
		return "", err
	}
	if !tok.Recovery {
		tok.Recovery = true
		if err := m.Crypt.SetToken(ctx, md, tokenID, tok); err != nil {
			return "", err
		}
		m.mu.Lock()
		m.crypt.token = tok
		m.crypt.keptAt = time.Time{} // the clear copy of the unit key may go now (keepHeld)
		m.mu.Unlock()
	}
	m.event("info", "a new recovery key was made for the data array; the one before no longer opens it")
	var groups []string
	for i := 0; i < len(r); i += 4 {
		groups = append(groups, r[i:min(i+4, len(r))])
	}
	return strings.Join(groups, "-"), nil
}

// status is what the status shows of the data array's encryption.
func (c cryptState) status() appliance.Encryption {
	e := appliance.Encryption{State: "none", RecoveryKey: c.token.Recovery}
	switch {
	case !c.encrypted:
		return e
	case c.locked != "":
		e.State, e.Reason = "locked", c.locked
	default:
		e.State = "open"
	}
	e.KeyHolders, e.KeyOnDisks = heldBy(c.token), c.token.Clear != nil
	if len(e.KeyHolders) > 0 {
		e.KeysNeeded = max(c.token.Need, 1)
	}
	return e
}

// encryptionAlerts says what the office must do about the encryption.
func encryptionAlerts(e appliance.Encryption) []appliance.Alert {
	var out []appliance.Alert
	switch {
	case e.State == "locked":
		a := appliance.NewAlert("critical", "the data is locked: the data array is encrypted and %s; unlock it with the recovery key", e.Reason)
		a.Page = "/storage"
		out = append(out, a)
	case e.State == "open" && e.KeyOnDisks && len(e.KeyHolders) == 0:
		out = append(out, appliance.NewAlert("warning", "the data array is encrypted, but its key is kept on the disks themselves: a disk taken out of the unit is not protected (no TPM, partner unit or witness keeps it)"))
	case e.State == "open" && e.KeyOnDisks:
		a := appliance.NewAlert("warning", "the data array's key is also kept on the disks until a recovery sheet is made: make the recovery sheet on the storage page (a disk taken out is not protected meanwhile)")
		a.Page = "/storage"
		return append(out, a)
	}
	if e.State == "open" && !e.RecoveryKey {
		a := appliance.NewAlert("warning", "no recovery sheet has been made for the encrypted data: make one on the storage page and keep it somewhere safe")
		a.Page = "/storage"
		out = append(out, a)
	}
	return out
}
