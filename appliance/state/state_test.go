package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func TestOpenMigratesAndPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Schema(); err != nil || v != SchemaVersion {
		t.Fatalf("Schema() = %d, %v, want %d", v, err, SchemaVersion)
	}
	if err := s.PutJSON(BucketConfig, "hostname", "front-desk"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(BucketConfig, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) error = %v, want ErrNotFound", err)
	}
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got string
	if err := s.GetJSON(BucketConfig, "hostname", &got); err != nil || got != "front-desk" {
		t.Errorf("after reopen GetJSON = %q, %v, want front-desk", got, err)
	}
	if err := s.Delete(BucketConfig, "hostname"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(BucketConfig, "hostname"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Delete error = %v, want ErrNotFound", err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.migrate(SchemaVersion); err != nil {
		t.Fatal(err)
	}
	// Pretend a newer firmware wrote it.
	if err := s.Put(BucketMeta, "schema", []byte{0, 0, 0, 0, 0, 0, 0, 99}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path); !errors.Is(err, ErrNewerSchema) {
		t.Errorf("Open(newer) error = %v, want ErrNewerSchema", err)
	}
}

func TestEventsAndRelocate(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "ram.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for i, src := range []string{"storage", "auth", "storage", "storage"} {
		if err := s.AddEvent(Event{Time: t0.Add(time.Duration(i) * time.Second), Source: src, Level: "info", Message: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(BucketConfig, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(dir, "disk.db")
	if err := s.Relocate(moved); err != nil {
		t.Fatal(err)
	}
	if s.Path() != moved {
		t.Errorf("path %s", s.Path())
	}
	ev, err := s.Events("storage", 2)
	if err != nil || len(ev) != 2 || ev[0].Message != "2" || ev[1].Message != "3" {
		t.Fatalf("events after relocation: %+v %v", ev, err)
	}
	if v, err := s.Get(BucketConfig, "k"); err != nil || string(v) != "v" {
		t.Fatalf("config after relocation: %q %v", v, err)
	}
	if err := s.Put(BucketConfig, "k2", []byte("w")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := Open(moved)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if v, err := s2.Get(BucketConfig, "k2"); err != nil || string(v) != "w" {
		t.Fatalf("a write after relocation did not land in the new file: %q %v", v, err)
	}
}

// A log bucket keeps its newest entries: appending past keep drops the oldest, in order.
func TestAppendKeepsTheNewest(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const keep, total = 100, 1000
	for i := range total {
		if err := s.Append("log", t0.Add(time.Duration(i)*time.Second), i, keep); err != nil {
			t.Fatal(err)
		}
	}
	var got []int
	if err := s.Last("log", func(v []byte) (bool, error) {
		var i int
		_, err := fmt.Sscan(string(v), &i)
		got = append(got, i)
		return true, err
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) < keep || len(got) > keep+64 {
		t.Fatalf("%d entries kept, want %d (+ at most 64 before a trim)", len(got), keep)
	}
	for j, i := range got {
		if i != total-1-j {
			t.Fatalf("entry %d is %d, want %d (newest first, nothing missing)", j, i, total-1-j)
		}
	}
}

// A hash-chained log verifies until an entry is changed, removed in the middle or at the end, or added.
func TestChainDetectsEdits(t *testing.T) {
	for name, tamper := range map[string]func(s *Store, keys []string){
		"changed": func(s *Store, keys []string) {
			v, _ := s.Get("log", keys[1])
			s.Put("log", keys[1], bytes.Replace(v, []byte("entry 1"), []byte("entry X"), 1))
		},
		"removed in the middle": func(s *Store, keys []string) { s.Delete("log", keys[1]) },
		"removed at the end":    func(s *Store, keys []string) { s.Delete("log", keys[len(keys)-1]) },
		"added": func(s *Store, keys []string) {
			v, _ := s.Get("log", keys[2])
			s.Put("log", keys[2]+"x", v)
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := Open(filepath.Join(t.TempDir(), "state.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
			for i := range 4 {
				if _, err := s.AppendChained("log", now.Add(time.Duration(i)*time.Second), map[string]string{"what": fmt.Sprintf("entry %d", i)}, 0); err != nil {
					t.Fatal(err)
				}
			}
			if n, head, err := s.VerifyChain("log"); err != nil || n != 4 || head == "" {
				t.Fatalf("VerifyChain = %d, %q, %v before any edit", n, head, err)
			}
			var keys []string
			s.ForEach("log", func(k string, _ []byte) error { keys = append(keys, k); return nil })
			tamper(s, keys)
			if _, _, err := s.VerifyChain("log"); !errors.Is(err, ErrBrokenChain) {
				t.Errorf("VerifyChain after the log was %s = %v, want ErrBrokenChain", name, err)
			}
		})
	}
}

// A copy of a chained log kept elsewhere takes what follows its head, refuses what does not (a log
// rewritten at its source), and verifies like the original.
func TestChainCopy(t *testing.T) {
	src, err := Open(filepath.Join(t.TempDir(), "src.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := Open(filepath.Join(t.TempDir(), "dst.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	for i := range 5 {
		src.AppendChained("log", now.Add(time.Duration(i)*time.Second), map[string]int{"n": i}, 0)
	}
	var head string
	for {
		batch, err := src.ChainSince("log", head, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		if head, err = dst.ContinueChain("copy", now, batch, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n, h, err := dst.VerifyChain("copy"); err != nil || n != 5 {
		t.Fatalf("the copy: %d entries, head %q, %v", n, h, err)
	}
	if _, h, _ := src.VerifyChain("log"); h != head {
		t.Errorf("the copy's head %q, the source's %q", head, h)
	}
	// The source's log is rewritten from its third entry on: its new entries do not continue the copy.
	var keys []string
	src.ForEach("log", func(k string, _ []byte) error { keys = append(keys, k); return nil })
	for _, k := range keys[2:] {
		src.Delete("log", k)
	}
	src.Put(BucketMeta, string(headKey("log")), nil)
	for _, k := range keys[:2] {
		v, _ := src.Get("log", k)
		var c Chained
		json.Unmarshal(v, &c)
		src.Put(BucketMeta, string(headKey("log")), []byte(c.Hash))
	}
	src.AppendChained("log", now.Add(time.Minute), map[string]string{"forged": "entry"}, 0)
	batch, _ := src.ChainSince("log", head, 10)
	if len(batch) != 3 {
		t.Fatalf("ChainSince an unknown hash: %d entries, want all 3 from the oldest", len(batch))
	}
	if _, err := dst.ContinueChain("copy", now, batch, 0); !errors.Is(err, ErrBrokenChain) {
		t.Errorf("a rewritten log continued its copy: %v", err)
	}
}

// The same entries sent again, in any order, are taken once and break nothing.
func TestChainCopyRepeats(t *testing.T) {
	src, _ := Open(filepath.Join(t.TempDir(), "src.db"))
	defer src.Close()
	dst, _ := Open(filepath.Join(t.TempDir(), "dst.db"))
	defer dst.Close()
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	for i := range 6 {
		src.AppendChained("log", now, map[string]int{"n": i}, 0)
	}
	all, _ := src.ChainSince("log", "", 10)
	for _, batch := range [][]Chained{all[:3], all[:3], all[3:], all[:3], all[2:5], all} {
		if _, err := dst.ContinueChain("copy", now, batch, 0); err != nil {
			t.Fatalf("batch %d..: %v", len(batch), err)
		}
	}
	if n, _, err := dst.VerifyChain("copy"); err != nil || n != 6 {
		t.Errorf("the copy: %d entries, %v; want 6", n, err)
	}
}
