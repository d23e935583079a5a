package wire

import (
	"errors"
	"testing"
	"time"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func TestSealOpenForgedReplayed(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var seq Sequence
	m := Message{Kind: "heartbeat", From: "A", Seq: seq.Next(now), Time: now, Role: "active"}
	b, err := Seal(key, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(key, b)
	if err != nil || got.Role != "active" || got.Seq != m.Seq {
		t.Fatalf("open: %+v %v", got, err)
	}
	forged := append([]byte(nil), b...)
	forged[10] ^= 1
	if _, err := Open(key, forged); !errors.Is(err, ErrBadTag) {
		t.Errorf("a changed message: %v", err)
	}
	if _, err := Open([]byte("another key, another pair......."), b); !errors.Is(err, ErrBadTag) {
		t.Errorf("another pair's key: %v", err)
	}
	var r Replay
	if err := r.Check("pair/A", got.Seq); err != nil {
		t.Fatal(err)
	}
	if err := r.Check("pair/A", got.Seq); !errors.Is(err, ErrReplay) {
		t.Errorf("the same message twice: %v", err)
	}
	// Another key's window is another window: the witness key cannot move the pair key's.
	if err := r.Check("witness/A", ^uint64(0)); err != nil {
		t.Fatal(err)
	}
	if err := r.Check("pair/A", got.Seq+1); err != nil {
		t.Errorf("a heartbeat after a huge number on the witness key: %v", err)
	}
	// Restored after a restart, the windows still refuse what was seen.
	var restarted Replay
	restarted.Load(r.Windows())
	if err := restarted.Check("pair/A", got.Seq); !errors.Is(err, ErrReplay) {
		t.Errorf("a recorded message after a restart of the receiver: %v", err)
	}
}

// A sender's numbers keep rising across restarts whatever its clock says (a unit without a battery-backed
// clock boots in the past), and a new high-water mark is asked for before the saved one is reached.
func TestSequenceIgnoresTheClockOnceStarted(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var saved uint64
	var s Sequence
	saved = s.Start(saved, now)
	s.Reserve = func(mark uint64) { saved = mark }
	var last uint64
	for range seqBlock {
		last = s.Next(now)
		if last >= saved {
			t.Fatalf("number %d at or past the saved mark %d", last, saved)
		}
	}
	// Rebooted with the clock years back: it continues above every number used.
	var again Sequence
	again.Start(saved, now.AddDate(-6, 0, 0))
	if n := again.Next(now.AddDate(-6, 0, 0)); n <= last {
		t.Errorf("after a restart with the clock behind: %d, not above %d", n, last)
	}
}
