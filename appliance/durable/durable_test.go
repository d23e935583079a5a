package durable

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := WriteFile(p, strings.NewReader("old"), nil); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, strings.NewReader("new"), func(*os.File) error { return errors.New("chown refused") }); err == nil {
		t.Fatal("a failed chown was not reported")
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "old" {
		t.Fatalf("after a failed write: %q %v, want the old content", b, err)
	}
	if _, err := os.Stat(p + Partial); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the partial file was left behind: %v", err)
	}
	if err := WriteFile(p, strings.NewReader("new"), nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Fatalf("content %q", b)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x"), strings.NewReader("x"), nil); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("write into a missing directory: %v", err)
	}
}
