package qemutests

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
)

// Hub is a userspace Ethernet hub joining VMs through QEMU "-netdev dgram" unix sockets. Every frame a
// port sends goes to every other connected port; a test can cut a port (both directions) and restore it.
// Each port has its own send queue: a VM that does not read (still booting: QEMU reads its socket only
// once the guest's NIC is up, and the kernel queues just 10 datagrams) must not stall the others. A full
// queue drops frames, as a switch port does.
type Hub struct {
	dir string

	mu     sync.Mutex // guards ports and tap
	ports  []*hubPort
	tap    func(port int, frame []byte)
	closed bool
}

type hubPort struct {
	out      chan []byte
	conn     *net.UnixConn
	peer     *net.UnixAddr // the VM's end
	cut      bool
	received int // frames the VM sent to the hub
	dropped  int // frames dropped because the port was cut
}

// NewHub returns a hub whose sockets live in dir.
func NewHub(dir string) *Hub { return &Hub{dir: dir} }

// AddPort creates a port and returns the -netdev dgram option values for the VM: the VM's local socket
// path and the hub's socket path.
func (h *Hub) AddPort() (n int, vmPath, hubPath string, err error) {
	h.mu.Lock()
	n = len(h.ports)
	h.mu.Unlock()
	hubPath = filepath.Join(h.dir, fmt.Sprintf("hub-%d.sock", n))
	vmPath = filepath.Join(h.dir, fmt.Sprintf("vm-%d.sock", n))
	os.Remove(hubPath)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: hubPath, Net: "unixgram"})
	if err != nil {
		return 0, "", "", fmt.Errorf("hub port %d: %w", n, err)
	}
	p := &hubPort{conn: conn, peer: &net.UnixAddr{Name: vmPath, Net: "unixgram"}, out: make(chan []byte, 512)}
	go func() {
		for f := range p.out {
			_, _ = p.conn.WriteToUnix(f, p.peer) // a VM that is not up yet just misses the frame
		}
	}()
	h.mu.Lock()
	h.ports = append(h.ports, p)
	h.mu.Unlock()
	go h.forward(n, p)
	return n, vmPath, hubPath, nil
}

func (h *Hub) forward(n int, from *hubPort) {
	buf := make([]byte, 65536)
	for {
		m, _, err := from.conn.ReadFromUnix(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return
		}
		from.received++
		if h.tap != nil {
			h.tap(n, append([]byte(nil), buf[:m]...))
		}
		if from.cut {
			from.dropped++
			h.mu.Unlock()
			continue
		}
		for i, to := range h.ports {
			if i == n {
				continue
			}
			if to.cut {
				to.dropped++
				continue
			}
			select {
			case to.out <- append([]byte(nil), buf[:m]...):
			default:
				to.dropped++
			}
		}
		h.mu.Unlock()
	}
}

// SetTap makes f see a copy of every frame a port sends (nil: none). f runs with the hub locked: it must
// not call the hub.
func (h *Hub) SetTap(f func(port int, frame []byte)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tap = f
}

// Inject delivers frame to port n as if another port had sent it (a forged or replayed frame).
func (h *Hub) Inject(n int, frame []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("hub closed")
	}
	select {
	case h.ports[n].out <- frame:
		return nil
	default:
		return fmt.Errorf("hub port %d: send queue full", n)
	}
}

// SetCut cuts (true) or restores (false) port n.
func (h *Hub) SetCut(n int, cut bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ports[n].cut = cut
}

// Counters returns how many frames port n sent to the hub, and how many of those or of frames for it
// were dropped (the port was cut, or its send queue was full).
func (h *Hub) Counters(n int) (received, dropped int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ports[n].received, h.ports[n].dropped
}

// Close closes every port.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for _, p := range h.ports {
		p.conn.Close()
		close(p.out)
	}
}
