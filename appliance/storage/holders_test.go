package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/hw/luks"
	"github.com/lawbox/appliance/hw/tpm"
)

// box is a TPM for the decisions' tests: it seals to its own name, and another box refuses its blobs.
type box struct{ name string }

func (b *box) Present() bool { return b != nil }
func (b *box) Seal(s []byte) (tpm.Sealed, error) {
	return tpm.Sealed{Public: []byte(b.name), Private: bytes.Clone(s)}, nil
}
func (b *box) Unseal(s tpm.Sealed) ([]byte, error) {
	if string(s.Public) != b.name {
		return nil, errors.New("not sealed by this TPM")
	}
	return s.Private, nil
}

// holder answers its secret while up.
type holder struct {
	secret []byte
	up     bool
}

func (h *holder) share(context.Context) ([]byte, error) {
	if !h.up {
		return nil, errors.New("no answer")
	}
	return h.secret, nil
}

// The unit key kept by the TPM and the pair, on a real LUKS2 header (a file; cryptsetup on this machine):
// whole in each form without a TPM, as two-of-three shares with one; the clear copy dropped once a
// recovery sheet exists and back when nothing keeps it.
func TestKeptByTheTPMAndThePair(t *testing.T) {
	if _, err := exec.LookPath("cryptsetup"); err != nil {
		t.Skip("cryptsetup not installed (make deps)")
	}
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, Data.md), make([]byte, 32<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{0x42}, unitKeyBytes)
	m := &Manager{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DevRoot: dir, Crypt: &luks.Cryptsetup{}}
	m.init()
	if err := m.Crypt.Format(ctx, m.dev(Data.md), 0, key); err != nil {
		t.Fatal(err)
	}
	tok := keyToken{Type: tokenType, Keyslots: []string{"0"}, Clear: key}
	m.crypt = cryptState{encrypted: true, key: key, token: tok}
	partner, witness := &holder{bytes.Repeat([]byte{1}, 32), true}, &holder{bytes.Repeat([]byte{2}, 32), true}
	paired := func() []appliance.KeyHolder {
		return []appliance.KeyHolder{{Name: "partner", Share: partner.share}, {Name: "witness", Share: witness.share}}
	}
	m.SetHolders(paired)
	pass := func() keyToken { // keepHeld, at once
		t.Helper()
		m.crypt.keptAt = time.Time{}
		m.keepHeld(ctx)
		var onDisk keyToken
		if found, err := m.Crypt.Token(ctx, m.dev(Data.md), tokenID, &onDisk); err != nil || !found {
			t.Fatalf("token: %v %v", found, err)
		}
		return onDisk
	}
	open := func(tok keyToken, want string) {
		t.Helper()
		got, why := m.keyFrom(ctx, tok)
		if want == "" && !bytes.Equal(got, key) {
			t.Fatalf("the unit key was not had: %q", why)
		}
		if want != "" && (got != nil || !strings.Contains(why, want)) {
			t.Fatalf("key %x, why %q; want locked: %q", got, why, want)
		}
	}
	noClear := func(tok keyToken) keyToken { tok.Clear = nil; return tok }

	tok = pass()
	if tok.Need > 1 || len(tok.Wrapped) != 2 || tok.Clear == nil {
		t.Fatalf("paired, no TPM, no recovery sheet: %+v", tok)
	}
	m.crypt.token.Recovery = true
	if tok = pass(); tok.Clear != nil {
		t.Fatalf("the clear copy stayed once the pair kept the key and a recovery sheet existed: %+v", tok)
	}
	open(tok, "")
	partner.up = false
	open(tok, "") // the witness alone
	witness.up = false
	open(tok, "neither the partner unit nor the witness gave its key")
	partner.up, witness.up = true, true

	m.TPM = &box{"this box"} // with a TPM: two of three
	tok = pass()
	if tok.Need != 2 || tok.TPM == nil || len(tok.Wrapped) != 2 || tok.Clear != nil {
		t.Fatalf("paired with a TPM: %+v", tok)
	}
	if e := m.crypt.status(); e.KeysNeeded != 2 || strings.Join(e.KeyHolders, ",") != "tpm,partner,witness" {
		t.Fatalf("status %+v", e)
	}
	partner.up, witness.up = false, false
	open(tok, "this box's TPM alone does not open it") // the unit taken away, TPM and all
	witness.up = true
	open(tok, "") // the TPM and the witness
	m.TPM, partner.up = &box{"another box"}, true
	open(tok, "") // the disks in another box: the partner and the witness
	m.TPM = &box{"this box"}

	m.SetHolders(nil) // the pair left: the TPM alone keeps it, whole
	if tok = pass(); tok.Need > 1 || tok.TPM == nil || len(tok.Wrapped) != 0 || tok.Clear != nil {
		t.Fatalf("unpaired with a TPM: %+v", tok)
	}
	open(tok, "")
	m.TPM = nil // nothing keeps it: on the disks again
	if tok = pass(); tok.Clear == nil {
		t.Fatalf("nothing keeps the key, and it is not kept on the disks: %+v", tok)
	}
	open(noClear(tok), "nothing holds its key")
}
