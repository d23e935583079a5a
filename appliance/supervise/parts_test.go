package supervise

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A part that fails or panics is started again after its backoff, and says so in Status; one that
// finishes is not; all stop with ctx.
func TestPartsRestartFailedParts(t *testing.T) {
	g := &Parts{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	var fails, panics, done atomic.Int32
	g.Add("socket", func(ctx context.Context) error {
		if fails.Add(1) <= 3 {
			return errors.New("listen udp :7946: address already in use")
		}
		<-ctx.Done()
		return nil
	})
	g.Add("panicky", func(ctx context.Context) error {
		if panics.Add(1) == 1 {
			panic("the part broke")
		}
		<-ctx.Done()
		return nil
	})
	g.Add("once", func(context.Context) error { done.Add(1); return nil })
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { g.Run(ctx); close(ran) }()
	deadline := time.Now().Add(5 * time.Second)
	for fails.Load() < 4 || panics.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("not restarted: %d runs of the failing part, %d of the panicking one", fails.Load(), panics.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	st := g.Status()
	if len(st) != 3 || st[0].Name != "socket" || st[0].State != "running" || st[0].Restarts != 3 || !strings.Contains(st[0].LastExit, "address already in use") {
		t.Errorf("socket: %+v", st[0])
	}
	if st[1].Restarts != 1 || !strings.Contains(st[1].LastExit, "panic: the part broke") {
		t.Errorf("panicky: %+v", st[1])
	}
	if st[2].State != "finished" || done.Load() != 1 {
		t.Errorf("once: %+v, ran %d times", st[2], done.Load())
	}
	cancel()
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
	if st := g.Status(); st[0].State != "stopped" {
		t.Errorf("after ctx: %+v", st[0])
	}
}
