package fat

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseList(t *testing.T) {
	got := ParseList("::/EFI/Linux/lawbox-73370c4.efi\n::/EFI/Linux/lawbox-old+2-1.efi\n\n")
	if want := []string{"lawbox-73370c4.efi", "lawbox-old+2-1.efi"}; !slices.Equal(got, want) {
		t.Errorf("ParseList = %q, want %q", got, want)
	}
}

// A real FAT image: nothing on a blank one, then format, put (directories made), list, get.
func TestToolsOnAnImage(t *testing.T) {
	bin, err := exec.LookPath("mtools")
	if err != nil {
		t.Skip("mtools is not installed")
	}
	ft := Tools{Mtools: bin}
	ctx := context.Background()
	dir := t.TempDir()
	img := filepath.Join(dir, "esp.img")
	if err := os.WriteFile(img, make([]byte, 40<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ft.List(ctx, img, "/"); !errors.Is(err, ErrNoFilesystem) {
		t.Fatalf("List on a blank image = %v, want ErrNoFilesystem", err)
	}
	if err := ft.Format(ctx, img, "LAWBOX"); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "slot")
	os.WriteFile(src, []byte("firmware"), 0o600)
	for range 2 { // the second time over the first
		if err := ft.Put(ctx, img, src, "/EFI/Linux/lawbox-1.2.efi"); err != nil {
			t.Fatal(err)
		}
	}
	names, err := ft.List(ctx, img, "/EFI/Linux")
	if err != nil || !slices.Equal(names, []string{"lawbox-1.2.efi"}) {
		t.Fatalf("List = %q, %v", names, err)
	}
	back := filepath.Join(dir, "back")
	if err := ft.Get(ctx, img, "/EFI/Linux/lawbox-1.2.efi", back); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(back); string(b) != "firmware" {
		t.Errorf("Get = %q", b)
	}
	// The boot counter's renames, as systemd-boot does them, then a slot thrown away.
	if err := ft.Rename(ctx, img, "/EFI/Linux/lawbox-1.2.efi", "/EFI/Linux/lawbox-1.2+2-1.efi"); err != nil {
		t.Fatal(err)
	}
	if names, _ := ft.List(ctx, img, "/EFI/Linux"); !slices.Equal(names, []string{"lawbox-1.2+2-1.efi"}) {
		t.Fatalf("after Rename: %q", names)
	}
	if err := ft.Delete(ctx, img, "/EFI/Linux/lawbox-1.2+2-1.efi"); err != nil {
		t.Fatal(err)
	}
	if names, _ := ft.List(ctx, img, "/EFI/Linux"); len(names) != 0 {
		t.Fatalf("after Delete: %q", names)
	}
	if size, err := ft.Size(ctx, img); err != nil || size != 40<<20 {
		t.Errorf("Size = %d, %v", size, err)
	}
}
