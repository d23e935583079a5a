package storage

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/hw/raid"
)

func TestGrowRefusal(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	fresh := now.Add(-3 * time.Hour)
	member := func(dev string) raid.Member { return raid.Member{Dev: dev, State: []string{"in_sync"}, Slot: 0} }
	spare := raid.Member{Dev: "vdc3", Slot: -1}
	mirror := raid.Array{Level: "raid1", RaidDisks: 2, SyncAction: "idle", Members: []raid.Member{member("vda3"), member("vdb3"), spare}}
	r5 := raid.Array{Level: "raid5", RaidDisks: 3, SyncAction: "idle", Members: []raid.Member{member("vda3"), member("vdb3"), member("vdc3")}}
	for _, c := range []struct {
		name   string
		a      raid.Array
		health map[string]string
		backup time.Time
		want   string // "" may grow; errOldBackup's text: the overridable refusal
	}{
		{"a healthy mirror of two, backed up this morning", mirror, nil, fresh, ""},
		{"a healthy RAID 5", r5, map[string]string{"vda3": "watch"}, fresh, ""},
		{"degraded", raid.Array{Level: "raid5", RaidDisks: 3, Degraded: 1, SyncAction: "idle"}, nil, fresh, "degraded"},
		{"rebuilding", raid.Array{Level: "raid1", RaidDisks: 2, SyncAction: "recover"}, nil, fresh, "busy (recover)"},
		{"reshaping", raid.Array{Level: "raid5", RaidDisks: 4, Reshaping: true, SyncAction: "frozen"}, nil, fresh, "growing already"},
		{"a mirror of three", raid.Array{Level: "raid1", RaidDisks: 3, SyncAction: "idle"}, nil, fresh, "cannot grow"},
		{"a member SMART says to replace", r5, map[string]string{"vdb3": "replace"}, fresh, "should be replaced"},
		{"a spare SMART says to replace is not a member", mirror, map[string]string{"vdc3": "replace"}, fresh, ""},
		{"no backup ever", mirror, nil, time.Time{}, errOldBackup.Error()},
		{"a backup of two days ago", r5, nil, now.Add(-48 * time.Hour), errOldBackup.Error()},
		{"degraded and no backup: the degraded array is what is said", raid.Array{Level: "raid1", RaidDisks: 2, Degraded: 1}, nil, time.Time{}, "degraded"},
	} {
		err := growRefusal(c.a, c.health, c.backup, now)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		case c.want != "" && errors.Is(err, errOldBackup) != (c.want == errOldBackup.Error()):
			t.Errorf("%s: %v overridable %v", c.name, err, errors.Is(err, errOldBackup))
		}
	}
}

func TestVolumeGrowth(t *testing.T) {
	const gib = 1 << 30
	for _, c := range []struct{ size, free, want int64 }{
		{10 * gib, 1 * gib, 0},          // as made: a tenth free, nothing to take
		{20 * gib, 11 * gib, 9 * gib},   // the array doubled: all but a tenth of the new group
		{20 * gib, 2*gib + extent/2, 0}, // less than an extent beyond the tenth
		{20 * gib, 2*gib + 3*extent + 5, 3 * extent},
	} {
		if got := volumeGrowth(c.size, c.free); got != c.want {
			t.Errorf("group %d free %d: +%d, want +%d", c.size, c.free, got, c.want)
		}
	}
}
