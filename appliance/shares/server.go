package shares

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/durable"
	"github.com/lawbox/appliance/appliance/state"
)

const (
	bucket = state.BucketShares
	key    = "config"
)

// Server keeps Samba's smbd serving the configured shares while Serve says this unit should (the data
// array is mounted and the unit is not the standby of a pair), and stopped otherwise.
type Server struct {
	Log   *slog.Logger
	Store *state.Store
	// Dir holds one folder per share, on the data array ("/data/documents").
	Dir string
	// Smbd is Samba's server ("/usr/sbin/smbd"); Conf the smb.conf written for it ("/etc/samba/smb.conf",
	// where Samba's helpers look for it too).
	Smbd, Conf string
	// RunDir holds what is written afresh at every start: the accounts' hashes, locks, sockets (a tmpfs:
	// "/run/samba"); PrivateDir the server's identity, kept across restarts (on the system array).
	RunDir, PrivateDir string
	// Passwd is the Unix account database the file accounts are added to ("/etc/passwd", in RAM).
	Passwd string
	// Name is the server's NetBIOS name (the unit's host name).
	Name string
	// Serve says whether this unit serves the shares now, and if not, why (a sentence).
	Serve func() (bool, string)
	// Every is how often Serve is asked (default 2 s).
	Every time.Duration
	// OwnerIDs answers the uid and gid of Owner (default: from /etc/passwd).
	OwnerIDs func() (uid, gid int, err error)
	// Roles is the pair's role: the shares are changed on the unit that serves (alone, or the active
	// unit of its pair; nil: always), and a change of role is acted on at once. Send hands the settings
	// to the other unit of the pair (nil: never paired).
	Roles *appliance.Feed[appliance.PairRole]
	Send  func(ctx context.Context, settings []byte) error
	// Replication is the documents volume's replication state (nil func or answer: none); Grow gives the
	// documents volume more room (nil: it cannot grow).
	Replication func() *appliance.Replication
	Grow        func(ctx context.Context, add int64) error

	mu      sync.Mutex
	cfg     config
	loaded  bool
	state   string
	why     string
	live    int           // smbd processes started and not yet sent SIGKILL (Serving)
	changed chan struct{} // to Run: the settings changed
	sendNow chan struct{} // to RunSync
}

func (s *Server) load() error {
	if s.changed == nil {
		s.changed, s.sendNow = make(chan struct{}, 1), make(chan struct{}, 1)
	}
	if s.loaded {
		return nil
	}
	var c config
	if err := s.Store.GetJSON(bucket, key, &c); err != nil && !errors.Is(err, state.ErrNotFound) {
		return fmt.Errorf("read the file shares' settings: %w", err)
	}
	s.cfg, s.loaded = c, true
	return nil
}

