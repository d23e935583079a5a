package supervise

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) { b.mu.Lock(); defer b.mu.Unlock(); return b.b.Write(p) }
func (b *syncBuf) String() string              { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reaperCtx lives until the test ends: the reaper must outlive the supervisor, as it does in PID 1.
func reaperCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

func start(t *testing.T, svcs ...Service) (*Supervisor, *syncBuf) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := NewReaper(log)
	console := &syncBuf{}
	s := New(log, r, console, svcs)
	s.MinBackoff, s.MaxBackoff, s.StopGrace = 10*time.Millisecond, 40*time.Millisecond, time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go r.Run(reaperCtx(t))
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s, console
}

func TestRestartsCrashingService(t *testing.T) {
	s, console := start(t, Service{Name: "crashy", Argv: []string{"/bin/sh", "-c", "echo hello; exit 3"}})
	waitFor(t, "three restarts", func() bool { return s.Status()[0].Restarts >= 3 })
	st := s.Status()[0]
	if st.LastExit != "exit status 3" {
		t.Errorf("LastExit = %q, want %q", st.LastExit, "exit status 3")
	}
	if !strings.Contains(console.String(), "[crashy] hello\n") {
		t.Errorf("console = %q, want a prefixed line from the service", console.String())
	}
	if logs := st.Logs; len(logs) < 3 || logs[0] != "hello" {
		t.Errorf("Logs = %q, want repeated hello lines", logs)
	}
}

func TestSignalRestartsService(t *testing.T) {
	s, _ := start(t, Service{Name: "sleeper", Argv: []string{"/bin/sleep", "60"}})
	waitFor(t, "running", func() bool { return s.Status()[0].State == "running" })
	pid := s.Status()[0].PID
	if err := s.Signal("sleeper", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new pid", func() bool { st := s.Status()[0]; return st.State == "running" && st.PID != pid })
	if st := s.Status()[0]; st.LastExit != "killed by signal SIGKILL" || st.Restarts != 1 {
		t.Errorf("after kill: LastExit %q Restarts %d, want SIGKILL and 1", st.LastExit, st.Restarts)
	}
	if err := s.Signal("nope", syscall.SIGTERM); err == nil {
		t.Error("Signal(unknown) = nil, want error")
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := NewReaper(log)
	s := New(log, r, io.Discard, []Service{{Name: "stubborn", Argv: []string{"/bin/sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.05; done"}}})
	s.StopGrace = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	go r.Run(reaperCtx(t))
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	waitFor(t, "output", func() bool { return len(s.Status()[0].Logs) > 0 })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx was cancelled: the service ignoring TERM was not killed")
	}
	if st := s.Status()[0]; st.State != "stopped" {
		t.Errorf("State = %q, want stopped", st.State)
	}
}

func TestRing(t *testing.T) {
	r := NewRing(3)
	for i := range 5 {
		r.Add(fmt.Sprint(i))
	}
	if got := strings.Join(r.Lines(), ","); got != "2,3,4" {
		t.Errorf("Lines() = %s, want 2,3,4", got)
	}
}
