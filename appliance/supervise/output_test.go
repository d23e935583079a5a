package supervise

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A command run to its end under the reaper, as PID 1 must run one: what it wrote on both streams, its
// failure with the exit status and its words, and a command that outlives its context killed.
func TestReaperOutput(t *testing.T) {
	r := NewReaper(slog.New(slog.NewTextHandler(io.Discard, nil)))
	go r.Run(reaperCtx(t))
	ctx := context.Background()
	if out, err := r.CombinedOutput(ctx, "/bin/sh", "-c", "echo out; echo err >&2"); err != nil || string(out) != "out\nerr\n" {
		t.Errorf("combined output %q, %v", out, err)
	}
	if out, err := r.Output(ctx, "/bin/sh", "-c", "echo out; echo err >&2"); err != nil || string(out) != "out\n" {
		t.Errorf("output %q, %v", out, err)
	}
	if out, err := r.CombinedOutput(ctx, "/bin/sh", "-c", "echo refused >&2; exit 3"); err == nil || !strings.Contains(err.Error(), "exit status 3: refused") || string(out) != "refused\n" {
		t.Errorf("a failing command: %q, %v", out, err)
	}
	if _, err := r.Output(ctx, "/nonexistent/tool"); err == nil {
		t.Error("a command that does not exist ran")
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := r.Output(short, "/bin/sleep", "30"); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Errorf("a command past its deadline: %v after %v", err, time.Since(start))
	}
}
