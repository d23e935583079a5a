package luks

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// The header operations need no device-mapper: they run the real cryptsetup on a file.
func TestKeyslotsAndTokens(t *testing.T) {
	if _, err := exec.LookPath("cryptsetup"); err != nil {
		t.Skip("cryptsetup not installed (make deps)")
	}
	ctx := context.Background()
	dev := filepath.Join(t.TempDir(), "array")
	if err := os.WriteFile(dev, make([]byte, 32<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, err := Is(dev); err != nil || ok {
		t.Fatalf("blank device: Is = %v, %v", ok, err)
	}
	c := &Cryptsetup{}
	unit, recovery := []byte("0123456789abcdef0123456789abcdef"), []byte("recovery-key-of-the-sheet")
	if err := c.Format(ctx, dev, 0, unit); err != nil {
		t.Fatal(err)
	}
	if ok, err := Is(dev); err != nil || !ok {
		t.Fatalf("formatted device: Is = %v, %v", ok, err)
	}
	if err := c.Check(ctx, dev, unit); err != nil {
		t.Fatalf("the unit key: %v", err)
	}
	if err := c.Check(ctx, dev, recovery); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("a key never added: %v, want ErrWrongKey", err)
	}
	if err := c.AddKey(ctx, dev, []byte("not the key"), 1, recovery); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("adding a key with a wrong one: %v, want ErrWrongKey", err)
	}
	if err := c.AddKey(ctx, dev, unit, 1, recovery); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(ctx, dev, recovery); err != nil {
		t.Fatalf("the recovery key: %v", err)
	}
	slots, err := c.Slots(ctx, dev)
	slices.Sort(slots)
	if err != nil || !slices.Equal(slots, []int{0, 1}) {
		t.Fatalf("slots %v, %v", slots, err)
	}
	type token struct {
		Type     string   `json:"type"`
		Keyslots []string `json:"keyslots"`
		Sealed   []byte   `json:"sealed"`
	}
	var got token
	if found, err := c.Token(ctx, dev, 0, &got); err != nil || found {
		t.Fatalf("token before any: %v, %v", found, err)
	}
	for _, b := range [][]byte{{1, 2, 3}, {4, 5}} { // the second replaces the first
		if err := c.SetToken(ctx, dev, 0, token{Type: "lawbox-key", Keyslots: []string{"0"}, Sealed: b}); err != nil {
			t.Fatal(err)
		}
	}
	if found, err := c.Token(ctx, dev, 0, &got); err != nil || !found || !slices.Equal(got.Sealed, []byte{4, 5}) {
		t.Fatalf("token %+v, %v, %v", got, found, err)
	}
	if err := c.KillSlot(ctx, dev, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(ctx, dev, recovery); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("the erased recovery key: %v, want ErrWrongKey", err)
	}
	if err := c.KillSlot(ctx, dev, 0); err == nil {
		t.Fatal("erasing the last keyslot was allowed")
	}
}
