package supervise

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

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
