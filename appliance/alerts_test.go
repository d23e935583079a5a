package appliance

import (
	"slices"
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
		{BackupStatus{SetUp: true, LastVerified: fresh, LastError: "documents: open /data/documents/x: permission denied",
			LastProblem: "The backup could not be taken; it is tried again at the next one. The unit's log says why."}, []string{"last backup failed: The backup could not be taken"}},
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

func TestReplicationAlerts(t *testing.T) {
	pct := 42.0
	for _, c := range []struct {
		name  string
		r     Replication
		level string // "" for none
		says  string
	}{
		{"alone", Replication{State: "running", Role: "Primary", Disk: "UpToDate", PeerDisk: "DUnknown"}, "", ""},
		{"in sync", Replication{State: "running", Paired: true, Disk: "UpToDate", PeerDisk: "UpToDate", Connection: "Connected"}, "", ""},
		{"partner away", Replication{State: "running", Paired: true, Disk: "UpToDate", PeerDisk: "DUnknown", Connection: "WFConnection"}, "critical", "not replicated"},
		{"catching up", Replication{State: "running", Paired: true, Disk: "UpToDate", PeerDisk: "Inconsistent", Connection: "SyncSource", Synced: &pct}, "warning", "42.0 % done"},
		{"problem", Replication{State: "running", Problem: "It could not be started."}, "critical", "It could not be started."},
	} {
		got := ReplicationAlerts(c.r)
		if c.level == "" {
			if len(got) != 0 {
				t.Errorf("%s: %+v", c.name, got)
			}
			continue
		}
		if len(got) != 1 || got[0].Level != c.level || !strings.Contains(got[0].Message, c.says) {
			t.Errorf("%s: %+v, want one %s alert saying %q", c.name, got, c.level, c.says)
		}
	}
}

func TestClockAlerts(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		st   ClockStatus
		want []string
	}{
		{"checked a minute ago", ClockStatus{Servers: []string{"ntp"}, Checked: now.Add(-time.Minute), OffsetS: 0.01}, nil},
		{"no server set", ClockStatus{}, []string{"warning: no time server is set: the clock is not checked"}},
		{"never answered, started an hour ago", ClockStatus{Servers: []string{"ntp"}, Since: now.Add(-time.Hour)}, nil},
		{"never answered in two days", ClockStatus{Servers: []string{"ntp"}, Since: now.Add(-48 * time.Hour)}, []string{"warning: no time server has answered for 48 h: the clock is not checked"}},
		{"off after setting", ClockStatus{Servers: []string{"ntp"}, Checked: now, OffsetS: -12.3}, []string{"critical: the clock is off by -12.3 s and could not be set"}},
	} {
		var got []string
		for _, a := range ClockAlerts(c.st, now) {
			got = append(got, a.Level+": "+a.Message)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
