package shamir

import (
	"bytes"
	"testing"
)

func TestAnyKOfNGiveTheSecret(t *testing.T) {
	secret := []byte("the unit key of the data array, 32")
	shares, err := Split(secret, 2, []int{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]int{{0, 1}, {0, 2}, {1, 2}, {2, 0}} {
		got, err := Combine([]Share{shares[pair[0]], shares[pair[1]]})
		if err != nil || !bytes.Equal(got, secret) {
			t.Errorf("shares %v: %q, %v", pair, got, err)
		}
	}
	if got, _ := Combine(shares); !bytes.Equal(got, secret) {
		t.Errorf("all three: %q", got)
	}
	for _, s := range shares {
		if one, _ := Combine([]Share{s}); bytes.Equal(one, secret) {
			t.Errorf("share %d alone gave the secret", s.X)
		}
		if bytes.Equal(s.Y, secret) {
			t.Errorf("share %d is the secret", s.X)
		}
	}
	if _, err := Combine([]Share{shares[0], shares[0]}); err == nil {
		t.Error("the same share twice was taken")
	}
	if _, err := Split(secret, 3, []int{1, 2}); err == nil {
		t.Error("3 of 2 was accepted")
	}
	if _, err := Split(secret, 2, []int{1, 1}); err == nil {
		t.Error("two shares at the same x were accepted")
	}
}

// GF(2^8) with AES's polynomial: known products (FIPS 197, 4.2) and every non-zero element's inverse.
func TestField(t *testing.T) {
	if mul(0x57, 0x83) != 0xc1 || mul(0x57, 0x13) != 0xfe {
		t.Fatalf("mul: %#x %#x", mul(0x57, 0x83), mul(0x57, 0x13))
	}
	for b := 1; b < 256; b++ {
		if mul(div(1, byte(b)), byte(b)) != 1 {
			t.Fatalf("inverse of %#x", b)
		}
	}
}
