package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"github.com/lawbox/appliance/appliance/backup/target"
)

// seal compresses src with zstd, encrypts it for to and stores it under key in t. Compression and
// encryption run in goroutines of their own, beside the program that produces src.
func seal(ctx context.Context, t target.Target, key string, src io.Reader, to age.Recipient) (Object, error) {
	pr, pw := io.Pipe() // encrypted bytes, to the target
	zr, zw := io.Pipe() // compressed bytes, to the encryption
	h := sha256.New()
	var n countWriter
	go func() {
		err := func() error {
			enc, err := zstd.NewWriter(zw, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
			if err != nil {
				return err
			}
			if _, err := io.Copy(enc, src); err != nil {
				enc.Close()
				return err
			}
			return enc.Close()
		}()
		zw.CloseWithError(err)
	}()
	go func() {
		err := func() error {
			aw, err := age.Encrypt(io.MultiWriter(pw, h, &n), to)
			if err != nil {
				return err
			}
			if _, err := io.Copy(aw, zr); err != nil {
				return err
			}
			return aw.Close()
		}()
		zr.CloseWithError(err)
		pw.CloseWithError(err)
	}()
	if err := t.Put(ctx, key, pr, -1); err != nil {
		pr.CloseWithError(err)
		return Object{}, err
	}
	return Object{Key: key, Size: int64(n), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

type countWriter int64

func (c *countWriter) Write(b []byte) (int, error) { *c += countWriter(len(b)); return len(b), nil }

// Open returns the decrypted, decompressed content of a stored object, checking its SHA-256 as it is read:
// the returned reader fails at the end when the stored bytes are not the ones written.
func Open(ctx context.Context, t target.Target, o Object, id age.Identity) (io.ReadCloser, error) {
	r, err := t.Get(ctx, o.Key)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	hr := &hashCheck{r: io.TeeReader(r, h), h: h, want: o.SHA256, key: o.Key}
	ar, err := age.Decrypt(hr, id)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("%s: %w", o.Key, decryptErr(err))
	}
	zr, err := zstd.NewReader(damaged{r: ar, key: o.Key}, zstd.WithDecoderConcurrency(1))
	if err != nil {
		r.Close()
		return nil, err
	}
	return target.ReadCloser{Reader: zr.IOReadCloser(), OnClose: func() error { zr.Close(); return r.Close() }}, nil
}

// decryptErr says what a failed decryption means to an admin.
func decryptErr(err error) error {
	var nm *age.NoIdentityMatchError
	if errors.As(err, &nm) {
		return fmt.Errorf("this backup was not made for this recovery identity: %w", err)
	}
	return fmt.Errorf("decrypt (damaged or truncated): %w", err)
}

// damaged names what a failed read of decrypted content means.
type damaged struct {
	r   io.Reader
	key string
}

func (d damaged) Read(b []byte) (int, error) {
	n, err := d.r.Read(b)
	if err != nil && err != io.EOF && !strings.Contains(err.Error(), "damaged") {
		err = fmt.Errorf("%s: damaged or truncated: %w", d.key, err)
	}
	return n, err
}

// hashCheck fails at EOF when the bytes read do not have the expected SHA-256.
type hashCheck struct {
	r    io.Reader
	h    interface{ Sum([]byte) []byte }
	want string
	key  string
}

func (c *hashCheck) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if err == io.EOF && c.want != "" && hex.EncodeToString(c.h.Sum(nil)) != c.want { // WAL: age's authentication only
		return n, fmt.Errorf("%s: SHA-256 does not match the manifest: the stored object is damaged", c.key)
	}
	return n, err
}
