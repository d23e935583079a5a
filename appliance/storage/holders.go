package storage

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/storage/shamir"
	"github.com/lawbox/appliance/hw/tpm"
)

// keyHolders are who keeps secrets for this unit's disks now (none before the pair runs).
func (m *Manager) keyHolders() []appliance.KeyHolder {
	m.mu.Lock()
	f := m.holders
	m.mu.Unlock()
	if f == nil {
		return nil
	}
	return f()
}

// ask asks a holder for its secret, for at most 3 s.
func (m *Manager) ask(ctx context.Context, h appliance.KeyHolder) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	share, err := h.Share(ctx)
	if err != nil {
		m.Log.Warn("a key holder did not answer", "holder", h.Name, "err", err)
	}
	return share, err
}

// keyFrom gets the unit key from what keeps it: its clear copy, else the pieces the TPM and the network
// holders give (the whole key from any one of them when the token needs one, else that many shares
// combined). It answers why not when they do not give enough.
func (m *Manager) keyFrom(ctx context.Context, tok keyToken) ([]byte, string) {
	if tok.Clear != nil {
		return tok.Clear, ""
	}
	pieces := map[string][]byte{}
	why := "nothing holds its key"
	if tok.TPM != nil {
		switch p, err := m.unseal(*tok.TPM); {
		case errors.Is(err, tpm.ErrNone):
			why = "its key is sealed to a TPM and this box has none"
		case err != nil:
			m.Log.Error("unseal the unit key", "err", err)
			why = "this box's TPM does not open its key (the disks come from another box, or the TPM was reset)"
		default:
			pieces["tpm"] = p
			if key, ok := tok.enough(pieces); ok {
				return key, ""
			}
		}
	}
	if len(tok.Wrapped) == 0 {
		return nil, why
	}
	asked := false
	for _, h := range m.keyHolders() {
		w, ok := tok.Wrapped[h.Name]
		if !ok {
			continue
		}
		asked = true
		secret, err := m.ask(ctx, h)
		if err != nil {
			continue
		}
		p, err := unwrap(secret, w)
		if err != nil {
			m.Log.Error("a key holder's secret does not open what it keeps", "holder", h.Name, "err", err)
			continue
		}
		pieces[h.Name] = p
		if key, ok := tok.enough(pieces); ok {
			return key, ""
		}
	}
	switch {
	case !asked:
		return nil, notKnownYet
	case pieces["tpm"] != nil:
		return nil, "this box's TPM alone does not open it: the partner unit or the witness must answer too (they are not reachable from here)"
	}
	return nil, "neither the partner unit nor the witness gave its key (they are not reachable from here)"
}

func (m *Manager) unseal(s tpm.Sealed) ([]byte, error) {
	if m.TPM == nil || !m.TPM.Present() {
		return nil, tpm.ErrNone
	}
	return m.TPM.Unseal(s)
}

// enough answers the unit key when pieces (by holder) suffice: any one when the token keeps the whole key
// in each form, else Need shares.
func (t keyToken) enough(pieces map[string][]byte) ([]byte, bool) {
	if t.Need <= 1 {
		for _, p := range pieces {
			return p, true
		}
		return nil, false
	}
	if len(pieces) < t.Need {
		return nil, false
	}
	var shares []shamir.Share
	for name, p := range pieces {
		shares = append(shares, shamir.Share{X: t.X[name], Y: p})
	}
	key, err := shamir.Combine(shares)
	return key, err == nil
}

// threshold is how the unit key is kept, given whether the box has a TPM and which network holders it
// has: with a TPM and at least one of them, as shares of which two are needed (the TPM's alone does not
// unlock a unit taken away from the office, TPM and all; the partner's and the witness's together unlock
// disks moved to a new box); otherwise whole, in each form, any one of which unlocks.
func threshold(tpmHere bool, names []string) (need int, xs map[string]int) {
	if !tpmHere || len(names) == 0 {
		return 1, nil
	}
	xs = map[string]int{"tpm": 1}
	for i, n := range slices.Sorted(slices.Values(names)) {
		xs[n] = 2 + i
	}
	return 2, xs
}

func wrap(share, key []byte) ([]byte, error) {
	aead, err := holderAEAD(share)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, aead.NonceSize())
	rand.Read(iv)
	return aead.Seal(iv, iv, key, []byte("lawbox unit key")), nil
}

func unwrap(share, wrapped []byte) ([]byte, error) {
	aead, err := holderAEAD(share)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < aead.NonceSize() {
		return nil, errors.New("wrapped key too short")
	}
	return aead.Open(nil, wrapped[:aead.NonceSize()], wrapped[aead.NonceSize():], []byte("lawbox unit key"))
}

