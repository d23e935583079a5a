// Package link follows the network ports' link state (the carrier: a cable plugged into a live switch
// port) as the kernel announces it over netlink, so a pulled cable or a dead switch port is seen within a
// second rather than at the next heartbeat timeout.
package link

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/lawbox/appliance/netcfg/static"
)

// State is one port's link.
type State struct {
	Name    string
	MAC     string
	Carrier bool
	Seen    bool      // had a carrier at some point since the watch began
	Changed time.Time // the last change of Carrier (when the watch first saw the port, if none since)
}

// Watcher keeps the state of every physical port (and bond).
type Watcher struct {
	Log *slog.Logger
	Now func() time.Time // nil: time.Now

	mu    sync.Mutex
	ports map[int32]State // by interface index
}

// Run follows the kernel's link messages until ctx ends, subscribing again after an error.
func (w *Watcher) Run(ctx context.Context) error {
	for {
		err := w.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		w.Log.Warn("link watch", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (w *Watcher) watch(ctx context.Context) error {
	ch := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	errc := make(chan error, 1)
	opts := netlink.LinkSubscribeOptions{ListExisting: true, ErrorCallback: func(err error) {
		select {
		case errc <- err:
		default:
		}
	}}
	if err := netlink.LinkSubscribeWithOptions(ch, done, opts); err != nil {
		return fmt.Errorf("subscribe to link changes: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case u, ok := <-ch:
			if !ok {
				return errors.New("the kernel's link messages ended")
			}
			w.Update(u.Header.Type == unix.RTM_DELLINK, u.Index, u.Flags, u.Link)
		}
	}
}

// Update takes one link message: gone (RTM_DELLINK), the interface index and flags, and the link.
func (w *Watcher) Update(gone bool, index int32, flags uint32, l netlink.Link) {
	attrs := l.Attrs()
	if attrs == nil || attrs.Flags&net.FlagLoopback != 0 || (l.Type() != "device" && l.Type() != "bond") {
		return
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ports == nil {
		w.ports = map[int32]State{}
	}
	if gone {
		delete(w.ports, index)
		return
	}
	carrier := flags&unix.IFF_LOWER_UP != 0
	s, known := w.ports[index]
	if !known || s.Carrier != carrier {
		if known {
			w.Log.Info("link", "port", attrs.Name, "carrier", carrier)
		}
		s.Changed = now()
	}
	s.Name, s.MAC, s.Carrier = attrs.Name, static.MAC(l), carrier
	s.Seen = s.Seen || carrier
	w.ports[index] = s
}

// States lists the ports by name.
func (w *Watcher) States() []State {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]State, 0, len(w.ports))
	for _, s := range w.ports {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b State) int { return strings.Compare(a.Name, b.Name) })
	return out
}
