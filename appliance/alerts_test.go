package appliance

import (
	"strings"
	"testing"
	"time"
)

// Backups warn when not set up, when the last one failed, when a target fails and when no restore was
// verified in two days; a healthy state says nothing.
func TestBackupAlerts(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	fresh := &BackupVerification{OK: true, Time: now.Add(-time.Hour)}
	for _, c := range []struct {
		st   BackupStatus
		want []string
	}{
		{BackupStatus{}, []string{"not set up"}},
		{BackupStatus{SetUp: true, LastVerified: fresh}, nil},
		{BackupStatus{SetUp: true, LastVerified: fresh, LastError: "documents: open /data/documents/x: permission denied"}, []string{"last backup failed (tried again at the next one): documents: open"}},
		{BackupStatus{SetUp: true, LastVerified: fresh, Targets: []BackupTargetStatus{{Name: "s3://x/y/", Error: "disk full"}}}, []string{"copying backups to s3://x/y/ fails"}},
		{BackupStatus{SetUp: true, LastVerified: &BackupVerification{OK: true, Time: now.Add(-72 * time.Hour)}}, []string{"no backup has been restored"}},
	} {
		got := BackupAlerts(c.st, now)
		if len(got) != len(c.want) {
			t.Errorf("%+v: alerts %+v, want %v", c.st, got, c.want)
			continue
		}
		for i, a := range got {
			if a.Level != "warning" || !strings.Contains(a.Message, c.want[i]) {
				t.Errorf("%+v: alert %+v, want %q", c.st, a, c.want[i])
			}
		}
	}
}
