package storage

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestStateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", StateKeyFile)
	made, err := stateKey(path)
	if err != nil || len(made) != 32 || bytes.Equal(made, make([]byte, 32)) {
		t.Fatalf("made %x, %v", made, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the key file: %v %v", fi, err)
	}
	again, err := stateKey(path)
	if err != nil || !bytes.Equal(again, made) {
		t.Fatalf("read back %x, %v; want the key made", again, err)
	}
	if err := os.WriteFile(path, []byte("torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := stateKey(path); err == nil {
		t.Error("a key file of the wrong size was taken")
	}
	if b, _ := os.ReadFile(path); string(b) != "torn" {
		t.Errorf("a key file of the wrong size was replaced: %q (the values sealed with it would be lost)", b)
	}
}
