package tunnel

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"net/netip"
	"testing"
)

// pairSecret stands for pair.Node.Secret: the same bytes on both units of a pair for a label.
func pairSecret(key string) func(string) []byte {
	return func(label string) []byte {
		m := hmac.New(sha256.New, []byte(key))
		m.Write([]byte(label))
		return m.Sum(nil)
	}
}

func TestDeriveMatchesBothEnds(t *testing.T) {
	a, err := Derive(pairSecret("pair key"), "unit-a", "unit-b")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Derive(pairSecret("pair key"), "unit-b", "unit-a")
	if err != nil {
		t.Fatal(err)
	}
	if a.PeerPublic != b.Private.PublicKey() || b.PeerPublic != a.Private.PublicKey() {
		t.Error("each unit's view of its partner's public key differs from the partner's own")
	}
	if a.Shared != b.Shared {
		t.Error("the preshared keys differ")
	}
	if a.Private == b.Private {
		t.Error("both units have the same private key")
	}
	if a.Local != b.Remote || a.Remote != b.Local || a.Local == a.Remote {
		t.Errorf("inner addresses: A %s→%s, B %s→%s", a.Local, a.Remote, b.Local, b.Remote)
	}
	if !Inside(a.Local) || !Inside(a.Remote) || Inside(netip.MustParseAddr("198.51.100.1")) {
		t.Errorf("Inside: %s %s inside, 198.51.100.1 not", a.Local, a.Remote)
	}
	if a.Local.String() != "198.19.255.1" {
		t.Errorf("A (first by name) has %s, want 198.19.255.1", a.Local)
	}
	// A valid Curve25519 private key is clamped.
	if k := a.Private; k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
		t.Errorf("private key not clamped: %x", k[:])
	}

	other, err := Derive(pairSecret("another pair's key"), "unit-a", "unit-b")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.Private[:], a.Private[:]) || other.Shared == a.Shared {
		t.Error("another pair key gives the same link keys")
	}
}

func TestDeriveRefuses(t *testing.T) {
	if _, err := Derive(pairSecret("k"), "unit-a", "unit-a"); err == nil {
		t.Error("two units of the same name: no error")
	}
	if _, err := Derive(func(string) []byte { return nil }, "unit-a", "unit-b"); err == nil {
		t.Error("not paired (no secret): no error")
	}
}
