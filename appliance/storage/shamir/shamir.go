// Package shamir splits a secret into shares of which any k give it back and fewer reveal nothing
// (Shamir's scheme over GF(2^8), byte by byte, as Vault and Clevis's sss pin do). Share x is the value at
// x of a random polynomial of degree k-1 whose constant term is the secret's byte.
package shamir

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// Share is one share: its x (1..255) and one byte per byte of the secret.
type Share struct {
	X int    `json:"x"`
	Y []byte `json:"y"`
}

// Split makes a share for each x in xs (distinct, 1..255), any k of which give secret back.
func Split(secret []byte, k int, xs []int) ([]Share, error) {
	if k < 1 || k > len(xs) {
		return nil, fmt.Errorf("split: %d of %d shares", k, len(xs))
	}
	seen := map[int]bool{}
	for _, x := range xs {
		if x < 1 || x > 255 || seen[x] {
			return nil, fmt.Errorf("split: share x %d", x)
		}
		seen[x] = true
	}
	coef := make([]byte, k) // coef[0] is the secret's byte, the others random
	out := make([]Share, len(xs))
	for i, x := range xs {
		out[i] = Share{X: x, Y: make([]byte, len(secret))}
	}
	for b, s := range secret {
		coef[0] = s
		rand.Read(coef[1:])
		for i, x := range xs {
			out[i].Y[b] = eval(coef, byte(x))
		}
	}
	clear(coef)
	return out, nil
}

// Combine gives the secret back from k or more shares of one split (with fewer it returns a wrong value:
// the caller checks the result, as LUKS does when the key opens nothing).
func Combine(shares []Share) ([]byte, error) {
	if len(shares) == 0 {
		return nil, errors.New("combine: no shares")
	}
	n := len(shares[0].Y)
	for i, s := range shares {
		if len(s.Y) != n || s.X < 1 || s.X > 255 {
			return nil, errors.New("combine: shares of different splits")
		}
		for _, t := range shares[:i] {
			if t.X == s.X {
				return nil, errors.New("combine: the same share twice")
			}
		}
	}
	out := make([]byte, n)
	for b := range n {
		// Lagrange interpolation at 0.
		var v byte
		for i, si := range shares {
			num, den := byte(1), byte(1)
			for j, sj := range shares {
				if i != j {
					num = mul(num, byte(sj.X))
					den = mul(den, byte(si.X)^byte(sj.X))
				}
			}
			v ^= mul(si.Y[b], div(num, den))
		}
		out[b] = v
	}
	return out, nil
}

func eval(coef []byte, x byte) byte {
	var v byte
	for i := len(coef) - 1; i >= 0; i-- {
		v = mul(v, x) ^ coef[i]
	}
	return v
}

// mul multiplies in GF(2^8) with AES's polynomial x^8+x^4+x^3+x+1, in constant time.
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= -(b & 1) & a
		hi := a >> 7
		a = a<<1 ^ (-hi & 0x1b)
		b >>= 1
	}
	return p
}

// div is a / b (b != 0): a times b's inverse, b^254.
func div(a, b byte) byte {
	inv := byte(1)
	for range 254 {
		inv = mul(inv, b)
	}
	return mul(a, inv)
}
