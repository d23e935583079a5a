package backup

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

// ConfigPart takes what is its own from a configuration restored from a backup and says what it took, in
// a few words ("2 file shares and 3 file accounts").
type ConfigPart func(ctx context.Context, b Buckets) (string, error)

// notRestored is what a configuration restore leaves as the new unit has it, and why.
var notRestored = []string{
	"web accounts (the admin who set this unit up keeps the access they have; add the others again)",
	"the pair (pair the units again: the pair key is never in a backup's restore)",
	"the HTTPS certificate",
	"network addresses",
	"notification settings",
	"storage and disk-health settings",
}

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
		r, err := open(ctx, t, o, id)
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

// RestoreConfig brings the settings of backup backupID back onto this unit: each of ConfigParts takes its
// own (the file shares and their accounts). What is left as this unit has it is said too.
func (s *Service) RestoreConfig(ctx context.Context, backupID string) (appliance.ConfigRestored, error) {
	id, err := s.loadIdentity()
	if err != nil {
		return appliance.ConfigRestored{}, err
	}
	t, err := s.locate(ctx, id, backupID, true)
	if err != nil {
		return appliance.ConfigRestored{}, err
	}
	b, err := s.ReadConfig(ctx, t, backupID)
	if err != nil {
		return appliance.ConfigRestored{}, err
	}
	out := appliance.ConfigRestored{ID: backupID, NotRestored: notRestored, Restored: []string{}}
	for _, part := range s.ConfigParts {
		what, err := part(ctx, b)
		if err != nil {
			return out, err
		}
		out.Restored = append(out.Restored, what)
	}
	return out, nil
}
