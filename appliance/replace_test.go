package appliance

import (
	"slices"
	"testing"
)

func TestReplacementAdvice(t *testing.T) {
	disks := func(serials ...string) []StorageDisk {
		var out []StorageDisk
		for _, s := range serials {
			out = append(out, StorageDisk{Serial: s, Slot: "slot-" + s, Role: "member", State: "ok"})
		}
		return out
	}
	raid := func(level, state string, members ...Member) Array {
		return Array{Name: "data", Level: level, State: state, Members: members}
	}
	in, reb, bad := MemberInSync, MemberRebuilding, MemberFaulty
	for _, c := range []struct {
		name   string
		st     StorageStatus
		health map[string]string
		want   map[string]string // serial -> Pull ("-" when it is not to be replaced)
		keep   []string
	}{
		{"RAID 1 clean, A failing: pull A", StorageStatus{Disks: disks("A", "B"), Arrays: []Array{raid("raid1", ArrayClean, Member{"A", "", in}, Member{"B", "", in})}},
			map[string]string{"A": "replace"}, map[string]string{"A": PullNow, "B": "-"}, nil},
		{"RAID 1 rebuilding onto B from A, A failing: after", StorageStatus{Disks: disks("A", "B"), Arrays: []Array{raid("raid1", ArrayRebuilding, Member{"A", "", in}, Member{"B", "", reb})}},
			map[string]string{"A": "replace"}, map[string]string{"A": PullAfter, "B": "-"}, []string{"A"}},
		{"RAID 1 degraded, the only disk failing: never", StorageStatus{Disks: disks("A"), Arrays: []Array{raid("raid1", ArrayDegraded, Member{"A", "", in})}},
			map[string]string{"A": "failed"}, map[string]string{"A": PullNever}, []string{"A"}},
		{"RAID 1, faulty member beside a good one: pull it", StorageStatus{Disks: disks("A", "B"), Arrays: []Array{raid("raid1", ArrayDegraded, Member{"A", "", bad}, Member{"B", "", in})}},
			map[string]string{"A": "ok"}, map[string]string{"A": PullNow, "B": "-"}, []string{"B"}},
		{"RAID 5 clean, C failing: pull C", StorageStatus{Disks: disks("A", "B", "C"), Arrays: []Array{raid("raid5", ArrayClean, Member{"A", "", in}, Member{"B", "", in}, Member{"C", "", in})}},
			map[string]string{"C": "replace"}, map[string]string{"A": "-", "B": "-", "C": PullNow}, nil},
		{"RAID 5 rebuilding D, C failing: after", StorageStatus{Disks: disks("A", "B", "C", "D"), Arrays: []Array{raid("raid5", ArrayRebuilding, Member{"A", "", in}, Member{"B", "", in}, Member{"C", "", in}, Member{"D", "", reb})}},
			map[string]string{"C": "replace"}, map[string]string{"A": "-", "B": "-", "C": PullAfter, "D": "-"}, []string{"A", "B", "C"}},
		{"RAID 5 growing onto D, C failing: after", StorageStatus{Disks: disks("A", "B", "C", "D"), Arrays: []Array{raid("raid5", ArrayGrowing, Member{"A", "", in}, Member{"B", "", in}, Member{"C", "", in}, Member{"D", "", in})}},
			map[string]string{"C": "replace"}, map[string]string{"A": "-", "B": "-", "C": PullAfter, "D": "-"}, []string{"A", "B", "C", "D"}},
		{"RAID 5 degraded, no rebuild, B failing: never", StorageStatus{Disks: disks("A", "B"), Arrays: []Array{raid("raid5", ArrayDegraded, Member{"A", "", in}, Member{"B", "", in})}},
			map[string]string{"B": "replace"}, map[string]string{"A": "-", "B": PullNever}, []string{"A", "B"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var keep []string
			for _, a := range ReplacementAdvice(c.st, c.health) {
				want := c.want[a.Serial]
				got := a.Pull
				if !a.Replace {
					got = "-"
				}
				if got != want {
					t.Errorf("ReplacementAdvice: %s Pull = %q, want %q", a.Serial, got, want)
				}
				if a.Keep {
					keep = append(keep, a.Serial)
				}
			}
			if !slices.Equal(keep, c.keep) {
				t.Errorf("ReplacementAdvice: disks to keep %v, want %v", keep, c.keep)
			}
		})
	}
}
