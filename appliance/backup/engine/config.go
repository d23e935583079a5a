package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/target"
)

// Buckets is a configuration as a backup holds it: each state store bucket's keys and their JSON values.
type Buckets map[string]map[string]json.RawMessage

// ReadConfig reads the configuration held by backup backupID on t.
func (e *Engine) ReadConfig(ctx context.Context, t target.Target, backupID string) (Buckets, error) {
	m, id, err := e.manifest(ctx, t, backupID)
	if err != nil {
		return nil, err
	}
	for _, o := range m.Objects {
		if o.Key != backupID+"/"+configName {
			continue
		}
		r, err := Open(ctx, t, o, id)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		var doc struct { // as exportConfig writes it
			Buckets Buckets `json:"buckets"`
		}
		if err := json.NewDecoder(io.LimitReader(r, 64<<20)).Decode(&doc); err != nil {
			return nil, fmt.Errorf("backup %s: its configuration: %w", backupID, err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil { // the end of the stream checks its SHA-256
			return nil, fmt.Errorf("backup %s: its configuration: %w", backupID, err)
		}
		return doc.Buckets, nil
	}
	return nil, fmt.Errorf("backup %s holds no configuration (a documents backup, or taken without one): %w", backupID, appliance.ErrBadInput)
}
