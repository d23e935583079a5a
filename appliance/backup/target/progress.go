package target

import (
	"context"
	"io"
	"sync/atomic"
)

// Progress is how far the running copy or restore has come, in stored bytes, for the page's progress bar.
type Progress struct{ done, total atomic.Int64 }

// Start begins a job of total bytes.
func (p *Progress) Start(total int64) {
	if p != nil {
		p.done.Store(0)
		p.total.Store(total)
	}
}

// Get returns the bytes done and the total (0 when no job measures itself).
func (p *Progress) Get() (done, total int64) {
	if p == nil {
		return 0, 0
	}
	return p.done.Load(), p.total.Load()
}

// Reader counts what is read through it; it keeps r's Seek (a resumable upload).
func (p *Progress) Reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	c := &progressReader{r: r, p: p}
	if s, ok := r.(io.Seeker); ok {
		return progressSeeker{c, s}
	}
	return c
}

type progressReader struct {
	r io.Reader
	p *Progress
}

func (c *progressReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.done.Add(int64(n))
	return n, err
}

type progressSeeker struct {
	*progressReader
	s io.Seeker
}

func (s progressSeeker) Seek(off int64, whence int) (int64, error) {
	n, err := s.s.Seek(off, whence)
	if err == nil && whence == io.SeekStart {
		s.p.done.Add(off) // what a resumed upload does not send again counts as done
	}
	return n, err
}

// Counted counts in Progress what is downloaded from it.
type Counted struct {
	Target
	Progress *Progress
}

func (c Counted) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := c.Target.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	return ReadCloser{Reader: c.Progress.Reader(r), OnClose: r.Close}, nil
}
