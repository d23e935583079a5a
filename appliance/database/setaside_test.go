package database

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/lawbox/appliance/appliance"
)

// Clusters moved aside are listed with their size and date; only such a directory can be deleted, by
// its listed name.
func TestSetAsideClusters(t *testing.T) {
	root := t.TempDir()
	m := &Manager{DataDir: filepath.Join(root, "main"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, d := range []string{"main/base", "main.previous-20261101-020304/base", "main.previous-20261120-101010/base", "other"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "main.previous-20261120-101010/base/1"), make([]byte, 3000), 0o600); err != nil {
		t.Fatal(err)
	}
	aside, err := m.setAside()
	if err != nil || len(aside) != 2 || aside[0].Name != "main.previous-20261101-020304" || aside[1].SizeBytes != 3000 ||
		aside[1].Created.Format("2006-01-02 15:04:05") != "2026-11-20 10:10:10" {
		t.Fatalf("set aside = %+v, %v", aside, err)
	}
	ctx := context.Background()
	for _, bad := range []string{"main", "other", "../main.previous-20261101-020304", "main.previous-20261101-020304/base", "x.previous-20261101-020304", ""} {
		if err := m.DeleteSetAside(ctx, bad); !errors.Is(err, appliance.ErrBadInput) {
			t.Errorf("delete %q: %v", bad, err)
		}
	}
	if err := m.DeleteSetAside(ctx, "main.previous-20260101-000000"); !errors.Is(err, appliance.ErrNotFound) {
		t.Errorf("delete a missing one: %v", err)
	}
	if err := m.DeleteSetAside(ctx, "main.previous-20261120-101010"); err != nil {
		t.Fatal(err)
	}
	if aside, _ := m.setAside(); len(aside) != 1 {
		t.Errorf("after the delete: %+v", aside)
	}
	for _, d := range []string{"main/base", "other", "main.previous-20261101-020304"} {
		if _, err := os.Stat(filepath.Join(root, d)); err != nil {
			t.Errorf("%s is gone: %v", d, err)
		}
	}
}
