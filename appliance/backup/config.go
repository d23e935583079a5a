package backup

import (
	"context"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/engine"
)

// ConfigPart takes what is its own from a configuration restored from a backup and says what it took, in
// a few words ("2 file shares and 3 file accounts").
type ConfigPart func(ctx context.Context, b engine.Buckets) (string, error)

// notRestored is what a configuration restore leaves as the new unit has it, and why.
var notRestored = []string{
	"web accounts (the admin who set this unit up keeps the access they have; add the others again)",
	"the pair (pair the units again: the pair key is never in a backup's restore)",
	"the HTTPS certificate",
	"network addresses",
	"notification settings",
	"storage and disk-health settings",
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
	b, err := s.Engine.ReadConfig(ctx, t, backupID)
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
