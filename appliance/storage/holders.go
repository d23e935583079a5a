package storage

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
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

// fromHolders asks the network holders that wrapped the unit key for their secrets until one opens it.
func (m *Manager) fromHolders(ctx context.Context, tok keyToken) ([]byte, string) {
	holders := m.keyHolders()
	var names []string
	for _, h := range holders {
		w, ok := tok.Wrapped[h.Name]
		if !ok {
			continue
		}
		names = append(names, h.Name)
		share, err := m.ask(ctx, h)
		if err != nil {
			continue
		}
		key, err := unwrap(share, w)
		if err != nil {
			m.Log.Error("a key holder's secret does not open the unit key", "holder", h.Name, "err", err)
			continue
		}
		return key, ""
	}
	if len(names) == 0 {
		return nil, notKnownYet
	}
	return nil, "neither the partner unit nor the witness gave its key (they are not reachable from here)"
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

// keepHeld has the network holders keep the unit key while the array is open: a holder that does not
// keep it yet (the unit was just paired, or the witness was set) or whose secret changed wraps it again,
// and a holder gone (unpaired) is dropped. The key leaves the token's clear copy once something keeps it
// and a recovery sheet exists (losing every holder must not lose the data), and comes back there when
// nothing keeps it any more. It looks every 10 minutes, and at once when the holders change.
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
	tok := c.token
	tok.Wrapped = maps.Clone(tok.Wrapped)
	if tok.Wrapped == nil {
		tok.Wrapped = map[string][]byte{}
	}
	changed := false
	present := map[string]bool{}
	for _, h := range holders {
		present[h.Name] = true
		share, err := m.ask(ctx, h)
		if err != nil {
			continue
		}
		if k, err := unwrap(share, tok.Wrapped[h.Name]); err == nil && bytes.Equal(k, c.key) {
			continue
		}
		w, err := wrap(share, c.key)
		if err != nil {
			m.Log.Error("wrap the unit key", "holder", h.Name, "err", err)
			continue
		}
		tok.Wrapped[h.Name], changed = w, true
	}
	for name := range tok.Wrapped {
		if !present[name] {
			delete(tok.Wrapped, name)
			changed = true
		}
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
	m.crypt.keptAt, m.crypt.holders = m.Now(), strings.Join(names, ",")
	m.mu.Unlock()
	if dropped {
		m.event("info", "the key of the encrypted data is now kept only by %s: a disk taken out of the unit reveals nothing", strings.Join(heldBy(tok), ", "))
	}
	if back {
		m.event("warning", "nothing keeps the key of the encrypted data any more (the unit left its pair): it is kept on the disks again, so a disk taken out is not protected")
	}
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
