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
	key := bytes.Repeat([]byte{7}, SealKeySize)
	// A firmware on trial (no Seal yet) writes in the clear, key or not: the one it goes back to reads them.
	if err := s.Unseal(key); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(BucketShares, "trial", []byte("written on trial")); err != nil {
		t.Fatal(err)
	}
	if raw := rawValue(t, s, BucketShares, "trial"); string(raw) != "written on trial" {
		t.Errorf("a value written before Seal is stored %q", raw)
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	s.SealBuckets(BucketShares)
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := s.GetJSON(BucketShares, "config", &got); err != nil || got["nt_hash"] != "SECRET-HASH" {
		t.Fatalf("a value still in the clear before Unseal: %v %v", got, err)
	}
	if err := s.Put(BucketShares, "other", []byte("x")); !errors.Is(err, ErrSealed) {
		t.Errorf("a write to a sealed bucket once sealing, before Unseal = %v, want ErrSealed", err)
	}
	if err := s.Put(BucketConfig, "hostname", []byte(`"front-desk"`)); err != nil {
		t.Errorf("the other buckets are not sealed: %v", err)
	}
	if err := s.Unseal([]byte("short")); err == nil {
		t.Error("a short key was taken")
	}
	if err := s.Unseal(key); err != nil {
		t.Fatal(err)
	}
	if raw := rawValue(t, s, BucketShares, "trial"); !bytes.HasPrefix(raw, sealedMagic) {
		t.Errorf("a clear value once sealing and unsealed is stored %q", raw)
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
	}); err != nil || n != 3 {
		t.Errorf("ForEach: %d values, %v", n, err)
	}
	s.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"SECRET-HASH", "second-secret", "written on trial"} {
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
	if err := s.Clear(); !errors.Is(err, ErrSealed) {
		t.Errorf("Clear without the key = %v, want ErrSealed", err)
	}
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
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

// Going back to a firmware that may not read sealed values: Clear writes them back in the clear.
func TestClearForAnOlderFirmware(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.SealBuckets(BucketShares)
	if err := errors.Join(s.Seal(), s.Unseal(bytes.Repeat([]byte{9}, SealKeySize)), s.Put(BucketShares, "config", []byte(`{"a":1}`))); err != nil {
		t.Fatal(err)
	}
	if raw := rawValue(t, s, BucketShares, "config"); !bytes.HasPrefix(raw, sealedMagic) {
		t.Fatalf("sealing: stored %q", raw)
	}
	if err := s.Clear(); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(BucketShares, "after", []byte("new")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// As a firmware that knows nothing of sealing opens it.
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for k, want := range map[string]string{"config": `{"a":1}`, "after": "new"} {
		if v, err := s.Get(BucketShares, k); err != nil || string(v) != want {
			t.Errorf("%s after Clear: %q %v", k, v, err)
		}
	}
}

// rawValue is the value at bucket/key as stored.
func rawValue(t *testing.T, s *Store, bucket, key string) []byte {
	t.Helper()
	var out []byte
	if err := s.view(func(tx *bolt.Tx) error {
		out = append([]byte(nil), tx.Bucket([]byte(bucket)).Get([]byte(key))...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// KeepSecret keeps a password among the sealed secrets only once sealing; before, the caller keeps it.
func TestKeepSecret(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SealBuckets(BucketSecrets)
	if kept, err := s.KeepSecret("mail", "pw"); kept || err != nil {
		t.Errorf("before sealing: kept %v, %v; want the caller to keep it", kept, err)
	}
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	if kept, err := s.KeepSecret("mail", "pw"); !kept || !errors.Is(err, ErrSealed) {
		t.Errorf("sealing without the key: kept %v, %v; want ErrSealed", kept, err)
	}
	if err := s.Unseal(bytes.Repeat([]byte{3}, SealKeySize)); err != nil {
		t.Fatal(err)
	}
	if kept, err := s.KeepSecret("mail", "pw"); !kept || err != nil {
		t.Fatalf("sealing: kept %v, %v", kept, err)
	}
	if v, err := s.Secret("mail"); v != "pw" || err != nil {
		t.Errorf("Secret = %q, %v", v, err)
	}
	if kept, err := s.KeepSecret("mail", ""); !kept || err != nil {
		t.Fatal(err)
	}
	if v, err := s.Secret("mail"); v != "" || err != nil {
		t.Errorf("an emptied secret = %q, %v", v, err)
	}
}
