package firmware

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// An update bundle is an uncompressed tar holding, in this order:
//
//	manifest.json          {"product","version","build","min_build","parts":[{"name","size","sha256"}]}
//	manifest.json.minisig  the manifest's signature, minisign's format (Ed25519)
//	the parts              each as the manifest lists it (today one: lawbox-VERSION.efi)
//
// It can be checked without a unit: tar -xf B; minisign -Vm manifest.json -P KEY; sha256sum the parts.
// Check reads a bundle from a stream and refuses anything but a complete, signed, intact bundle of this
// product that the running firmware may take.

// Product is what a bundle of this firmware says it is.
const Product = "lawbox"

// Bundle errors: the API answers 400 for them (409 for a downgrade not asked for).
var (
	ErrBadBundle = errors.New("not a valid update bundle")
	ErrDowngrade = errors.New("the bundle is older than the running firmware")
)

// Manifest describes a bundle.
type Manifest struct {
	Product  string `json:"product"`
	Version  string `json:"version"`
	Build    int    `json:"build"`     // rises with every build (the number of commits): what "older" means
	MinBuild int    `json:"min_build"` // the oldest running firmware that may take it
	Parts    []Part `json:"parts"`
}

// Part is one file of a bundle.
type Part struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// PublicKey is a minisign public key: an 8-byte key id and an Ed25519 key.
type PublicKey struct {
	ID  [8]byte
	Key ed25519.PublicKey
}

// SecretKey is the key a build signs with (a development key generated into build/, or the vendor's).
type SecretKey struct {
	ID   [8]byte
	Seed []byte // ed25519 seed, 32 bytes
}

// GenerateKey makes a new signing key.
func GenerateKey() (SecretKey, error) {
	var k SecretKey
	if _, err := rand.Read(k.ID[:]); err != nil {
		return k, err
	}
	k.Seed = make([]byte, ed25519.SeedSize)
	_, err := rand.Read(k.Seed)
	return k, err
}

// Public is k's public key.
func (k SecretKey) Public() PublicKey {
	return PublicKey{ID: k.ID, Key: ed25519.NewKeyFromSeed(k.Seed).Public().(ed25519.PublicKey)}
}

// String is the key as minisign writes it (base64 of "Ed", the key id and the key).
func (p PublicKey) String() string {
	return base64.StdEncoding.EncodeToString(append(append([]byte("Ed"), p.ID[:]...), p.Key...))
}

// ParsePublicKey reads a minisign public key: the base64 line, alone or after its "untrusted comment" line.
func ParsePublicKey(s string) (PublicKey, error) {
	var p PublicKey
	lines := strings.Split(strings.TrimSpace(s), "\n")
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(lines[len(lines)-1]))
	if err != nil || len(b) != 2+8+ed25519.PublicKeySize || string(b[:2]) != "Ed" {
		return p, fmt.Errorf("not a minisign Ed25519 public key")
	}
	copy(p.ID[:], b[2:10])
	p.Key = ed25519.PublicKey(b[10:])
	return p, nil
}

// Sign returns the minisign signature file of msg (legacy "Ed": the message itself is signed), with a
// trusted comment that the global signature covers too.
func (k SecretKey) Sign(msg []byte, trusted string) []byte {
	priv := ed25519.NewKeyFromSeed(k.Seed)
	sig := ed25519.Sign(priv, msg)
	global := ed25519.Sign(priv, append(append([]byte(nil), sig...), trusted...))
	var b bytes.Buffer
	fmt.Fprintf(&b, "untrusted comment: signature from lawbox build key %s\n", hex.EncodeToString(k.ID[:]))
	fmt.Fprintf(&b, "%s\n", base64.StdEncoding.EncodeToString(append(append([]byte("Ed"), k.ID[:]...), sig...)))
	fmt.Fprintf(&b, "trusted comment: %s\n%s\n", trusted, base64.StdEncoding.EncodeToString(global))
	return b.Bytes()
}

// verify checks a minisign signature file of msg under p.
func (p PublicKey) verify(msg, sigFile []byte) error {
	lines := strings.Split(strings.TrimRight(string(sigFile), "\n"), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[2], "trusted comment: ") {
		return fmt.Errorf("%w: the signature is not in minisign's format", ErrBadBundle)
	}
	sig, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil || len(sig) != 2+8+ed25519.SignatureSize || string(sig[:2]) != "Ed" {
		return fmt.Errorf("%w: the signature is not an Ed25519 minisign signature", ErrBadBundle)
	}
	if !bytes.Equal(sig[2:10], p.ID[:]) {
		return fmt.Errorf("%w: signed with key %x, not this firmware's key %x", ErrBadBundle, sig[2:10], p.ID)
	}
	if !ed25519.Verify(p.Key, msg, sig[10:]) {
		return fmt.Errorf("%w: the signature does not match the manifest", ErrBadBundle)
	}
	global, err := base64.StdEncoding.DecodeString(lines[3])
	trusted := strings.TrimPrefix(lines[2], "trusted comment: ")
	if err != nil || !ed25519.Verify(p.Key, append(append([]byte(nil), sig[10:]...), trusted...), global) {
		return fmt.Errorf("%w: the signature's trusted comment was changed", ErrBadBundle)
	}
	return nil
}

