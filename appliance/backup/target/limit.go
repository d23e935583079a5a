package target

import (
	"context"
	"io"
	"time"
)

// Limited caps the rate of its uploads (Rate bytes per second).
type Limited struct {
	Target
	Rate int64
}

func (l Limited) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	lr := &limited{r: r, rate: l.Rate, now: time.Now, sleep: time.Sleep}
	if s, ok := r.(io.Seeker); ok { // keep an upload resumable
		return l.Target.Put(ctx, key, seekLimited{lr, s}, size)
	}
	return l.Target.Put(ctx, key, lr, size)
}

// limited reads at most rate bytes per second on average since its first read, in slices of a tenth of a
// second's worth, sleeping whenever it is ahead.
type limited struct {
	r     io.Reader
	rate  int64
	start time.Time
	n     int64
	now   func() time.Time
	sleep func(time.Duration)
}

func (l *limited) Read(b []byte) (int, error) {
	if l.start.IsZero() {
		l.start = l.now()
	}
	if max := max(l.rate/10, 1); int64(len(b)) > max {
		b = b[:max]
	}
	n, err := l.r.Read(b)
	l.n += int64(n)
	if ahead := time.Duration(l.n*int64(time.Second)/l.rate) - l.now().Sub(l.start); ahead > 0 {
		l.sleep(ahead)
	}
	return n, err
}

type seekLimited struct {
	*limited
	s io.Seeker
}

func (s seekLimited) Seek(off int64, whence int) (int64, error) { return s.s.Seek(off, whence) }
