package wire

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"
)

// Key shares (docs/storage.md, "Encryption at rest"): the partner unit and the witness each keep a random
// secret for a unit's disks, which the unit's unit key is wrapped with. A unit asks for it at boot with a
// "keyshare" message carrying a random nonce, authenticated like the rest of the channel (the pair key to
// the partner, the witness key to the witness); the holder answers with the secret sealed (AES-GCM) under
// a key derived from the channel's key and bound to the asker, the holder and the nonce. An answer read on
// the LAN reveals nothing without the channel's key, and an old one answers no new request. Requests carry
// no rising number: one replayed only makes the holder answer again, in a form only the channel's key
// opens, for a nonce nobody waits for.

// ShareSize is the size of a holder's secret.
const ShareSize = 32

func shareAEAD(channelKey []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(Derive(channelKey, "lawbox key share v1"))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func shareAAD(asker, holder string, nonce []byte) []byte {
	return append([]byte("keyshare\x00"+asker+"\x00"+holder+"\x00"), nonce...)
}

// ShareAnswer is the holder's answer to a keyshare request m, carrying share.
func ShareAnswer(channelKey []byte, holder string, m Message, share []byte) ([]byte, error) {
	if len(m.Nonce) < 16 {
		return nil, errors.New("keyshare request without a nonce")
	}
	aead, err := shareAEAD(channelKey)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, aead.NonceSize())
	rand.Read(iv)
	sealed := aead.Seal(iv, iv, share, shareAAD(m.From, holder, m.Nonce))
	now := time.Now()
	return Seal(channelKey, Message{Kind: "keyshare", From: holder, Seq: uint64(now.UnixNano()), Time: now, Nonce: m.Nonce, Share: sealed})
}

// AskShare asks the holder at addr ("host:port") for the secret it keeps for asker's disks, a few times
// within ctx. holder is the name its answer must come from.
func AskShare(ctx context.Context, channelKey []byte, asker, holder, addr string) ([]byte, error) {
	conn, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("ask %s for its key share: %w", holder, err)
	}
	nonce := make([]byte, 16)
	rand.Read(nonce)
	now := time.Now()
	req, err := Seal(channelKey, Message{Kind: "keyshare", From: asker, Seq: uint64(now.UnixNano()), Time: now, Nonce: nonce})
	if err != nil {
		return nil, err
	}
	aead, err := shareAEAD(channelKey)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	for try := 0; ; try++ {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ask %s at %s for its key share: no answer: %w", holder, addr, ctx.Err())
		}
		if _, err := conn.WriteTo(req, to); err != nil {
			return nil, fmt.Errorf("ask %s at %s for its key share: %w", holder, addr, err)
		}
		deadline := time.Now().Add(time.Second)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		_ = conn.SetReadDeadline(deadline)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				break // timed out: ask again
			}
			m, err := Open(channelKey, buf[:n])
			if err != nil || m.Kind != "keyshare" || m.From != holder || string(m.Nonce) != string(nonce) || len(m.Share) < aead.NonceSize() {
				continue
			}
			iv, sealed := m.Share[:aead.NonceSize()], m.Share[aead.NonceSize():]
			share, err := aead.Open(nil, iv, sealed, shareAAD(asker, holder, nonce))
			if err != nil {
				continue
			}
			return share, nil
		}
	}
}