// change applies f to a copy of the configuration and stores it; the running server picks it up.
func (s *Server) change(f func(*config) error) error {
	if !s.leads() {
		return errNotHere
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(); errors.Is(err, state.ErrSealed) {
		return errSealed
	} else if err != nil {
		return err
	}
	c := config{Shares: cloneShares(s.cfg.Shares), Accounts: append([]account(nil), s.cfg.Accounts...)}
	if err := f(&c); err != nil {
		return err
	}
	if err := s.Store.PutJSON(bucket, key, c); err != nil {
		return fmt.Errorf("save the file shares' settings: %w", err)
	}
	s.cfg = c
	s.notify()
	return nil
}

// notify tells Run and RunSync that the settings changed.
func (s *Server) notify() {
	for _, c := range []chan struct{}{s.changed, s.sendNow} {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

func cloneShares(in []appliance.FileShare) []appliance.FileShare {
	out := make([]appliance.FileShare, len(in))
	for i, sh := range in {
		sh.ReadWrite = append([]string(nil), sh.ReadWrite...)
		sh.ReadOnly = append([]string(nil), sh.ReadOnly...)
		out[i] = sh
	}
	return out
}

// Shares answers the configuration (without password hashes) and the server's state.
func (s *Server) Shares(context.Context) appliance.SharesStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch err := s.load(); {
	case errors.Is(err, state.ErrSealed):
		s.state, s.why = appliance.SharesStopped, sealedWhy
	case err != nil:
		s.state, s.why = appliance.SharesFailed, "The file shares' settings cannot be read; the service log has the details."
	}
	st := appliance.SharesStatus{State: s.state, Why: s.why, Folder: s.Dir, Shares: cloneShares(s.cfg.Shares), Accounts: []appliance.FileAccount{},
		Changeable: s.leads()}
	if s.Replication != nil {
		st.Replication = s.Replication()
	}
	if st.State == "" {
		st.State = appliance.SharesStopped
	}
	for _, a := range s.cfg.Accounts {
		st.Accounts = append(st.Accounts, appliance.FileAccount{Name: a.Name})
	}
	return st
}

func (s *Server) PutShare(_ context.Context, sh appliance.FileShare) error {
	return s.change(func(c *config) error { return c.putShare(sh) })
}

func (s *Server) DeleteShare(_ context.Context, name string) error {
	return s.change(func(c *config) error {
		i := c.shareIndex(name)
		if i < 0 {
			return fmt.Errorf("share %q: %w", name, appliance.ErrNotFound)
		}
		c.Shares = append(c.Shares[:i], c.Shares[i+1:]...)
		return nil
	})
}

func (s *Server) PutAccount(_ context.Context, name, password string) error {
	return s.change(func(c *config) error { return c.putAccount(name, password, time.Now()) })
}

// GrowDocuments implements appliance.Shares.
func (s *Server) GrowDocuments(ctx context.Context, add int64) error {
	if s.Grow == nil {
		return fmt.Errorf("%w: the documents are not on a volume of their own on this unit", appliance.ErrConflict)
	}
	return s.Grow(ctx, add)
}

func (s *Server) DeleteAccount(_ context.Context, name string) error {
	return s.change(func(c *config) error { return c.deleteAccount(name) })
}

func (s *Server) set(st, why string) {
	s.mu.Lock()
	s.state, s.why = st, why
	s.mu.Unlock()
}

// sealedWhy is why the shares wait while the settings are sealed (state.SealBuckets).
const sealedWhy = "The file shares wait for the data array to be unlocked: their accounts are kept encrypted on it."

// waitSettings reads the settings, waiting while they are sealed (the data array not open yet).
func (s *Server) waitSettings(ctx context.Context, every time.Duration) error {
	for {
		s.mu.Lock()
		err := s.load()
		if errors.Is(err, state.ErrSealed) {
			s.state, s.why = appliance.SharesStopped, sealedWhy
		}
		s.mu.Unlock()
		if !errors.Is(err, state.ErrSealed) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// maxRetryWait bounds the wait before a file server that failed is started again.
const maxRetryWait = time.Minute

// Run serves the shares while Serve allows it, until ctx ends. A server that fails to start, or stops by
// itself, is started again after a wait that doubles each time (from Every to a minute).
func (s *Server) Run(ctx context.Context) error {
	every := s.Every
	if every == 0 {
		every = 2 * time.Second
	}
	if err := s.waitSettings(ctx, every); err != nil {
		return err
	}
	var d *daemon
	defer func() {
		if d != nil {
			s.stop(d)
		}
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var retry time.Time // a server that failed is not started again before this
	wait := every       // and the wait doubles with each failure, up to maxRetryWait
	for {
		var roleChanged <-chan struct{}
		if s.Roles != nil {
			_, roleChanged = s.Roles.Watch()
		}
		serve, why := s.Serve()
		switch {
		case !serve && d != nil:
			// The unit may no longer serve (it stood down, or lost the pair's lease): killed at once, so that
			// no write still in progress is answered from here.
			s.Log.Info("file shares stop", "why", why)
			s.kill(d)
			d = nil
		case serve && d != nil && d.exited():
			if time.Since(d.started) > maxRetryWait {
				wait = every // it had been running: a first failure
			}
			s.Log.Error("the file server stopped by itself; starting it again", "err", d.err, "after", wait)
			s.set(appliance.SharesFailed, "The file server stopped; the unit starts it again. The service log has the details.")
			s.stop(d)
			d = nil
			retry, wait = time.Now().Add(wait), min(2*wait, maxRetryWait)
		}
		switch {
		case !serve:
			s.set(appliance.SharesStopped, why)
			retry, wait = time.Time{}, every
		case time.Now().Before(retry):
		default:
			if err := s.apply(ctx, &d); err != nil {
				s.Log.Error("file shares", "err", err, "again in", wait)
				s.set(appliance.SharesFailed, "The file server could not start; the unit tries again. The service log has the details.")
				retry, wait = time.Now().Add(wait), min(2*wait, maxRetryWait)
			} else {
				s.set(appliance.SharesServing, "")
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-s.changed:
		case <-roleChanged: // a unit that stands down stops serving at once; one that takes over starts
		}
	}
}

// apply writes the configuration, creates the shares' folders and starts smbd, or, when it runs and the
// configuration changed, has it read the new one.
func (s *Server) apply(ctx context.Context, d **daemon) error {
	uid, gid, err := s.ownerIDs()
	if err != nil {
		return fmt.Errorf("the shares' owner: %w", err)
	}
	base, err := os.ReadFile(s.Passwd)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.Passwd, err)
	}
	s.mu.Lock()
	files := []struct {
		path, text string
		mode       os.FileMode
	}{
		{s.Passwd, s.cfg.passwd(string(base), gid), 0o644},
		{filepath.Join(s.RunDir, "smbpasswd"), s.cfg.smbpasswd(), 0o600},
		{s.Conf, s.cfg.render(s.Name, paths{Docs: s.Dir, Run: s.RunDir, Private: s.PrivateDir}), 0o644},
	}
	names := make([]string, 0, len(s.cfg.Shares))
	for _, sh := range s.cfg.Shares {
		names = append(names, sh.Name)
	}
	s.mu.Unlock()
	written := files[1].text + files[2].text
	if *d != nil && (*d).written == written {
		return nil
	}
	if err := s.folders(names, uid, gid); err != nil {
		return err
	}
	for _, dir := range []string{s.RunDir, s.PrivateDir, filepath.Dir(s.Conf)} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("file server directory: %w", err)
		}
	}
	// The Unix accounts first: Samba looks an account up there when it reads smbpasswd.
	for _, f := range files {
		if err := durable.WriteFile(f.path, strings.NewReader(f.text), func(fh *os.File) error { return fh.Chmod(f.mode) }); err != nil {
			return err
		}
	}
	if *d != nil {
		// smbd reads smb.conf again on SIGHUP and smbpasswd at every sign-in; sessions stay up. A server
		// just started may not handle SIGHUP yet, and would die of it: it is told at a later pass (the
		// files are written; it reads them if it starts meanwhile).
		if !catches((*d).cmd.Process.Pid, syscall.SIGHUP) {
			return nil
		}
		if err := (*d).cmd.Process.Signal(syscall.SIGHUP); err != nil {
			return fmt.Errorf("reload the file server: %w", err)
		}
		(*d).written = written
		s.Log.Info("file shares reloaded", "shares", len(names))
		return nil
	}
	nd, err := s.start(ctx)
	if err != nil {
		return err
	}
	nd.written = written
	*d = nd
	s.Log.Info("file shares serving", "shares", len(names))
	return nil
}

// folders makes each share's folder a folder of Owner's, 0770: created when missing; one that exists
// (made by a documents restore, for instance) keeps its files and takes that owner, so the share's
// accounts can add to it.
func (s *Server) folders(names []string, uid, gid int) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("documents folder: %w", err)
	}
	for _, n := range names {
		p := filepath.Join(s.Dir, n)
		if err := os.Mkdir(p, 0o770); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("folder of share %q: %w", n, err)
		}
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() {
			return fmt.Errorf("folder of share %q: %s is not a folder", n, p)
		}
		if err := os.Chmod(p, 0o770); err != nil { // not the umask's
			return fmt.Errorf("folder of share %q: %w", n, err)
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("folder of share %q: %w", n, err)
		}
	}
	return nil
}

