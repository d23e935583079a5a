package state

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestOpenMigratesAndPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Schema(); err != nil || v != SchemaVersion {
		t.Fatalf("Schema() = %d, %v, want %d", v, err, SchemaVersion)
	}
	if err := s.PutJSON(BucketConfig, "hostname", "front-desk"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(BucketConfig, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) error = %v, want ErrNotFound", err)
	}
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got string
	if err := s.GetJSON(BucketConfig, "hostname", &got); err != nil || got != "front-desk" {
		t.Errorf("after reopen GetJSON = %q, %v, want front-desk", got, err)
	}
	if err := s.Delete(BucketConfig, "hostname"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(BucketConfig, "hostname"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Delete error = %v, want ErrNotFound", err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.migrate(SchemaVersion); err != nil {
		t.Fatal(err)
	}
	// Pretend a newer firmware wrote it.
	if err := s.Put(BucketMeta, "schema", []byte{0, 0, 0, 0, 0, 0, 0, 99}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path); !errors.Is(err, ErrNewerSchema) {
		t.Errorf("Open(newer) error = %v, want ErrNewerSchema", err)
	}
}