func holderAEAD(share []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(share)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// keepHeld has the unit key kept by what the unit has now, while the array is open: when the holders
// changed (the unit was just paired, the witness set, the pair left), a holder's secret changed, or the
// TPM came or went, the key is kept anew (threshold) once every holder answers. The clear copy goes once
// something keeps the key and a recovery sheet exists (losing every holder must not lose the data), and
// comes back when nothing keeps it. It looks every 10 minutes, and at once when the holders change.
func (m *Manager) keepHeld(ctx context.Context) {
	holders := m.keyHolders()
	var names []string
	for _, h := range holders {
		names = append(names, h.Name)
	}
	m.mu.Lock()
	c := m.crypt
	due := c.key != nil && (strings.Join(names, ",") != c.holders || m.Now().Sub(c.keptAt) >= 10*time.Minute)
	m.mu.Unlock()
	if !due {
		return
	}
	tpmHere := m.TPM != nil && m.TPM.Present()
	need, xs := threshold(tpmHere, names)
	tok := c.token
	fresh := max(tok.Need, 1) == need && (tok.TPM != nil) == tpmHere && len(tok.Wrapped) == len(holders)
	secrets, missing := map[string][]byte{}, false
	for _, h := range holders {
		secret, err := m.ask(ctx, h)
		if err != nil {
			missing = true
			continue
		}
		secrets[h.Name] = secret
		if _, err := unwrap(secret, tok.Wrapped[h.Name]); err != nil {
			fresh = false
		}
	}
	changed := false
	if !fresh && !missing {
		t, err := m.keep(c.key, tok, need, xs, tpmHere, secrets)
		if err != nil {
			m.Log.Error("keep the unit key", "err", err)
			return
		}
		tok, changed = t, true
	}
	held := len(tok.Wrapped) > 0 || tok.TPM != nil
	dropped, back := false, false
	switch {
	case tok.Clear != nil && held && tok.Recovery:
		tok.Clear, changed, dropped = nil, true, true
	case tok.Clear == nil && !held:
		tok.Clear, changed, back = c.key, true, true
	}
	if changed {
		if err := m.Crypt.SetToken(ctx, m.dev(Data.md), tokenID, tok); err != nil {
			m.Log.Error("save who keeps the unit key", "err", err)
			return
		}
	}
	m.mu.Lock()
	if changed {
		m.crypt.token = tok
	}
	if !missing {
		m.crypt.keptAt, m.crypt.holders = m.Now(), strings.Join(names, ",")
	} else {
		m.crypt.keptAt = m.Now() // asked again in 10 minutes, or when the holders change
	}
	m.mu.Unlock()
	if dropped {
		m.event("info", "the key of the encrypted data is now kept only by %s: a disk taken out of the unit reveals nothing", strings.Join(heldBy(tok), ", "))
	}
	if back {
		m.event("warning", "nothing keeps the key of the encrypted data any more (the unit left its pair): it is kept on the disks again, so a disk taken out is not protected")
	}
}

// keep makes the token's forms of key anew: whole or as shares (need, xs), sealed to the TPM when it is
// here and wrapped with each holder's secret. The keyslot, the clear copy and the recovery flag stay.
func (m *Manager) keep(key []byte, old keyToken, need int, xs map[string]int, tpmHere bool, secrets map[string][]byte) (keyToken, error) {
	tok := keyToken{Type: tokenType, Keyslots: old.Keyslots, Clear: old.Clear, Recovery: old.Recovery}
	pieces := map[string][]byte{"tpm": key}
	for name := range secrets {
		pieces[name] = key
	}
	if need > 1 {
		names := slices.Sorted(maps.Keys(xs))
		var at []int
		for _, n := range names {
			at = append(at, xs[n])
		}
		shares, err := shamir.Split(key, need, at)
		if err != nil {
			return keyToken{}, err
		}
		for i, n := range names {
			pieces[n] = shares[i].Y
		}
		tok.Need, tok.X = need, xs
	}
	if tpmHere {
		s, err := m.TPM.Seal(pieces["tpm"])
		if err != nil {
			return keyToken{}, fmt.Errorf("seal to the TPM: %w", err)
		}
		tok.TPM = &s
	}
	for name, secret := range secrets {
		w, err := wrap(secret, pieces[name])
		if err != nil {
			return keyToken{}, err
		}
		if tok.Wrapped == nil {
			tok.Wrapped = map[string][]byte{}
		}
		tok.Wrapped[name] = w
	}
	return tok, nil
}

// heldBy names what keeps the unit key: "tpm", then the network holders.
func heldBy(tok keyToken) []string {
	var out []string
	if tok.TPM != nil {
		out = append(out, "tpm")
	}
	return append(out, slices.Sorted(maps.Keys(tok.Wrapped))...)
}

// SetHolders tells the storage who keeps secrets for this unit's disks (the pair, once it runs).
func (m *Manager) SetHolders(f func() []appliance.KeyHolder) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.holders = f
}
