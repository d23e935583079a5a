package supervise

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Reaper starts child processes and collects the exit status of every child, including orphans that the
// kernel reparents to PID 1. It owns all waiting: nothing else in the process may call wait on a child it
// started, or the two would race for exit statuses.
type Reaper struct {
	log *slog.Logger

	mu      sync.Mutex                      // guards waiting; held across fork so a fast exit is not lost
	waiting map[int]chan syscall.WaitStatus // pid -> where its exit status goes
}

// NewReaper returns a Reaper; call Run to make it collect exits.
func NewReaper(log *slog.Logger) *Reaper {
	return &Reaper{log: log, waiting: map[int]chan syscall.WaitStatus{}}
}

// Start starts argv[0] with attr and returns its pid and a channel that receives its exit status once.
func (r *Reaper) Start(argv []string, attr *os.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := os.StartProcess(argv[0], argv, attr)
	if err != nil {
		return 0, nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiting[p.Pid] = ch
	pid := p.Pid
	_ = p.Release() // the reaper waits, not os.Process
	return pid, ch, nil
}

// Run collects exited children until ctx is done.
func (r *Reaper) Run(ctx context.Context) error {
	sig := make(chan os.Signal, 16)
	signal.Notify(sig, unix.SIGCHLD)
	defer signal.Stop(sig)
	for {
		r.reap()
		select {
		case <-ctx.Done():
			return nil
		case <-sig:
		}
	}
}

func (r *Reaper) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		r.mu.Lock()
		ch, ok := r.waiting[pid]
		delete(r.waiting, pid)
		r.mu.Unlock()
		if ok {
			ch <- syscall.WaitStatus(ws)
		} else {
			r.log.Debug("reaped orphan", "pid", pid, "status", describe(syscall.WaitStatus(ws)))
		}
	}
}

// describe says how a process ended, for logs and the status page.
func describe(ws syscall.WaitStatus) string {
	switch {
	case ws.Signaled():
		return "killed by signal " + unix.SignalName(ws.Signal())
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	}
	return fmt.Sprintf("status %#x", uint32(ws))
}

// Output runs argv to its end under the reaper and returns its standard output (its errors go to
// /dev/null), as os/exec's Cmd.Output does: in PID 1, where the reaper collects every child, the one safe
// way to run a command (os/exec would wait for its child too, and lose the race for its exit status). It
// fails when the command cannot start, exits other than 0, or ctx ends first (the command is killed).
func (r *Reaper) Output(ctx context.Context, argv ...string) ([]byte, error) {
	return r.output(ctx, false, argv)
}

// CombinedOutput is Output with the command's errors in what it returns (raid.Runner's contract).
func (r *Reaper) CombinedOutput(ctx context.Context, argv ...string) ([]byte, error) {
	return r.output(ctx, true, argv)
}

func (r *Reaper) output(ctx context.Context, combined bool, argv []string) ([]byte, error) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	stderr := null
	if combined {
		stderr = pw
	}
	pid, exited, err := r.Start(argv, &os.ProcAttr{Files: []*os.File{null, pw, stderr}})
	pw.Close()
	if err != nil {
		return nil, err
	}
	read := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(pr)
		read <- b
	}()
	var ws syscall.WaitStatus
	select {
	case ws = <-exited:
	case <-ctx.Done():
		_ = unix.Kill(pid, unix.SIGKILL)
		<-exited
		return nil, fmt.Errorf("%s: %w", strings.Join(argv, " "), ctx.Err())
	}
	var out []byte
	select {
	case out = <-read:
	case <-time.After(time.Second): // a grandchild keeps the pipe open: what came is enough
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		return out, fmt.Errorf("%s: %s: %s", strings.Join(argv, " "), describe(ws), bytes.TrimSpace(out))
	}
	return out, nil
}
