package engine

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql/pgtest"

	"github.com/lawbox/appliance/appliance"
)

// sshServer is Debian's OpenSSH sshd on 127.0.0.1 with its own host key, accepting one client key for
// root, SFTP only.
type sshServer struct {
	addr, hostKey string
	clientKey     string // PEM
}

func startSSH(t *testing.T) *sshServer {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssh-server is not installed (make deps installs it)")
		}
		t.Skip("openssh-server is not installed")
	}
	if os.Geteuid() != 0 {
		t.Skip("sshd needs root")
	}
	dir, err := os.MkdirTemp("", "sshd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	hostKey := filepath.Join(dir, "host_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(sshPub), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf(`ListenAddress 127.0.0.1:%s
HostKey %s
PidFile %s/sshd.pid
AuthorizedKeysFile %s/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
ForceCommand internal-sftp
`, port, hostKey, dir, dir)
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll("/run/sshd", 0o755)
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatal("sshd does not listen")
		}
		time.Sleep(50 * time.Millisecond)
	}
	hk, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(hk)
	if err != nil {
		t.Fatal(err)
	}
	return &sshServer{addr: addr, hostKey: ssh.FingerprintSHA256(k), clientKey: string(pem.EncodeToMemory(block))}
}

// Backups to a real SFTP server: stored, listed and verified from there; a server presenting another host
// key than the pinned one is refused and nothing is sent to it.
func TestSFTPTarget(t *testing.T) {
	srv := startSSH(t)
	s := pgtest.Start(t)
	s.Exec(t, "postgres", "CREATE DATABASE practice")
	s.Exec(t, "practice", "CREATE TABLE matters (id int PRIMARY KEY)", "INSERT INTO matters SELECT generate_series(1, 1000)")
	e := newEngine(t, s, target.Dir{Path: t.TempDir()})
	ctx := context.Background()
	m, err := e.Backup(ctx, KindDump)
	if err != nil {
		t.Fatal(err)
	}
	remote := t.TempDir()
	remoteTarget := &target.SFTP{Addr: srv.addr, User: "root", Key: srv.clientKey, HostKey: srv.hostKey, Dir: remote + "/office"}
	if err := e.Copy(ctx, m, remoteTarget); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(remote, "office", m.ID, "manifest.age")); err != nil {
		t.Fatalf("not on the server: %v", err)
	}
	ms, _, err := Manifests(ctx, remoteTarget, must(e.Identity()))
	if err != nil || len(ms) != 1 || ms[0].ID != m.ID {
		t.Fatalf("listed %v (%v)", ms, err)
	}

	// A copy cut short: the manifest never arrived and the dump only half (SFTP's .partial). The next copy
	// sends the rest of the dump and nothing of what arrived whole.
	remoteDump := filepath.Join(remote, "office", filepath.FromSlash(m.Databases[0].Object))
	whole, err := os.ReadFile(remoteDump)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(remote, "office", m.ID, ManifestName))
	os.Remove(remoteDump)
	os.WriteFile(remoteDump+".partial", whole[:len(whole)/2], 0o600)
	counted := &countingDir{Dir: e.Local.(target.Dir)}
	e.Local, e.Progress = counted, &target.Progress{}
	if err := e.Copy(ctx, m, remoteTarget); err != nil {
		t.Fatal(err)
	}
	e.Local = counted.Dir
	if done, total := e.Progress.Get(); done != total || total != int64(len(whole)) {
		t.Errorf("progress of the resumed copy: %d of %d bytes, want %d of %d", done, total, len(whole), len(whole))
	}
	if got, _ := os.ReadFile(remoteDump); !bytes.Equal(got, whole) || counted.read != int64(len(whole)-len(whole)/2) {
		t.Errorf("resumed copy: read %d bytes of the array for %d missing; the dump is whole: %v", counted.read, len(whole)-len(whole)/2, bytes.Equal(got, whole))
	}

	if v, err := e.Verify(ctx, remoteTarget, m.ID); err != nil || !v.OK {
		t.Fatalf("verify from SFTP: %+v %v", v, err)
	}
	if _, err := e.Prune(ctx, remoteTarget, appliance.BackupRetention{}, nil); err != nil {
		t.Fatal(err)
	}
	if keys, _ := remoteTarget.List(ctx); len(keys) != 0 {
		t.Errorf("left after pruning everything: %v", keys)
	}

	wrong := *remoteTarget
	wrong.HostKey = "SHA256:" + strings.Repeat("A", 43)
	wrong.Dir = remote + "/other"
	if err := e.Copy(ctx, m, &wrong); !errors.Is(err, target.ErrHostKey) || !strings.Contains(err.Error(), srv.hostKey) {
		t.Errorf("a server with another host key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(remote, "other")); !os.IsNotExist(err) {
		t.Error("something was written to a server whose host key did not match")
	}
}

// countingDir counts the bytes read from the objects it serves.
type countingDir struct {
	target.Dir
	read int64
}

func (c *countingDir) Get(_ context.Context, key string) (io.ReadCloser, error) {
	f, err := os.Open(filepath.Join(c.Path, filepath.FromSlash(key)))
	return &countingFile{f: f, n: &c.read}, err
}

type countingFile struct {
	f *os.File
	n *int64
}

func (c *countingFile) Read(b []byte) (int, error) {
	n, err := c.f.Read(b)
	*c.n += int64(n)
	return n, err
}

func (c *countingFile) Seek(off int64, whence int) (int64, error) { return c.f.Seek(off, whence) }
func (c *countingFile) Close() error                              { return c.f.Close() }
