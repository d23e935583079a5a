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

// ErrSealed means a sealed value was asked for (or written) before the data array's key was given.
var ErrSealed = errors.New("sealed until the data array is open")

// sealedMagic starts every sealed value; a value without it was written before its bucket was sealed.
var sealedMagic = []byte("lawbox-sealed-1\x00")

// SealKeySize is the size of the key Unseal takes.
const SealKeySize = 32

// SealBuckets makes buckets sealed: from now on their values are written encrypted, and those already
// encrypted are unreadable (ErrSealed) until Unseal. Values still in the clear stay readable and are
// encrypted by Unseal.
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

// Unseal gives the key of the sealed buckets and encrypts the values they still hold in the clear. A value
// sealed with another key is left as it is (reading it fails).
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
	s.mu.Unlock()
	return s.update(func(tx *bolt.Tx) error {
		for name := range s.sealed {
			b := tx.Bucket([]byte(name))
			if b == nil {
				continue
			}
			clear := map[string][]byte{}
			if err := b.ForEach(func(k, v []byte) error {
				if v != nil && !bytes.HasPrefix(v, sealedMagic) {
					clear[string(k)] = append([]byte(nil), v...)
				}
				return nil
			}); err != nil {
				return err
			}
			for k, v := range clear {
				sealed, err := s.seal(name, k, v)
				if err != nil {
					return err
				}
				if err := b.Put([]byte(k), sealed); err != nil {
					return fmt.Errorf("seal %s/%s: %w", name, k, err)
				}
			}
		}
		return nil
	})
}

// seal is value as stored at bucket/key: encrypted if the bucket is sealed. s.mu is held (read).
func (s *Store) seal(bucket, key string, value []byte) ([]byte, error) {
	if !s.sealed[bucket] {
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