// maxManifest bounds what is read before the signature is checked.
const maxManifest = 64 << 10

// Check reads a bundle from r: the signed manifest first, checked under key before any part is read,
// then every part into the writer stage gives for it, each checked against the manifest's size and
// SHA-256. runningBuild is the running firmware's build; a bundle older than it is ErrDowngrade unless
// allowDowngrade, and one that needs a newer running firmware (min_build) is refused. maxPart bounds a part
// (what the boot partition can take). On any error, what stage received must be thrown away.
func Check(r io.Reader, key PublicKey, runningBuild int, allowDowngrade bool, maxPart int64, stage func(Part) (io.Writer, error)) (Manifest, error) {
	var m Manifest
	tr := tar.NewReader(r)
	next := func(want string, limit int64) ([]byte, error) {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("%w: %s missing (%v)", ErrBadBundle, want, err)
		}
		if h.Name != want || h.Size > limit {
			return nil, fmt.Errorf("%w: %s where %s (at most %d bytes) belongs", ErrBadBundle, h.Name, want, limit)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadBundle, want, err)
		}
		return b, nil
	}
	man, err := next("manifest.json", maxManifest)
	if err != nil {
		return m, err
	}
	sig, err := next("manifest.json.minisig", 4096)
	if err != nil {
		return m, fmt.Errorf("unsigned bundle: %w", err)
	}
	if err := key.verify(man, sig); err != nil {
		return m, err
	}
	if err := json.Unmarshal(man, &m); err != nil {
		return m, fmt.Errorf("%w: manifest: %v", ErrBadBundle, err)
	}
	switch {
	case m.Product != Product:
		return m, fmt.Errorf("%w: it is firmware for %q, not %q", ErrBadBundle, m.Product, Product)
	case len(m.Parts) == 0:
		return m, fmt.Errorf("%w: it holds nothing", ErrBadBundle)
	case m.MinBuild > runningBuild:
		return m, fmt.Errorf("%w: it updates firmware from build %d on; this unit runs build %d: install an intermediate version first", ErrBadBundle, m.MinBuild, runningBuild)
	case m.Build < runningBuild && !allowDowngrade:
		return m, fmt.Errorf("%w: build %d, the unit runs build %d", ErrDowngrade, m.Build, runningBuild)
	}
	for _, p := range m.Parts {
		if p.Size > maxPart {
			return m, fmt.Errorf("%w: %s takes %d bytes, the boot partition has room for %d", ErrBadBundle, p.Name, p.Size, maxPart)
		}
		h, err := tr.Next()
		if err != nil || h.Name != p.Name || h.Size != p.Size {
			return m, fmt.Errorf("%w: part %s missing or of another size (truncated?)", ErrBadBundle, p.Name)
		}
		w, err := stage(p)
		if err != nil {
			return m, err
		}
		sum := sha256.New()
		n, err := io.Copy(io.MultiWriter(w, sum), tr)
		if err != nil {
			return m, fmt.Errorf("%w: part %s: %v", ErrBadBundle, p.Name, err)
		}
		if n != p.Size || hex.EncodeToString(sum.Sum(nil)) != p.SHA256 {
			return m, fmt.Errorf("%w: part %s is not what the manifest signed (damaged)", ErrBadBundle, p.Name)
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		return m, fmt.Errorf("%w: more after the parts the manifest lists", ErrBadBundle)
	}
	return m, nil
}

// Write writes a bundle of m's parts to w, signed with k: m.Parts' sizes and digests are filled from the
// files open gives.
func Write(w io.Writer, k SecretKey, m Manifest, open func(name string) (io.ReadCloser, error)) error {
	m.Product = Product
	for i, p := range m.Parts {
		f, err := open(p.Name)
		if err != nil {
			return err
		}
		sum := sha256.New()
		n, err := io.Copy(sum, f)
		f.Close()
		if err != nil {
			return err
		}
		m.Parts[i].Size, m.Parts[i].SHA256 = n, hex.EncodeToString(sum.Sum(nil))
	}
	man, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	sig := k.Sign(man, fmt.Sprintf("product:%s version:%s build:%d", m.Product, m.Version, m.Build))
	tw := tar.NewWriter(w)
	for _, f := range []struct {
		name string
		data []byte
	}{{"manifest.json", man}, {"manifest.json.minisig", sig}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	for _, p := range m.Parts {
		f, err := open(p.Name)
		if err != nil {
			return err
		}
		err = tw.WriteHeader(&tar.Header{Name: p.Name, Mode: 0o644, Size: p.Size, Format: tar.FormatPAX})
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		f.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}
