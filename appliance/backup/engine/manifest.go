package engine

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"filippo.io/age"
	"github.com/lawbox/appliance/appliance/backup/target"
)

// ManifestName is the name of a backup's manifest in its folder; a backup without one is unfinished.
const ManifestName = "manifest.age"

func (e *Engine) putManifest(ctx context.Context, t target.Target, id *age.X25519Identity, m *Manifest) error {
	if err := m.sign(id); err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() {
		aw, err := age.Encrypt(pw, id.Recipient())
		if err == nil {
			_, err = aw.Write(b)
		}
		if err == nil {
			err = aw.Close()
		}
		pw.CloseWithError(err)
	}()
	if err := t.Put(ctx, m.ID+"/"+ManifestName, pr, -1); err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("backup %s: manifest: %w", m.ID, err)
	}
	return nil
}

// mac is the manifest's authentication: encryption for the recipient proves nothing about who wrote it (the
// public key is no secret), so a manifest carries an HMAC under a key derived from the recovery identity,
// and with it the SHA-256 of every object it lists. A backup forged by someone with write access to a
// target is refused before anything of it is restored.
func (m *Manifest) mac(id *age.X25519Identity) (string, error) {
	c := *m
	c.MAC = ""
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	k := sha256.Sum256([]byte("lawbox manifest\x00" + id.String()))
	h := hmac.New(sha256.New, k[:])
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (m *Manifest) sign(id *age.X25519Identity) (err error) {
	m.MAC, err = m.mac(id)
	return err
}

// Manifests reads every finished backup's manifest on t, oldest first. Unreadable ones are reported in
// errs, not skipped silently.
func Manifests(ctx context.Context, t target.Target, id age.Identity) (ms []*Manifest, errs []error, err error) {
	keys, err := t.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range keys {
		if !strings.HasSuffix(k, "/"+ManifestName) {
			continue
		}
		m, err := ReadManifest(ctx, t, k, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Created.Before(ms[j].Created) })
	return ms, errs, nil
}

func ReadManifest(ctx context.Context, t target.Target, key string, id age.Identity) (*Manifest, error) {
	r, err := t.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	ar, err := age.Decrypt(r, id)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, decryptErr(err))
	}
	var m Manifest
	if err := json.NewDecoder(ar).Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	xid, ok := id.(*age.X25519Identity)
	if !ok {
		return nil, fmt.Errorf("%s: a recovery identity is needed to check it", key)
	}
	if want, err := m.mac(xid); err != nil || !hmac.Equal([]byte(want), []byte(m.MAC)) {
		return nil, fmt.Errorf("%s: not written by a unit holding the recovery identity (forged or altered): refused", key)
	}
	return &m, nil
}

// manifest reads the manifest of backup backupID on t with the recovery identity, which it answers too.
func (e *Engine) manifest(ctx context.Context, t target.Target, backupID string) (*Manifest, *age.X25519Identity, error) {
	id, err := e.Identity()
	if err != nil {
		return nil, nil, err
	}
	m, err := ReadManifest(ctx, t, backupID+"/"+ManifestName, id)
	if err != nil {
		return nil, nil, fmt.Errorf("backup %s: %w", backupID, err)
	}
	return m, id, nil
}
