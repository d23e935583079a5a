package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// SFTP is a directory on an SSH server (a NAS at a partner's office, a hosting account). The server's host
// key is pinned: a server that presents another key is refused, whatever it says.
type SFTP struct {
	Addr     string // "host:22"
	User     string
	Password string
	Key      string // a private key (OpenSSH PEM), instead of or besides the password
	HostKey  string // "SHA256:..." as ssh-keygen -lf prints it
	Dir      string // on the server, e.g. "backups/office"
}

func (s *SFTP) Name() string { return "sftp://" + s.User + "@" + s.Addr + "/" + s.Dir }

// ErrHostKey is a server whose host key is not the pinned one; the message gives the key it presented.
var ErrHostKey = errors.New("the server's host key is not the one pinned")

// session opens an SFTP session and returns it with a function that closes it.
func (s *SFTP) session(ctx context.Context) (*sftp.Client, func(), error) {
	var auth []ssh.AuthMethod
	if s.Key != "" {
		signer, err := ssh.ParsePrivateKey([]byte(s.Key))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: private key: %w", s.Name(), err)
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if s.Password != "" {
		auth = append(auth, ssh.Password(s.Password))
	}
	cfg := &ssh.ClientConfig{
		User: s.User,
		Auth: auth,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if got := ssh.FingerprintSHA256(key); got != s.HostKey {
				return fmt.Errorf("%w: it presented %s", ErrHostKey, got)
			}
			return nil
		},
		Timeout: 15 * time.Second,
	}
	d := net.Dialer{Timeout: 15 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, s.Addr, cfg)
	if err != nil {
		conn.Close()
		var ne net.Error
		if !errors.Is(err, ErrHostKey) && !errors.As(err, &ne) && !errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: %w", ErrRefused, err) // it answered, and did not let the unit in
		}
		return nil, nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	sc := ssh.NewClient(c, chans, reqs)
	cl, err := sftp.NewClient(sc)
	if err != nil {
		sc.Close()
		return nil, nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	return cl, func() { cl.Close(); sc.Close() }, nil
}

func (s *SFTP) remote(key string) (string, error) {
	if strings.Contains(s.Dir, "..") {
		return "", fmt.Errorf("directory %q", s.Dir)
	}
	if !validKey(key) {
		return "", fmt.Errorf("backup key %q", key)
	}
	return path.Join(s.Dir, key), nil
}

// Put writes key.partial and renames it: the server never shows a torn object under its name.
// Put writes key.partial and renames it into place. When r can seek (a copy of a stored object) and an
// earlier attempt left part of it, the upload resumes where that one stopped, and a failed one leaves its
// part for the next attempt.
func (s *SFTP) Put(ctx context.Context, key string, r io.Reader, _ int64) error {
	p, err := s.remote(key)
	if err != nil {
		return err
	}
	cl, done, err := s.session(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := cl.MkdirAll(path.Dir(p)); err != nil {
		return fmt.Errorf("upload %s to %s: %w", key, s.Name(), err)
	}
	seeker, resumable := r.(io.Seeker)
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if fi, err := cl.Stat(p + ".partial"); err == nil && resumable && fi.Size() > 0 {
		if _, err := seeker.Seek(fi.Size(), io.SeekStart); err == nil {
			flags = os.O_WRONLY | os.O_APPEND
		}
	}
	f, err := cl.OpenFile(p+".partial", flags)
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", key, s.Name(), err)
	}
	_, err = f.ReadFrom(r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		_ = cl.Remove(p)
		err = cl.Rename(p+".partial", p)
	}
	if err != nil {
		if !resumable {
			_ = cl.Remove(p + ".partial")
		}
		return fmt.Errorf("upload %s to %s: %w", key, s.Name(), err)
	}
	return nil
}

func (s *SFTP) Size(ctx context.Context, key string) (int64, error) {
	p, err := s.remote(key)
	if err != nil {
		return 0, err
	}
	cl, done, err := s.session(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	fi, err := cl.Stat(p)
	if err != nil {
		return 0, fmt.Errorf("%s on %s: %w", key, s.Name(), err)
	}
	return fi.Size(), nil
}

func (s *SFTP) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.remote(key)
	if err != nil {
		return nil, err
	}
	cl, done, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	f, err := cl.Open(p)
	if err != nil {
		done()
		return nil, fmt.Errorf("download %s from %s: %w", key, s.Name(), err)
	}
	return ReadCloser{Reader: f, OnClose: func() error { err := f.Close(); done(); return err }}, nil
}

func (s *SFTP) List(ctx context.Context) ([]string, error) {
	cl, done, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	var keys []string
	w := cl.Walk(s.Dir)
	for w.Step() {
		if err := w.Err(); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("list %s: %w", s.Name(), err)
		}
		if w.Stat().Mode().IsRegular() && !strings.HasSuffix(w.Path(), ".partial") {
			keys = append(keys, strings.TrimPrefix(strings.TrimPrefix(w.Path(), s.Dir), "/"))
		}
	}
	sort.Strings(keys)
	return keys, nil
}

func (s *SFTP) Delete(ctx context.Context, key string) error {
	p, err := s.remote(key)
	if err != nil {
		return err
	}
	cl, done, err := s.session(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := cl.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s from %s: %w", key, s.Name(), err)
	}
	_ = cl.RemoveDirectory(path.Dir(p)) // once empty
	return nil
}
