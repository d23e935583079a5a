package auth

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

// Record adds an entry to the audit log: what users did to the hash-chained log (and to Ship), the
// requests that did not authenticate to the noise log.
func (a *Auth) Record(e appliance.AuditEntry) error {
	if e.Noise {
		if err := a.store.Append(bucketNoise, e.Time, e, keepNoise); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		return nil
	}
	hash, err := a.store.AppendChained(bucketAudit, e.Time, e, keepAudit)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if a.Ship != nil {
		a.Ship(e, hash)
	}
	return nil
}

// Audit returns the last n entries of an audit log, newest first.
func (a *Auth) Audit(n int, log string) ([]appliance.AuditEntry, error) {
	out := []appliance.AuditEntry{}
	if n <= 0 {
		return out, nil
	}
	bucket, ok := map[string]string{appliance.AuditLog: bucketAudit, appliance.AuditNoise: bucketNoise, appliance.AuditPartner: bucketPartner}[log]
	if !ok {
		return nil, fmt.Errorf("no audit log %q: %w", log, appliance.ErrBadInput)
	}
	err := a.store.Last(bucket, func(v []byte) (bool, error) {
		if bucket != bucketNoise {
			var c state.Chained
			if err := json.Unmarshal(v, &c); err != nil {
				return false, fmt.Errorf("decode audit entry: %w", err)
			}
			v = c.Value
		}
		var e appliance.AuditEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("decode audit entry: %w", err)
		}
		out = append(out, e)
		return len(out) < n, nil
	})
	return out, err
}

// VerifyAudit checks the audit log's hash chain from its oldest kept entry to its head, and the copy of
// the partner's.
func (a *Auth) VerifyAudit() (appliance.AuditCheck, error) {
	c, err := a.verifyChain(bucketAudit)
	if err != nil {
		return c, err
	}
	if p, err := a.verifyChain(bucketPartner); err == nil && p.Entries > 0 {
		c.Partner = &p
	}
	return c, nil
}

func (a *Auth) verifyChain(bucket string) (appliance.AuditCheck, error) {
	n, head, err := a.store.VerifyChain(bucket)
	if errors.Is(err, state.ErrBrokenChain) {
		return appliance.AuditCheck{Entries: n, Head: head, Problem: err.Error()}, nil
	}
	if err != nil {
		return appliance.AuditCheck{}, fmt.Errorf("verify the audit log: %w", err)
	}
	return appliance.AuditCheck{Entries: n, Head: head, OK: true}, nil
}

// AuditSince lists the audit log's entries after the one whose hash is after (oldest first, at most n):
// what the partner unit has not acknowledged yet.
func (a *Auth) AuditSince(after string, n int) ([]state.Chained, error) {
	return a.store.ChainSince(bucketAudit, after, n)
}

// KeepPartnerAudit adds the partner unit's audit entries to the copy kept here and returns its head; an
// error wrapping state.ErrBrokenChain means they do not continue it.
func (a *Auth) KeepPartnerAudit(entries []state.Chained) (string, error) {
	return a.store.ContinueChain(bucketPartner, a.now(), entries, keepAudit)
}
