package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// Documents backups are kept 48 hours, then the last of each day the retention keeps.
func TestDocumentsDropped(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	var docs []*Manifest
	for h := 24 * 5; h >= 0; h -= 6 {
		c := now.Add(-time.Duration(h) * time.Hour)
		docs = append(docs, &Manifest{ID: c.Format("0102T15"), Created: c})
	}
	drop := documentsDropped(docs, appliance.BackupRetention{Daily: 3}, now)
	var kept []string
	for _, m := range docs {
		if !drop[m.ID] {
			kept = append(kept, m.ID)
		}
	}
	// Within 48 h: from 11-22T12 on; the last of each of the 3 newest days (11-22, 23, 24) is within.
	want := "1122T12 1122T18 1123T00 1123T06 1123T12 1123T18 1124T00 1124T06 1124T12"
	if strings.Join(kept, " ") != want {
		t.Errorf("kept %s, want %s", strings.Join(kept, " "), want)
	}
	// Five days: the last of 11-20 and of 11-21 are kept beyond the 48 hours too.
	drop = documentsDropped(docs, appliance.BackupRetention{Daily: 5}, now)
	if len(drop) != 10 || drop["1120T18"] || drop["1121T18"] || !drop["1121T12"] {
		t.Errorf("daily 5: dropped %v", drop)
	}
}
