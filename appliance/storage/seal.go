package storage

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lawbox/appliance/appliance/durable"
	"github.com/lawbox/appliance/appliance/state"
	lfs "github.com/lawbox/appliance/hw/fs"
)

// StateKeyFile is where the key of the state store's sealed buckets is kept (state.SealBuckets), relative
// to the data array's mount point: on the data array, so those values are exactly as protected as the data
// (encrypted at rest with it) and readable exactly when it is open.
const StateKeyFile = "keys/state.key"

// unsealState gives the state store its sealed buckets' key once the data array is mounted: read from the
// data array, made there the first time.
func (m *Manager) unsealState() {
	m.mu.Lock()
	st, done := m.store, m.unsealed
	m.mu.Unlock()
	if st == nil || done || lfs.MountedAt(Data.mount) == "" {
		return
	}
	key, err := stateKey(filepath.Join(Data.mount, StateKeyFile))
	if err == nil {
		err = st.Unseal(key)
	}
	m.mu.Lock()
	said := m.sealFailed
	m.unsealed, m.sealFailed = err == nil, err != nil
	m.mu.Unlock()
	if err != nil && !said {
		m.stepFailed(err, "The settings sealed with the data array (the file accounts, the mail and upstream servers' passwords) cannot be read: their key, kept on the data array, could not be read or made. The file shares wait until it can.")
	}
}

// stateKey reads the key at path, or makes it if there is none yet.
func stateKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	switch {
	case err == nil && len(key) == state.SealKeySize:
		return key, nil
	case err == nil:
		return nil, fmt.Errorf("state key %s: %d bytes, want %d (left as it is)", path, len(key), state.SealKeySize)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("state key: %w", err)
	}
	key = make([]byte, state.SealKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("state key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state key: %w", err)
	}
	if err := durable.WriteFile(path, bytes.NewReader(key), nil); err != nil {
		return nil, fmt.Errorf("state key: %w", err)
	}
	return key, nil
}
