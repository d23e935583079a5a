package supervise

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Part is a long-running part of the daemon (storage, database, pair, ...): Run(ctx) returns when ctx ends.
type Part struct {
	Name string
	Run  func(ctx context.Context) error
}

// Parts runs the daemon's parts as the Supervisor runs services: a part that returns an error or panics
// before ctx ends is logged and started again after a backoff (doubling from MinBackoff to MaxBackoff, back
// to MinBackoff after a run of StableAfter); its state is in Status, for the status page and the alerts.
// A part that returns nil before ctx ends has finished its work and is not started again.
type Parts struct {
	Log                                 *slog.Logger
	MinBackoff, MaxBackoff, StableAfter time.Duration // 0: 1 s, 1 min, 1 min

	mu    sync.Mutex
	parts []Part
	state map[string]*Status
}

// Add adds a part; Run starts every part added before it.
func (g *Parts) Add(name string, run func(ctx context.Context) error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.parts = append(g.parts, Part{Name: name, Run: run})
}

// Run runs every part until ctx ends, and returns once all have returned.
func (g *Parts) Run(ctx context.Context) {
	g.mu.Lock()
	parts := g.parts
	if g.state == nil {
		g.state = map[string]*Status{}
	}
	for _, p := range parts {
		g.state[p.Name] = &Status{Name: p.Name, State: "running", Since: time.Now()}
	}
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.loop(ctx, p)
		}()
	}
	wg.Wait()
}

func (g *Parts) loop(ctx context.Context, p Part) {
	minB, maxB, stable := or(g.MinBackoff, time.Second), or(g.MaxBackoff, time.Minute), or(g.StableAfter, time.Minute)
	backoff := minB
	for {
		started := time.Now()
		err := runPart(ctx, p)
		switch {
		case ctx.Err() != nil:
			g.set(p.Name, func(st *Status) { st.State = "stopped" })
			return
		case err == nil:
			g.Log.Info("part finished", "part", p.Name)
			g.set(p.Name, func(st *Status) { st.State = "finished" })
			return
		}
		if time.Since(started) >= stable {
			backoff = minB
		}
		g.Log.Error("part failed, restarting", "part", p.Name, "err", err, "in", backoff)
		g.set(p.Name, func(st *Status) { st.State = "backoff"; st.LastExit = err.Error(); st.Restarts++ })
		select {
		case <-ctx.Done():
			g.set(p.Name, func(st *Status) { st.State = "stopped" })
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxB)
		g.set(p.Name, func(st *Status) { st.State = "running" })
	}
}

// runPart runs p once; a panic is its error (with the stack, for the log).
func runPart(ctx context.Context, p Part) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return p.Run(ctx)
}

func or(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (g *Parts) set(name string, f func(*Status)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.state[name]
	f(st)
	st.Since = time.Now()
}

// Status is every part's state, in the order they were added.
func (g *Parts) Status() []Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Status, 0, len(g.parts))
	for _, p := range g.parts {
		if st, ok := g.state[p.Name]; ok {
			out = append(out, *st)
		}
	}
	return out
}
