package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/target"
)

// Copy copies backup m from the unit's array to t, the manifest last (so t never lists an unfinished
// backup). Objects already there whole are not sent again, so a copy cut short resumes.
func (e *Engine) Copy(ctx context.Context, m *Manifest, t target.Target) error {
	id, err := e.Identity()
	if err != nil {
		return err
	}
	var send []Object
	var total int64
	for _, o := range m.Objects {
		if n, err := t.Size(ctx, o.Key); err == nil && n == o.Size {
			continue // copied by an earlier, interrupted attempt (its SHA-256 is checked at every restore)
		}
		send = append(send, o)
		total += o.Size
	}
	e.Progress.Start(total)
	for _, o := range send {
		r, err := e.Local.Get(ctx, o.Key)
		if err != nil {
			return err
		}
		err = t.Put(ctx, o.Key, e.Progress.Reader(r), o.Size)
		r.Close()
		if err != nil {
			return err
		}
	}
	return e.putManifest(ctx, t, id, m)
}

// keepBases is how many base copies are kept: the point-in-time window is one to two weeks.
const keepBases = 2

// Prune deletes from t the dumps retention does not keep, the increments older than 48 hours, the base
// copies beyond the newest keepBases and the WAL older than the oldest base copy left, never the newest
// verified backup (verified: the IDs known to have restored).
func (e *Engine) Prune(ctx context.Context, t target.Target, r appliance.BackupRetention, verified map[string]bool) ([]string, error) {
	id, err := e.Identity()
	if err != nil {
		return nil, err
	}
	ms, _, err := Manifests(ctx, t, id)
	if err != nil {
		return nil, err
	}
	lastVerified := map[string]string{} // kind -> the newest verified backup of that kind
	for _, m := range ms {
		if verified[m.ID] {
			lastVerified[m.Kind] = m.ID
		}
	}
	var dumps []*Manifest
	for _, m := range ms {
		if m.Kind == KindDump {
			dumps = append(dumps, m)
		}
	}
	drop := map[string]bool{}
	kept := retained(dumps, r)
	for _, m := range dumps {
		if !kept[m.ID] {
			drop[m.ID] = true
		}
	}
	var bases []*Manifest
	for _, m := range ms {
		if m.Kind == KindBase {
			bases = append(bases, m)
		}
	}
	for i, m := range bases {
		if i < len(bases)-keepBases {
			drop[m.ID] = true
		}
	}
	for _, m := range ms {
		if m.Kind == KindIncrement && e.Clock().Sub(m.Created) > 48*time.Hour {
			drop[m.ID] = true
		}
	}
	var docs []*Manifest
	for _, m := range ms {
		if m.Kind == KindDocuments {
			docs = append(docs, m)
		}
	}
	for id := range documentsDropped(docs, r, e.Clock()) {
		drop[id] = true
	}
	for _, id := range lastVerified {
		delete(drop, id)
	}
	var left []*Manifest
	inUse := map[string]bool{} // objects shared between backups (documents) stay while one uses them
	for _, m := range ms {
		if !drop[m.ID] {
			left = append(left, m)
			for _, o := range m.Objects {
				inUse[o.Key] = true
			}
		}
	}
	var gone []string
	for _, m := range ms {
		if !drop[m.ID] {
			continue
		}
		// The manifest first: a half-deleted backup is then an unfinished one, never a broken listed one.
		if err := t.Delete(ctx, m.ID+"/"+ManifestName); err != nil {
			return gone, err
		}
		for _, o := range m.Objects {
			if inUse[o.Key] {
				continue
			}
			if err := t.Delete(ctx, o.Key); err != nil {
				return gone, err
			}
		}
		gone = append(gone, m.ID)
	}
	_, err = e.pruneWAL(ctx, t, left)
	return gone, err
}

// documentsDropped returns the documents backups (oldest first) to delete: those older than 48 hours that
// are not the day's last one of a day r keeps.
func documentsDropped(docs []*Manifest, r appliance.BackupRetention, now time.Time) map[string]bool {
	var daily []*Manifest // the last of each day
	for i, m := range docs {
		if i == len(docs)-1 || docs[i+1].Created.UTC().Format("2006-01-02") != m.Created.UTC().Format("2006-01-02") {
			daily = append(daily, m)
		}
	}
	keep := retained(daily, r)
	drop := map[string]bool{}
	for _, m := range docs {
		if now.Sub(m.Created) > 48*time.Hour && !keep[m.ID] {
			drop[m.ID] = true
		}
	}
	return drop
}

// retained returns the dumps (oldest first) r keeps: the newest r.Daily, and the newest of each of the
// newest r.Weekly ISO weeks and r.Monthly months that have one.
func retained(dumps []*Manifest, r appliance.BackupRetention) map[string]bool {
	keep := map[string]bool{}
	weeks, months := map[string]bool{}, map[string]bool{}
	for i := len(dumps) - 1; i >= 0; i-- {
		m := dumps[i]
		if len(dumps)-i <= r.Daily {
			keep[m.ID] = true
		}
		y, w := m.Created.UTC().ISOWeek()
		if wk := fmt.Sprintf("%d-%02d", y, w); !weeks[wk] && len(weeks) < r.Weekly {
			weeks[wk] = true
			keep[m.ID] = true
		}
		if mo := m.Created.UTC().Format("2006-01"); !months[mo] && len(months) < r.Monthly {
			months[mo] = true
			keep[m.ID] = true
		}
	}
	return keep
}
