package state

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestSealedBuckets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// Written before the bucket was sealed (an older firmware): in the clear.
	if err := s.PutJSON(BucketShares, "config", map[string]string{"nt_hash": "SECRET-HASH"}); err != nil {
		t.Fatal(err)
	}
	s.SealBuckets(BucketShares)
	var got map[string]string
	if err := s.GetJSON(BucketShares, "config", &got); err != nil || got["nt_hash"] != "SECRET-HASH" {
		t.Fatalf("a value still in the clear before Unseal: %v %v", got, err)
	}
	if err := s.Put(BucketShares, "other", []byte("x")); !errors.Is(err, ErrSealed) {
		t.Errorf("a write to a sealed bucket before Unseal = %v, want ErrSealed", err)
	}
	if err := s.Put(BucketConfig, "hostname", []byte(`"front-desk"`)); err != nil {
		t.Errorf("the other buckets are not sealed: %v", err)
	}
	if err := s.Unseal([]byte("short")); err == nil {
		t.Error("a short key was taken")
	}
	key := bytes.Repeat([]byte{7}, SealKeySize)
	if err := s.Unseal(key); err != nil {
		t.Fatal(err)
	}
	if err := s.GetJSON(BucketShares, "config", &got); err != nil || got["nt_hash"] != "SECRET-HASH" {
		t.Fatalf("after Unseal: %v %v", got, err)
	}
	if err := s.Put(BucketShares, "other", []byte("second-secret")); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s.ForEach(BucketShares, func(k string, v []byte) error {
		n++
		if bytes.HasPrefix(v, sealedMagic) {
			t.Errorf("ForEach gave %s sealed", k)
		}
		return nil
	}); err != nil || n != 2 {
		t.Errorf("ForEach: %d values, %v", n, err)
	}
	s.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"SECRET-HASH", "second-secret"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the database file holds %q in the clear", secret)
		}
	}
	if !bytes.Contains(raw, []byte("front-desk")) {
		t.Fatal("the search finds nothing, not even the unsealed bucket's value")
	}

	// Reopened: unreadable until the key is given again; another key does not open it.
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SealBuckets(BucketShares)
	if _, err := s.Get(BucketShares, "config"); !errors.Is(err, ErrSealed) {
		t.Errorf("a sealed value before Unseal = %v, want ErrSealed", err)
	}
	if err := s.ForEach(BucketShares, func(string, []byte) error { return nil }); !errors.Is(err, ErrSealed) {
		t.Errorf("ForEach over a sealed bucket before Unseal = %v, want ErrSealed", err)
	}
	if err := s.Unseal(bytes.Repeat([]byte{8}, SealKeySize)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(BucketShares, "config"); err == nil {
		t.Error("another key opened the sealed value")
	}
	if err := s.Unseal(key); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(BucketShares, "other"); err != nil || string(v) != "second-secret" {
		t.Errorf("with its key again: %q %v", v, err)
	}
	// A sealed value moved to another key's place does not open there (bound to bucket and key).
	sealed, err := s.handle().Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	moved := append([]byte(nil), sealed.Bucket([]byte(BucketShares)).Get([]byte("other"))...)
	sealed.Rollback()
	if err := s.update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(BucketShares)).Put([]byte("config"), moved) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(BucketShares, "config"); err == nil {
		t.Error("a sealed value opened under another key's name")
	}
}
