// Package supervise runs the appliance's long-running programs as child processes of PID 1: it restarts a
// program that exits with a growing backoff, keeps a ring buffer of each one's recent output, forwards that
// output to the console, and stops them all (TERM, then KILL) on shutdown. It does not decide which programs
// run; cmd/appliance gives it the list.
package supervise

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Service is one supervised program.
type Service struct {
	Name string
	Argv []string // Argv[0] is an absolute path
	Env  []string
}

// Status is a snapshot of one service, as the status page shows it.
type Status struct {
	Name     string    `json:"name"`
	State    string    `json:"state"` // "starting", "running", "backoff", "stopped"
	PID      int       `json:"pid,omitempty"`
	Restarts int       `json:"restarts"`
	LastExit string    `json:"last_exit,omitempty"`
	Since    time.Time `json:"since"`
	Logs     []string  `json:"logs,omitempty"`
}

// ErrUnknownService is returned for a service name the supervisor does not run.
var ErrUnknownService = errors.New("unknown service")

// Supervisor runs services under a Reaper.
type Supervisor struct {
	log     *slog.Logger
	reaper  *Reaper
	console io.Writer

	// MinBackoff is the delay before the first restart; it doubles up to MaxBackoff, and falls back to
	// MinBackoff once a run has lasted StableAfter. StopGrace is how long a service has to exit after TERM.
	MinBackoff, MaxBackoff, StableAfter, StopGrace time.Duration

	mu    sync.Mutex // guards procs and their fields
	procs map[string]*proc
	order []string
}

type proc struct {
	svc  Service
	ring *Ring
	st   Status
}

// New returns a supervisor for services; their output goes to console, one line at a time, prefixed by name.
func New(log *slog.Logger, reaper *Reaper, console io.Writer, services []Service) *Supervisor {
	s := &Supervisor{
		log: log, reaper: reaper, console: console,
		MinBackoff: time.Second, MaxBackoff: 30 * time.Second, StableAfter: 10 * time.Second, StopGrace: 10 * time.Second,
		procs: map[string]*proc{},
	}
	for _, svc := range services {
		s.procs[svc.Name] = &proc{svc: svc, ring: NewRing(200), st: Status{Name: svc.Name, State: "starting"}}
		s.order = append(s.order, svc.Name)
	}
	return s
}

// Output runs a command to its end under the supervisor's reaper and returns its standard output
// (Reaper.Output).
func (s *Supervisor) Output(ctx context.Context, argv ...string) ([]byte, error) {
	return s.reaper.Output(ctx, argv...)
}

// CombinedOutput is Output with the command's errors in what it returns (Reaper.CombinedOutput).
func (s *Supervisor) CombinedOutput(ctx context.Context, argv ...string) ([]byte, error) {
	return s.reaper.CombinedOutput(ctx, argv...)
}

// Run runs every service until ctx is done, then stops them all and returns.
func (s *Supervisor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, name := range s.order {
		wg.Add(1)
		go func(p *proc) {
			defer wg.Done()
			s.loop(ctx, p)
		}(s.procs[name])
	}
	wg.Wait()
	return nil
}

func (s *Supervisor) loop(ctx context.Context, p *proc) {
	backoff := s.MinBackoff
	for {
		started := time.Now()
		err := s.runOnce(ctx, p)
		if ctx.Err() != nil {
			s.log.Info("service stopped", "service", p.svc.Name, "how", err)
			s.set(p, func(st *Status) { st.State = "stopped"; st.PID = 0 })
			return
		}
		if time.Since(started) >= s.StableAfter {
			backoff = s.MinBackoff
		}
		s.log.Warn("service exited, restarting", "service", p.svc.Name, "err", err, "in", backoff)
		s.set(p, func(st *Status) { st.State = "backoff"; st.PID = 0; st.LastExit = err.Error(); st.Restarts++ })
		select {
		case <-ctx.Done():
			s.set(p, func(st *Status) { st.State = "stopped" })
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.MaxBackoff)
	}
}

// runOnce starts the service and waits for it to exit, or stops it when ctx is done.
func (s *Supervisor) runOnce(ctx context.Context, p *proc) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pipe for %s: %w", p.svc.Name, err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		pr.Close()
		pw.Close()
		return fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	pid, exited, err := s.reaper.Start(p.svc.Argv, &os.ProcAttr{
		Env:   p.svc.Env,
		Files: []*os.File{devnull, pw, pw},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	devnull.Close()
	pw.Close()
	if err != nil {
		pr.Close()
		return err
	}
	s.set(p, func(st *Status) { st.State = "running"; st.PID = pid; st.Since = time.Now() })
	s.log.Info("service started", "service", p.svc.Name, "pid", pid)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		s.copyLines(p, pr)
	}()
	var ws syscall.WaitStatus
	select {
	case ws = <-exited:
	case <-ctx.Done():
		ws = s.stop(pid, exited)
	}
	// Grandchildren may still hold the pipe open: do not wait for them forever.
	select {
	case <-copied:
	case <-time.After(time.Second):
	}
	pr.Close()
	return errors.New(describe(ws))
}

// stop sends TERM to the service's process group, then KILL after StopGrace.
func (s *Supervisor) stop(pid int, exited <-chan syscall.WaitStatus) syscall.WaitStatus {
	_ = unix.Kill(-pid, unix.SIGTERM)
	select {
	case ws := <-exited:
		_ = unix.Kill(-pid, unix.SIGKILL) // leftovers of the group
		return ws
	case <-time.After(s.StopGrace):
	}
	_ = unix.Kill(-pid, unix.SIGKILL)
	return <-exited
}

func (s *Supervisor) copyLines(p *proc, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64*1024)
	for sc.Scan() {
		line := sc.Text()
		p.ring.Add(line)
		fmt.Fprintf(s.console, "[%s] %s\n", p.svc.Name, line)
	}
}

func (s *Supervisor) set(p *proc, f func(*Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&p.st)
}

// Status returns every service's state and recent output lines, in start order.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.order))
	for _, n := range s.order {
		p := s.procs[n]
		st := p.st
		st.Logs = p.ring.Lines()
		out = append(out, st)
	}
	return out
}

// Signal sends sig to the named service's process group.
func (s *Supervisor) Signal(name string, sig syscall.Signal) error {
	s.mu.Lock()
	p, ok := s.procs[name]
	var pid int
	if ok {
		pid = p.st.PID
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("signal %s: %w", name, ErrUnknownService)
	}
	if pid == 0 {
		return fmt.Errorf("signal %s: not running", name)
	}
	if err := unix.Kill(-pid, sig); err != nil {
		return fmt.Errorf("signal %s: %w", name, err)
	}
	return nil
}
