// Package state is the appliance's persistent memory: a bbolt database with a schema version and ordered
// migrations. Every service keeps its configuration and history here. It does not decide where the file
// lives: until the storage service gives it a mirrored home, cmd/appliance puts it in RAM.
package state

import (
	"crypto/cipher"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the schema this build writes. A database with a newer schema is refused, not downgraded.
const SchemaVersion = 1

// Buckets every service may use.
const (
	BucketMeta     = "meta"
	BucketConfig   = "config"
	BucketAuth     = "auth"
	BucketSessions = "sessions"
	BucketEvents   = "events"
	BucketShares   = "shares"  // the file shares and their accounts (NT hashes)
	BucketSecrets  = "secrets" // passwords only a unit whose data array is open needs (sealed: seal.go)
)

// ErrNotFound is returned for a key that is not there.
var ErrNotFound = errors.New("not found")

// ErrNewerSchema means the database was written by a newer firmware.
var ErrNewerSchema = errors.New("database schema is newer than this firmware")

// migrations[i] moves the schema from version i to i+1.
var migrations = []func(tx *bolt.Tx) error{
	func(tx *bolt.Tx) error { // 0 -> 1: the first buckets
		for _, b := range []string{BucketConfig, BucketAuth, BucketSessions, BucketEvents} {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	},
}

// Store is the open database.
type Store struct {
	mu      sync.RWMutex // guards db, which Relocate swaps, and the sealing
	db      *bolt.DB
	sealed  map[string]bool // buckets whose values are encrypted (seal.go)
	aead    cipher.AEAD     // their key; nil until Unseal
	sealing bool            // their new values are written encrypted (Seal)
}

func (s *Store) handle() *bolt.DB {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db
}

// view and update hold the read lock for the whole transaction, so Relocate never closes a database in use.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.View(fn)
}

func (s *Store) update(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.Update(fn)
}

// Open opens or creates the database at path and migrates it to SchemaVersion.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	s := &Store{db: db}
	if err := s.migrate(SchemaVersion); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) migrate(target int) error {
	return s.update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists([]byte(BucketMeta))
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", BucketMeta, err)
		}
		v := 0
		if b := meta.Get([]byte("schema")); len(b) == 8 {
			v = int(binary.BigEndian.Uint64(b))
		}
		if v > target {
			return fmt.Errorf("%w: schema %d, firmware knows %d", ErrNewerSchema, v, target)
		}
		for ; v < target; v++ {
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
			}
		}
		return meta.Put([]byte("schema"), binary.BigEndian.AppendUint64(nil, uint64(v)))
	})
}

// Schema returns the database's schema version.
func (s *Store) Schema() (int, error) {
	var v int
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(BucketMeta)).Get([]byte("schema"))
		if len(b) != 8 {
			return fmt.Errorf("read schema: %w", ErrNotFound)
		}
		v = int(binary.BigEndian.Uint64(b))
		return nil
	})
	return v, err
}

// Close closes the database.
func (s *Store) Close() error { return s.handle().Close() }

// Get returns a copy of the value at bucket/key, or ErrNotFound.
func (s *Store) Get(bucket, key string) ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return fmt.Errorf("get %s/%s: no bucket: %w", bucket, key, ErrNotFound)
		}
		v := b.Get([]byte(key))
		if v == nil {
			return fmt.Errorf("get %s/%s: %w", bucket, key, ErrNotFound)
		}
		v, err := s.open(bucket, key, v)
		out = append([]byte(nil), v...)
		return err
	})
	return out, err
}

// Put stores value at bucket/key, creating the bucket if needed.
func (s *Store) Put(bucket, key string, value []byte) error {
	return s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return fmt.Errorf("put %s/%s: %w", bucket, key, err)
		}
		value, err := s.seal(bucket, key, value)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(key), value); err != nil {
			return fmt.Errorf("put %s/%s: %w", bucket, key, err)
		}
		return nil
	})
}

// Delete removes bucket/key; a missing key is not an error.
func (s *Store) Delete(bucket, key string) error {
	return s.update(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucket)); b != nil {
			return b.Delete([]byte(key))
		}
		return nil
	})
}

// ForEach calls f for every key of bucket in key order. f must not keep v.
func (s *Store) ForEach(bucket string, f func(k string, v []byte) error) error {
	return s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			v, err := s.open(bucket, string(k), v)
			if err != nil {
				return err
			}
			return f(string(k), v)
		})
	})
}

// GetJSON decodes the JSON value at bucket/key into v.
func (s *Store) GetJSON(bucket, key string, v any) error {
	b, err := s.Get(bucket, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s/%s: %w", bucket, key, err)
	}
	return nil
}

// PutJSON stores v as JSON at bucket/key.
func (s *Store) PutJSON(bucket, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	return s.Put(bucket, key, b)
}

// Event is one line of the unit's history: what happened, from which part, how serious.
type Event struct {
	Time    time.Time `json:"time"`
	Source  string    `json:"source"` // "storage", ...
	Level   string    `json:"level"`  // "info", "warning", "critical"
	Message string    `json:"message"`
}

// KeepEvents is how many events the store keeps; older ones are dropped as new ones come.
const KeepEvents = 20000

// AddEvent appends e to the events bucket (keyed by time, so the history reads in order).
func (s *Store) AddEvent(e Event) error {
	return s.Append(BucketEvents, e.Time, e, KeepEvents)
}

// Events returns the last n events of source ("" for all), oldest first.
func (s *Store) Events(source string, n int) ([]Event, error) {
	var out []Event
	if n <= 0 {
		return nil, nil
	}
	err := s.Last(BucketEvents, func(v []byte) (bool, error) {
		var e Event
		if err := json.Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("decode event: %w", err)
		}
		if source == "" || e.Source == source {
			out = append(out, e)
		}
		return len(out) < n, nil
	})
	slices.Reverse(out)
	return out, err
}

// Append adds v (JSON) to a log bucket under its time, and drops the oldest entries beyond keep (0: none).
func (s *Store) Append(bucket string, t time.Time, v any, keep int) error {
	val, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s entry: %w", bucket, err)
	}
	return s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", bucket, err)
		}
		seq, _ := b.NextSequence()
		key := binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))
		key = binary.BigEndian.AppendUint64(key, seq)
		if err := b.Put(key, val); err != nil {
			return fmt.Errorf("append to %s: %w", bucket, err)
		}
		return trim(b, bucket, seq, keep)
	})
}

// Last calls f with a log bucket's entries, newest first, while f returns true.
func (s *Store) Last(bucket string, f func(v []byte) (bool, error)) error {
	return s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			more, err := f(v)
			if err != nil || !more {
				return err
			}
		}
		return nil
	})
}

// Relocate copies the database to path (a consistent snapshot) and goes on from there: how the state
// moves from RAM to the system array once it exists.
func (s *Store) Relocate(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.View(func(tx *bolt.Tx) error { return tx.CopyFile(path, 0o600) }); err != nil {
		return fmt.Errorf("copy state to %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("open state %s: %w", path, err)
	}
	old := s.db
	s.db = db
	return old.Close()
}

// Path is the database file.
func (s *Store) Path() string { return s.handle().Path() }
