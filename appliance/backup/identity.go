package backup

import (
	"context"
	"fmt"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/lawbox/appliance/appliance"
)

// loadIdentity reads the recovery identity from the cluster.
func (s *Service) loadIdentity() (*age.X25519Identity, error) {
	s.mu.Lock()
	id := s.identity
	s.mu.Unlock()
	if id != nil {
		return id, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := s.Engine.Connect(ctx, "postgres")
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	var text string
	if err := c.QueryRow(ctx, "SELECT identity FROM lawbox.backup WHERE id = 1").Scan(&text); err != nil {
		return nil, fmt.Errorf("backups are not set up yet (no recovery identity): %w", appliance.ErrConflict)
	}
	if id, err = age.ParseX25519Identity(text); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.identity = id
	s.mu.Unlock()
	return id, nil
}

// CreateIdentity makes the recovery identity (once; on the production server) and returns it: the only time
// it is shown. Whoever holds it can read every backup; without it none can be restored.
func (s *Service) CreateIdentity(ctx context.Context) (string, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", err
	}
	if err := s.storeIdentity(ctx, id); err != nil {
		return "", err
	}
	s.Engine.Log.Warn("backup recovery identity created", "recipient", id.Recipient().String())
	return id.String(), nil
}

// ImportIdentity sets the recovery identity of a recovery sheet on a unit that has none, so it can read the
// backups of the unit(s) it replaces. The same identity again is accepted; another one is refused.
func (s *Service) ImportIdentity(ctx context.Context, text string) error {
	id, err := age.ParseX25519Identity(strings.TrimSpace(text))
	if err != nil {
		return fmt.Errorf("recovery identity: not one (it starts AGE-SECRET-KEY-1, as on the recovery sheet): %w", appliance.ErrBadInput)
	}
	if err := s.storeIdentity(ctx, id); err != nil {
		if have, lerr := s.loadIdentity(); lerr == nil && have.String() == id.String() {
			return nil
		}
		return err
	}
	s.Engine.Log.Warn("backup recovery identity imported", "recipient", id.Recipient().String())
	return nil
}

// storeIdentity keeps id in the production cluster, unless an identity is there already.
func (s *Service) storeIdentity(ctx context.Context, id *age.X25519Identity) error {
	c, err := s.Engine.Connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("recovery identity: %w", err)
	}
	defer c.Close(ctx)
	var ro bool
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&ro); err != nil || ro {
		return fmt.Errorf("set backups up on the production unit (the mirror receives it): %w", appliance.ErrConflict)
	}
	if _, err := c.Exec(ctx, schema); err != nil {
		return err
	}
	tag, err := c.Exec(ctx, "INSERT INTO lawbox.backup (id, identity) VALUES (1, $1) ON CONFLICT DO NOTHING", id.String())
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("the recovery identity exists already and is never shown twice: %w", appliance.ErrConflict)
	}
	return nil
}
