package state

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The store is on the system array, which is not encrypted. What only a unit whose data array is open
// needs (the file accounts' NT hashes, which SMB takes as the password itself) is kept in sealed buckets:
// each value encrypted (AES-256-GCM, bound to its bucket and key) with a key kept on the data array. A disk
// taken out holds those values only as ciphertext, exactly as protected as the data.

// ErrSealed means a sealed value was asked for (or one written, once sealing) before the data array's key
// was given.
var ErrSealed = errors.New("sealed until the data array is open")

// sealedMagic starts every sealed value; a value without it was written before its bucket was sealed.
var sealedMagic = []byte("lawbox-sealed-1\x00")

// SealKeySize is the size of the key Unseal takes.
const SealKeySize = 32

// SealBuckets names the sealed buckets. Their values are written in the clear until Seal, and read as they
// are stored: a sealed value needs the key (Unseal), a clear one does not.
func (s *Store) SealBuckets(buckets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sealed == nil {
		s.sealed = map[string]bool{}
	}
	for _, b := range buckets {
		s.sealed[b] = true
	}
}

// Seal says the running firmware is kept (not on trial: a firmware it could go back to by itself would not
// read sealed values): from now on the sealed buckets' values are written encrypted (ErrSealed until the
// key is given), and those still in the clear are encrypted as soon as the key is there.
func (s *Store) Seal() error {
	s.mu.Lock()
	s.sealing = true
	ready := s.aead != nil
	s.mu.Unlock()
	if !ready {
		return nil
	}
	return s.sealClear()
}

// Sealing reports whether new values of the sealed buckets are written encrypted (Seal).
func (s *Store) Sealing() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sealing
}

// Unseal gives the key of the sealed buckets, and encrypts the values they still hold in the clear once
// Seal was called. A value sealed with another key is left as it is (reading it fails).
func (s *Store) Unseal(key []byte) error {
	if len(key) != SealKeySize {
		return fmt.Errorf("unseal the state: the key is %d bytes, want %d", len(key), SealKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("unseal the state: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("unseal the state: %w", err)
	}
	s.mu.Lock()
	s.aead = aead
	sealing := s.sealing
	s.mu.Unlock()
	if !sealing {
		return nil
	}
	return s.sealClear()
}

// Clear writes every sealed value back in the clear and stops sealing: before the unit restarts into a
// firmware that may not read them (going back to the previous one). It needs the key.
func (s *Store) Clear() error {
	s.mu.Lock()
	s.sealing = false
	s.mu.Unlock()
	return s.rewrite(func(bucket, k string, v []byte) ([]byte, error) {
		if !bytes.HasPrefix(v, sealedMagic) {
			return nil, nil
		}
		return s.open(bucket, k, v)
	})
}

// sealClear encrypts the values the sealed buckets still hold in the clear.
func (s *Store) sealClear() error {
	return s.rewrite(func(bucket, k string, v []byte) ([]byte, error) {
		if bytes.HasPrefix(v, sealedMagic) {
			return nil, nil
		}
		return s.seal(bucket, k, v)
	})
}

// rewrite replaces, in one transaction, each value of the sealed buckets for which f gives a new one.
func (s *Store) rewrite(f func(bucket, k string, v []byte) ([]byte, error)) error {
	return s.update(func(tx *bolt.Tx) error {
		for name := range s.sealed {
			b := tx.Bucket([]byte(name))
			if b == nil {
				continue
			}
			next := map[string][]byte{}
			if err := b.ForEach(func(k, v []byte) error {
				if v == nil {
					return nil
				}
				nv, err := f(name, string(k), v)
				if nv != nil {
					next[string(k)] = nv
				}
				return err
			}); err != nil {
				return err
			}
			for k, v := range next {
				if err := b.Put([]byte(k), v); err != nil {
					return fmt.Errorf("rewrite %s/%s: %w", name, k, err)
				}
			}
		}
		return nil
	})
}

// KeepSecret keeps value (a password) under name among the sealed secrets (BucketSecrets) once the store
// seals, and reports that it did; before that it removes any kept there, and the caller keeps value with its
// settings, where a firmware the unit may go back to reads it. An empty value is removed.
func (s *Store) KeepSecret(name, value string) (bool, error) {
	switch {
	case !s.Sealing():
		return false, s.Delete(BucketSecrets, name)
	case value == "":
		return true, s.Delete(BucketSecrets, name)
	}
	return true, s.Put(BucketSecrets, name, []byte(value))
}

// Secret is the value kept under name among the sealed secrets: "" when there is none, ErrSealed while it
// is sealed and the key not given.
func (s *Store) Secret(name string) (string, error) {
	v, err := s.Get(BucketSecrets, name)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return string(v), err
}

// seal is value as stored at bucket/key: encrypted if the bucket is sealed. s.mu is held (read).
func (s *Store) seal(bucket, key string, value []byte) ([]byte, error) {
	if !s.sealed[bucket] || !s.sealing {
		return value, nil
	}
	if s.aead == nil {
		return nil, fmt.Errorf("put %s/%s: %w", bucket, key, ErrSealed)
	}
	out := append([]byte(nil), sealedMagic...)
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("put %s/%s: %w", bucket, key, err)
	}
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, value, []byte(bucket+"/"+key)), nil
}

// open is the stored value v of bucket/key in the clear. s.mu is held (read).
func (s *Store) open(bucket, key string, v []byte) ([]byte, error) {
	if !s.sealed[bucket] || !bytes.HasPrefix(v, sealedMagic) {
		return v, nil
	}
	if s.aead == nil {
		return nil, fmt.Errorf("get %s/%s: %w", bucket, key, ErrSealed)
	}
	v = v[len(sealedMagic):]
	n := s.aead.NonceSize()
	if len(v) < n {
		return nil, fmt.Errorf("get %s/%s: the sealed value is truncated", bucket, key)
	}
	out, err := s.aead.Open(nil, v[:n], v[n:], []byte(bucket+"/"+key))
	if err != nil {
		return nil, fmt.Errorf("get %s/%s: sealed with another key (the data array's key file was replaced): %w", bucket, key, err)
	}
	return out, nil
}
