package pgsql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/lawbox/appliance/appliance/durable"
)

// Cluster is one PostgreSQL data directory and the programs that run it, as the postgres user: the
// unit's database (production or mirror), the backups' scratch servers and the tests' servers all start,
// probe and stop theirs here.
type Cluster struct {
	BinDir  string              // PostgreSQL's programs: initdb, postgres, pg_controldata, ...
	DataDir string              // the cluster
	Cred    *syscall.Credential // the postgres user's (PostgresUser)
}

// PostgresUser is the credential of the system's postgres user, which owns every cluster and runs every
// server (PostgreSQL refuses to run as root).
func PostgresUser() (*syscall.Credential, error) {
	pu, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("the postgres user: %w", err)
	}
	uid, err := strconv.Atoi(pu.Uid)
	if err != nil {
		return nil, fmt.Errorf("the postgres user's uid %q: %w", pu.Uid, err)
	}
	gid, err := strconv.Atoi(pu.Gid)
	if err != nil {
		return nil, fmt.Errorf("the postgres user's gid %q: %w", pu.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// Env is the environment every PostgreSQL program runs in: its own programs first, UTC, the C locale
// (messages the unit reads, such as pg_controldata's, stay in English).
func Env(binDir string) []string {
	return []string{"PATH=" + binDir + ":/bin", "TZ=UTC", "LANG=C"}
}

// Command is program prog of the cluster's BinDir with args, run as the postgres user in a process group
// of its own (a signal to the unit's group does not reach it; the unit stops its servers in order), in
// Env. ctx ends it as exec.CommandContext does.
func (c *Cluster) Command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, prog), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.Cred, Setpgid: true}
	cmd.Env = Env(c.BinDir)
	return cmd
}

// InitDB creates the cluster with initdb: superuser postgres, UTF-8, the C locale, and args. It is made in
// a side directory renamed into place when complete, so that a power cut during initdb leaves no half
// cluster (the next InitDB starts over). A DataDir that exists and is not empty is refused.
func (c *Cluster) InitDB(ctx context.Context, args ...string) error {
	tmp := c.DataDir + ".init"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove unfinished initdb: %w", err)
	}
	if err := os.Remove(c.DataDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("data directory %s is not empty and holds no cluster: %w", c.DataDir, err)
	}
	all := append([]string{"-D", tmp, "-U", "postgres", "--encoding=UTF8", "--locale=C"}, args...)
	if out, err := c.Command(ctx, "initdb", all...).CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	if err := os.Rename(tmp, c.DataDir); err != nil {
		return fmt.Errorf("move the new cluster into place: %w", err)
	}
	return durable.SyncDir(filepath.Dir(c.DataDir))
}

// Start runs postgres on the cluster with args (its output to out, nil for none) and returns at once;
// the server is not taking connections yet (Process.Ready waits for it).
func (c *Cluster) Start(out io.Writer, args ...string) (*Process, error) {
	// Not tied to a context: a server is stopped in order (Stop), never killed because a request ended.
	cmd := c.Command(context.Background(), "postgres", append([]string{"-D", c.DataDir}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres on %s: %w", c.DataDir, err)
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	return p, nil
}

// Process is a running postgres.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed (never sent on) when it has exited: every waiter sees it
	err    error         // its exit, once exited is closed
}

// Pid is the postmaster's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the server has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the server exited (nil for a clean shutdown); it is meaningful once Exited is closed.
func (p *Process) Err() error {
	select {
	case <-p.exited:
		return p.err
	default:
		return nil
	}
}

// ErrExited is what Ready answers for a server that exited before it took a connection.
var ErrExited = errors.New("postgres exited")

// Ready polls probe every interval until it succeeds (nil), the server exits (ErrExited, with how), ctx
// ends, or within passes (the last probe's error). It does not stop the server.
func (p *Process) Ready(ctx context.Context, probe func(context.Context) error, interval, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := probe(ctx)
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("not taking connections after %v: %w", within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.exited:
			return fmt.Errorf("%w (%v)", ErrExited, p.err)
		case <-time.After(interval):
		}
	}
}

// Stop sends sig (SIGINT: a fast shutdown, clean; SIGQUIT: at once, recovery at the next start) and waits
// for the server to exit, killing it after grace. A server that has exited already returns at once.
func (p *Process) Stop(sig syscall.Signal, grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}
