package supervise

import "sync"

// Ring keeps the last lines a service printed.
type Ring struct {
	mu    sync.Mutex // guards lines and next
	lines []string
	next  int
	full  bool
}

// NewRing returns a ring holding at most n lines.
func NewRing(n int) *Ring { return &Ring{lines: make([]string, n)} }

// Add appends a line, dropping the oldest when full.
func (r *Ring) Add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines[r.next] = line
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
}

// Lines returns the kept lines, oldest first.
func (r *Ring) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]string(nil), r.lines[:r.next]...)
	}
	return append(append([]string(nil), r.lines[r.next:]...), r.lines[:r.next]...)
}
