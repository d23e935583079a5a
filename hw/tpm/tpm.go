// Package tpm seals a small secret to this box's TPM 2.0: the secret comes back only from the same TPM
// (its storage root key never leaves it), so a disk carrying the sealed blob reveals nothing in another
// machine. It speaks TPM 2.0 commands through github.com/google/go-tpm, to the kernel's resource manager
// (/dev/tpmrm0) or to a socket (swtpm, in tests).
//
// The secret is not bound to measurements (PCRs): a firmware update would change them and leave the unit
// locked until it was resealed. What the seal defends against is a disk away from its box.
package tpm

import (
	"errors"
	"fmt"
	"os"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"github.com/google/go-tpm/tpm2/transport/linuxudstpm"
)

// Device is the kernel's resource manager of the first TPM.
const Device = "/dev/tpmrm0"

// ErrNone: the box has no TPM.
var ErrNone = errors.New("no TPM")

// TPM is a TPM 2.0 reached at Path: a character device, or a Unix socket (swtpm's data channel).
type TPM struct {
	Path string // Device when empty
}

func (t *TPM) open() (transport.TPMCloser, error) {
	p := t.Path
	if p == "" {
		p = Device
	}
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNone
	}
	if err != nil {
		return nil, fmt.Errorf("tpm %s: %w", p, err)
	}
	if fi.Mode()&os.ModeSocket != 0 {
		return linuxudstpm.Open(p)
	}
	return linuxtpm.Open(p)
}

// Present says whether the box has a TPM.
func (t *TPM) Present() bool {
	tp, err := t.open()
	if err != nil {
		return false
	}
	tp.Close()
	return true
}

// Sealed is a secret sealed to one TPM: the public and private parts of a keyed-hash object under its
// storage root key, in the TPM's own marshalling. Its private part is encrypted by the TPM.
type Sealed struct {
	Public  []byte `json:"public"`
	Private []byte `json:"private"`
}

// srk makes the TPM's storage root key again (the same key every time, from the TCG's template and the
// TPM's own seed) and answers it with a function that flushes it.
func srk(tp transport.TPM) (tpm2.NamedHandle, func(), error) {
	rsp, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tpm2.ECCSRKTemplate)}.Execute(tp)
	if err != nil {
		return tpm2.NamedHandle{}, nil, fmt.Errorf("create the storage root key: %w", err)
	}
	flush := func() { _, _ = tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(tp) }
	return tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}, flush, nil
}

// Seal seals secret (at most 128 bytes) to this TPM.
func (t *TPM) Seal(secret []byte) (Sealed, error) {
	tp, err := t.open()
	if err != nil {
		return Sealed{}, err
	}
	defer tp.Close()
	parent, flush, err := srk(tp)
	if err != nil {
		return Sealed{}, fmt.Errorf("seal: %w", err)
	}
	defer flush()
	rsp, err := tpm2.Create{
		ParentHandle: parent,
		InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
			Data: tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: secret}),
		}},
		InPublic: tpm2.New2B(tpm2.TPMTPublic{
			Type:    tpm2.TPMAlgKeyedHash,
			NameAlg: tpm2.TPMAlgSHA256,
			ObjectAttributes: tpm2.TPMAObject{
				FixedTPM: true, FixedParent: true, UserWithAuth: true, NoDA: true,
			},
		}),
	}.Execute(tp)
	if err != nil {
		return Sealed{}, fmt.Errorf("seal: %w", err)
	}
	return Sealed{Public: tpm2.Marshal(rsp.OutPublic), Private: tpm2.Marshal(rsp.OutPrivate)}, nil
}

// Unseal returns the secret sealed by Seal on this TPM; another TPM refuses it.
func (t *TPM) Unseal(s Sealed) ([]byte, error) {
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](s.Public)
	if err != nil {
		return nil, fmt.Errorf("unseal: the sealed public part: %w", err)
	}
	priv, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](s.Private)
	if err != nil {
		return nil, fmt.Errorf("unseal: the sealed private part: %w", err)
	}
	tp, err := t.open()
	if err != nil {
		return nil, err
	}
	defer tp.Close()
	parent, flush, err := srk(tp)
	if err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}
	defer flush()
	obj, err := tpm2.Load{ParentHandle: parent, InPrivate: *priv, InPublic: *pub}.Execute(tp)
	if err != nil {
		return nil, fmt.Errorf("unseal: this TPM does not take the sealed key (sealed by another?): %w", err)
	}
	defer func() { _, _ = tpm2.FlushContext{FlushHandle: obj.ObjectHandle}.Execute(tp) }()
	rsp, err := tpm2.Unseal{ItemHandle: tpm2.NamedHandle{Handle: obj.ObjectHandle, Name: obj.Name}}.Execute(tp)
	if err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}
	return rsp.OutData.Buffer, nil
}
