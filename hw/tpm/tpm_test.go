package tpm

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// swtpm starts a software TPM 2.0 (swtpm, as QEMU's) with its state in dir and answers its socket.
func swtpm(t *testing.T, dir string) string {
	t.Helper()
	if _, err := exec.LookPath("swtpm"); err != nil {
		t.Skip("swtpm not installed (make deps)")
	}
	sock := filepath.Join(dir, "tpm.sock")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "swtpm", "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--server", "type=unixio,path="+sock, "--ctrl", "type=unixio,path="+sock+".ctrl", "--flags", "not-need-init,startup-clear")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatal("swtpm did not start")
		}
	}
}

func TestSealToThisTPMOnly(t *testing.T) {
	box := &TPM{Path: swtpm(t, t.TempDir())}
	if !box.Present() {
		t.Fatal("the TPM is not seen")
	}
	secret := []byte("the volume key of the data array")
	s, err := box.Seal(secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(s.Private, secret) || bytes.Contains(s.Public, secret) {
		t.Fatal("the sealed blob holds the secret in clear")
	}
	got, err := box.Unseal(s)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("unseal = %q, %v", got, err)
	}
	other := &TPM{Path: swtpm(t, t.TempDir())} // another box: another seed
	if got, err := other.Unseal(s); err == nil {
		t.Fatalf("another TPM unsealed it: %q", got)
	}
	if _, err := (&TPM{Path: filepath.Join(t.TempDir(), "none")}).Seal(secret); err != ErrNone {
		t.Fatalf("no TPM: %v, want ErrNone", err)
	}
}