func (s *Server) ownerIDs() (int, int, error) {
	if s.OwnerIDs != nil {
		return s.OwnerIDs()
	}
	u, err := user.Lookup(Owner)
	if err != nil {
		return 0, 0, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, err
	}
	gid, err := strconv.Atoi(u.Gid)
	return uid, gid, err
}

// daemon is a running smbd and the configuration it was given.
type daemon struct {
	started time.Time
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	written string
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// start runs smbd in the foreground, in a process group of its own with the processes it forks (one per
// client connection, and the RPC helpers): stopping it stops them all.
func (s *Server) start(ctx context.Context) (*daemon, error) {
	cmd := exec.Command(s.Smbd, "--foreground", "--no-process-group", "--debug-stdout", "--configfile="+s.Conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = logWriter{s.Log}
	cmd.Stderr = logWriter{s.Log}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start smbd: %w", err)
	}
	s.alive(1)
	d := &daemon{cmd: cmd, done: make(chan struct{}), started: time.Now()}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	return d, nil
}

// stop ends smbd and every process of its group, which closes every client connection (the next unit to
// serve opens them afresh).
func (s *Server) stop(d *daemon) {
	pgid := d.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-d.done
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // what did not leave with its parent
	s.alive(-1)
}

// kill ends smbd and every process of its group at once: a process waiting for a write to reach the disks
// dies when the write returns, before it can answer the client.
func (s *Server) kill(d *daemon) {
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	s.alive(-1)
	<-d.done
}

func (s *Server) alive(n int) {
	s.mu.Lock()
	s.live += n
	s.mu.Unlock()
}

// Serving reports whether a file server this unit started may still answer a client: it was started and
// not yet sent SIGKILL. Writes the documents' fencing holds may complete once it may not (unanswered).
func (s *Server) Serving() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live > 0
}

// logWriter passes a child's output to the log, a line at a time.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info("smbd", "out", strings.TrimSpace(string(p)))
	return len(p), nil
}

// catches reports whether process pid handles sig (its SigCgt mask in /proc); true when that cannot be read.
func catches(pid int, sig syscall.Signal) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(b), "\n") {
		if mask, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(mask), 16, 64)
			return err != nil || m&(1<<(uint(sig)-1)) != 0
		}
	}
	return true
}
