package replica

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lawbox/appliance/hw/drbd"
)

// Fencing. When the active unit's replication breaks, DRBD holds its writes (resource-and-stonith) and
// runs the firmware's fence-peer helper, which asks this unit's daemon (FenceSocket). The writes go on
// once the partner's copy can no longer be taken for the newest: the partner marked it outdated, told over
// the pair link (OutdatePath; DRBD keeps that in the partner's metadata, so a partner that restarts still
// refuses to serve it), or the partner cannot come back and serve it (Alone: the witness raised the epoch
// for this unit). A unit cut off from both holds the writes until it stands down; then its file server is
// killed first, and the writes it held complete unanswered (dropped when it rejoins). This is the window
// the heartbeats alone left open: the replication broken while they go on, the active unit writing alone,
// then dying before its partner counted its copy as behind.

// FenceSocket is where the fence-peer helper asks the daemon.
const FenceSocket = "/run/drbd/fence.sock"

// OutdatePath is the pair link's request that marks the partner's copy of the documents outdated.
const OutdatePath = "/link/v1/documents/outdate"

// fenceEvery is how often a held fence asks the partner again.
const fenceEvery = time.Second

// serveFence answers the fence-peer helper on path until ctx ends: one line, DRBD's exit code for it.
func (r *Replica) serveFence(ctx context.Context, path string) error {
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("documents fencing: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("documents fencing: %w", err)
	}
	go func() { <-ctx.Done(); l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("documents fencing: %w", err)
		}
		go func() {
			defer c.Close()
			_, _ = bufio.NewReader(io.LimitReader(c, 256)).ReadString('\n') // "fence-peer documents": nothing else is asked
			if code := r.fence(ctx); code != 0 {
				fmt.Fprintf(c, "%d\n", code)
			}
		}()
	}
}

// AskFence is the fence-peer helper's question to the daemon at sock: it answers DRBD's exit code.
func AskFence(sock, resource string) (int, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "fence-peer %s\n", resource); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("no answer: %w", err)
	}
	return strconv.Atoi(strings.TrimSpace(line))
}

// fence waits until this unit's writes may go on without the partner and answers DRBD's exit code (0:
// ctx ended first; the helper asks again). The partner is asked (each try up to 3 s: a dead one answers
// nothing) while the rest is looked at every fencePoll, so a takeover after the partner died goes on as
// soon as the witness raised this unit's epoch.
func (r *Replica) fence(ctx context.Context) int {
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	partner := errors.New("the other unit has not answered yet") // its answer to "mark your copy outdated"
	go func() {
		for ctx.Err() == nil && r.leads() {
			call, stop := context.WithTimeout(ctx, 3*time.Second)
			err := r.outdatePartner(call)
			stop()
			mu.Lock()
			partner = err
			mu.Unlock()
			if err == nil {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(fenceEvery):
			}
		}
	}()
	var last string
	for {
		mu.Lock()
		asked := partner
		mu.Unlock()
		code, why := r.fenceStep(asked)
		if code != 0 {
			r.Log.Info("the documents' writes go on", "why", why, "held", time.Since(start).Round(time.Millisecond))
			return code
		}
		if why != last { // said once the writes really wait: a unit alone or unpaired is answered at once
			r.Log.Warn("the documents' replication is down: writes wait until the other unit's copy cannot be taken for the newest", "why", why)
			last = why
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(fencePoll):
		}
	}
}

// fencePoll is how often a held fence looks again at the pair and the file server.
const fencePoll = 200 * time.Millisecond

// fenceStep decides: DRBD's exit code, or 0 and why the writes wait. partner is the partner's last answer
// to the request to mark its copy outdated (nil: it did).
func (r *Replica) fenceStep(partner error) (int, string) {
	if r.pairID() == "" {
		return drbd.FencePeerDown, "unpaired: no other copy"
	}
	if !r.leads() {
		// It stood down while its writes waited (cut off from its partner and the witness). They complete
		// once nothing can answer them any more; the partner, active, has the newer copy.
		if r.Quiet != nil && !r.Quiet() {
			return 0, "the file server is being stopped"
		}
		return drbd.FencePeerDown, "this unit stood down; the writes it held were never answered"
	}
	if partner == nil {
		return drbd.FenceOutdated, "the other unit marked its copy outdated"
	}
	if r.Alone != nil && r.Alone() { // a takeover after the partner died: nobody to ask
		return drbd.FencePeerDown, "the other unit cannot serve its copy any more (the witness raised this unit's epoch)"
	}
	return 0, partner.Error()
}

// outdatePartner asks the partner, over the pair link, to mark its copy outdated.
func (r *Replica) outdatePartner(ctx context.Context) error {
	if r.Call == nil {
		return errors.New("no pair link")
	}
	code, msg, err := r.post(ctx, OutdatePath, "")
	if err != nil {
		return fmt.Errorf("the other unit did not answer: %w", err)
	}
	if code != http.StatusNoContent {
		return fmt.Errorf("the other unit did not mark its copy outdated: %d %s", code, msg)
	}
	return nil
}

// OutdateHandler answers the partner's request to mark this unit's copy outdated; the volume's own
// goroutine (Run) carries it out between two passes.
func (r *Replica) OutdateHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		done := make(chan error, 1)
		select {
		case r.requests() <- done:
		case <-req.Context().Done():
			return
		}
		select {
		case err := <-done:
			if err != nil {
				r.Log.Error("mark the documents copy outdated for the partner", "err", err)
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		case <-req.Context().Done():
		}
	})
}

func (r *Replica) requests() chan chan error {
	r.outdatesOnce.Do(func() { r.outdates = make(chan chan error) })
	return r.outdates
}

// outdate marks this unit's copy outdated: the partner writes alone. DRBD outdates only a copy that is
// not connected: a connection this side still sees is dropped first (the next pass connects again). Its
// refusals go to the partner's log, not to an admin.
func (r *Replica) outdate(ctx context.Context) error {
	if r.leads() {
		return errors.New("this unit serves the documents")
	}
	st, err := r.DRBD.State()
	if err != nil {
		return err
	}
	switch {
	case !st.Configured || st.Disk != "UpToDate":
		return nil // nothing here that could be taken for the newest
	case r.load().Pair != r.pairID():
		return nil // a copy made before the pairing is never made primary while paired (lead): left as it is
	case st.Role == "Primary":
		return errors.New("this unit's documents volume is still primary")
	case strings.HasPrefix(st.Connection, "SyncSource") || st.Connection == "PausedSyncS":
		return errors.New("the other unit's copy is being synchronised from this one")
	}
	if connected(st) || st.Connection == "WFReportParams" {
		if err := r.dropConnection(ctx); err != nil {
			return err
		}
	}
	if err := r.DRBD.Outdate(ctx); err != nil {
		return err
	}
	r.Log.Warn("the other unit writes the documents alone: this unit's copy is marked outdated until it is synchronised again")
	return nil
}

// dropConnection drops the connection to the partner that DRBD still sees; the next pass connects again,
// plainly (not as after a refusal).
func (r *Replica) dropConnection(ctx context.Context) error {
	p := r.current
	if p.Remote == "" {
		p, _ = r.peer()
	}
	if err := r.DRBD.Disconnect(ctx, p); err != nil {
		return err
	}
	r.connecting, r.current = false, drbd.Peer{}
	return nil
}
