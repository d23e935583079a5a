package state

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lawbox/appliance/appliance/chain"
	bolt "go.etcd.io/bbolt"
)

// Chained is an entry of a hash-chained log (chain.Entry).
type Chained = chain.Entry

// ErrBrokenChain means a hash-chained log was edited: an entry changed, removed or added.
var ErrBrokenChain = errors.New("the log's hash chain is broken")

// chainHash is an entry's hash.
func chainHash(prev string, value []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(value)
	return hex.EncodeToString(h.Sum(nil))
}

func headKey(bucket string) []byte { return []byte("chain head " + bucket) }

// AppendChained appends v to the hash-chained log in bucket, in one transaction with the log's head (kept
// in BucketMeta), and returns the entry's hash. Past keep entries the oldest are dropped: the chain then
// starts at the oldest kept one. An entry changed, removed or added in the middle breaks the chain; one
// removed at the end no longer leads to the head. (Whoever can write the file can rebuild both: the
// hashes shipped elsewhere as they are made are what proves the log.)
func (s *Store) AppendChained(bucket string, t time.Time, v any, keep int) (string, error) {
	val, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s entry: %w", bucket, err)
	}
	var hash string
	err = s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", bucket, err)
		}
		meta, err := tx.CreateBucketIfNotExists([]byte(BucketMeta))
		if err != nil {
			return err
		}
		prev := string(meta.Get(headKey(bucket)))
		hash = chainHash(prev, val)
		rec, err := json.Marshal(Chained{Prev: prev, Hash: hash, Value: val})
		if err != nil {
			return err
		}
		seq, _ := b.NextSequence()
		key := binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))
		key = binary.BigEndian.AppendUint64(key, seq)
		if err := b.Put(key, rec); err != nil {
			return fmt.Errorf("append to %s: %w", bucket, err)
		}
		if err := meta.Put(headKey(bucket), []byte(hash)); err != nil {
			return err
		}
		return trim(b, bucket, seq, keep)
	})
	return hash, err
}

// trim drops a log bucket's oldest entries past keep, now and then (counting the keys costs).
func trim(b *bolt.Bucket, bucket string, seq uint64, keep int) error {
	if keep <= 0 || seq%64 != 0 {
		return nil
	}
	c := b.Cursor()
	for n, k := b.Stats().KeyN-keep, []byte(nil); n > 0; n-- {
		if k, _ = c.First(); k == nil {
			break
		}
		if err := c.Delete(); err != nil {
			return fmt.Errorf("trim %s: %w", bucket, err)
		}
	}
	return nil
}

// VerifyChain walks the hash-chained log in bucket from its oldest kept entry to the head and returns how
// many entries it holds and the head's hash, or an error wrapping ErrBrokenChain that says where it breaks.
func (s *Store) VerifyChain(bucket string) (int, string, error) {
	var n int
	var head string
	err := s.view(func(tx *bolt.Tx) error {
		if meta := tx.Bucket([]byte(BucketMeta)); meta != nil {
			head = string(meta.Get(headKey(bucket)))
		}
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			if head != "" {
				return fmt.Errorf("%w: the log is gone, its head is %s", ErrBrokenChain, head)
			}
			return nil
		}
		last := ""
		err := b.ForEach(func(k, v []byte) error {
			var c Chained
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("%w: entry %d does not decode: %v", ErrBrokenChain, n+1, err)
			}
			if n > 0 && c.Prev != last {
				return fmt.Errorf("%w: entry %d does not follow entry %d (one was removed or added)", ErrBrokenChain, n+1, n)
			}
			if chainHash(c.Prev, c.Value) != c.Hash {
				return fmt.Errorf("%w: entry %d was changed", ErrBrokenChain, n+1)
			}
			last = c.Hash
			n++
			return nil
		})
		if err != nil {
			return err
		}
		if last != head {
			return fmt.Errorf("%w: the last entry is not the head (entries were removed at the end)", ErrBrokenChain)
		}
		return nil
	})
	return n, head, err
}

// ChainSince returns at most n entries of the hash-chained log in bucket that follow the entry whose hash
// is after, oldest first: from the oldest kept one when after is "" or no longer there.
func (s *Store) ChainSince(bucket, after string, n int) ([]Chained, error) {
	var out []Chained
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil || n <= 0 {
			return nil
		}
		c := b.Cursor()
		k, v := c.First()
		if after != "" { // usually near the end: walk back from there
			for lk, lv := c.Last(); lk != nil; lk, lv = c.Prev() {
				var e Chained
				if json.Unmarshal(lv, &e) == nil && e.Hash == after {
					k, v = c.Next()
					break
				}
			}
		}
		for ; k != nil && len(out) < n; k, v = c.Next() {
			var e Chained
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%s: %w", bucket, err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// ContinueChain appends entries of a hash-chained log kept elsewhere (a copy of another unit's) to bucket:
// each must follow the head here (or start the copy) and carry its own right hash, else nothing more is
// taken and the error wraps ErrBrokenChain: a log rewritten where it is kept no longer continues its copy.
// It returns the copy's head.
func (s *Store) ContinueChain(bucket string, t time.Time, entries []Chained, keep int) (string, error) {
	var head string
	var broken error // the entries before it are kept
	err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists([]byte(BucketMeta))
		if err != nil {
			return err
		}
		head = string(meta.Get(headKey(bucket)))
		held := map[string]bool{} // the copy's newest entries: the same entries sent again are no gap
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(held) < 256; k, v = c.Prev() {
			var e Chained
			if json.Unmarshal(v, &e) == nil {
				held[e.Hash] = true
			}
		}
		for _, e := range entries {
			if held[e.Hash] {
				continue
			}
			if head != "" && e.Prev != head {
				broken = fmt.Errorf("%w: an entry follows %.12s, the copy's head is %.12s", ErrBrokenChain, e.Prev, head)
				return nil
			}
			if chainHash(e.Prev, e.Value) != e.Hash {
				broken = fmt.Errorf("%w: an entry's hash does not match it", ErrBrokenChain)
				return nil
			}
			rec, err := json.Marshal(e)
			if err != nil {
				return err
			}
			seq, _ := b.NextSequence()
			key := binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))
			if err := b.Put(binary.BigEndian.AppendUint64(key, seq), rec); err != nil {
				return err
			}
			head = e.Hash
			if err := meta.Put(headKey(bucket), []byte(head)); err != nil {
				return err
			}
			if err := trim(b, bucket, seq, keep); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = broken
	}
	return head, err
}
