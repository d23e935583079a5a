package storage

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/hw/gpt"
	"github.com/lawbox/appliance/hw/raid"
)

func TestLayout(t *testing.T) {
	const size = 4 << 30
	tb := Layout(size, 512)
	_, last := gpt.Geometry(size, 512)
	p := tb.Partitions
	if len(p) != 3 || p[0].First != 2048 || (p[1].Last-p[1].First+1)*512 != SystemBytes ||
		(p[0].Last-p[0].First+1)*512 != BootBytes || p[2].Last != last || p[1].First%2048 != 0 || p[2].First%2048 != 0 {
		t.Fatalf("layout %+v", p)
	}
	// A bigger disk gets the same system partition: a replacement always fits the system mirror.
	if big := Layout(8<<30, 512).Partitions; big[1] != p[1] && (big[1].First != p[1].First || big[1].Last != p[1].Last) {
		t.Errorf("system partition moves with disk size: %+v vs %+v", big[1], p[1])
	}
	if n := Layout(4<<30, 4096).Partitions; n[0].First != 256 {
		t.Errorf("4Kn disk: boot starts at %d", n[0].First)
	}
}

func TestDataLevel(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 1, 3: 5, 4: 5, 8: 5} {
		if got := DataLevel(n); got != want {
			t.Errorf("%d disks: RAID %d, want %d", n, got, want)
		}
	}
}

func TestArrayState(t *testing.T) {
	base := raid.Array{Level: "raid5", ArrayState: "clean", SyncAction: "idle", RaidDisks: 3}
	cases := []struct {
		name string
		mod  func(a *raid.Array)
		want string
	}{
		{"clean", func(a *raid.Array) {}, appliance.ArrayClean},
		{"active is clean too", func(a *raid.Array) { a.ArrayState = "active" }, appliance.ArrayClean},
		{"degraded", func(a *raid.Array) { a.Degraded = 1 }, appliance.ArrayDegraded},
		{"raid5 two missing", func(a *raid.Array) { a.Degraded = 2 }, appliance.ArrayFailed},
		{"raid1 of 3 two missing", func(a *raid.Array) { a.Level = "raid1"; a.Degraded = 2 }, appliance.ArrayDegraded},
		{"raid1 all missing", func(a *raid.Array) { a.Level = "raid1"; a.Degraded = 3 }, appliance.ArrayFailed},
		{"rebuilding", func(a *raid.Array) { a.Degraded = 1; a.SyncAction = "recover" }, appliance.ArrayRebuilding},
		{"resync", func(a *raid.Array) { a.SyncAction = "resync" }, appliance.ArrayResyncing},
		{"check", func(a *raid.Array) { a.SyncAction = "check" }, appliance.ArrayChecking},
		{"inactive", func(a *raid.Array) { a.ArrayState = "inactive" }, appliance.ArrayFailed},
	}
	for _, c := range cases {
		a := base
		c.mod(&a)
		if got := ArrayState(a); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestMemberState(t *testing.T) {
	cases := []struct {
		m    raid.Member
		want string
	}{
		{raid.Member{State: []string{"in_sync"}, Slot: 0}, appliance.MemberInSync},
		{raid.Member{State: []string{"faulty"}, Slot: -1}, appliance.MemberFaulty},
		{raid.Member{State: []string{"in_sync", "faulty"}, Slot: 1}, appliance.MemberFaulty},
		{raid.Member{State: []string{"spare"}, Slot: 1}, appliance.MemberRebuilding},
		{raid.Member{State: []string{"spare"}, Slot: -1}, appliance.MemberSpare},
	}
	for _, c := range cases {
		if got := MemberState(c.m); got != c.want {
			t.Errorf("%+v: %s, want %s", c.m, got, c.want)
		}
	}
}

func TestProgress(t *testing.T) {
	p, eta := Progress(raid.Array{SyncAction: "recover", SyncDone: 1 << 20, SyncTotal: 4 << 20, SyncSpeedKB: 1024})
	if p == nil || *p != 0.25 || eta == nil || *eta != 1536 { // 3 Mi sectors = 1.5 GiB at 1 MiB/s
		t.Errorf("progress %v eta %v", deref(p), deref(eta))
	}
	if p, eta := Progress(raid.Array{SyncAction: "idle"}); p != nil || eta != nil {
		t.Error("idle array has progress")
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestScrubSchedule(t *testing.T) {
	d := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := FirstSunday(d("2026-11-23 12:00")); !got.Equal(d("2026-11-01 01:00")) {
		t.Errorf("first Sunday of Nov 2026: %v", got)
	}
	if got := FirstSunday(d("2026-12-15 12:00")); !got.Equal(d("2026-12-06 01:00")) {
		t.Errorf("first Sunday of Dec 2026: %v", got)
	}
	never := time.Time{}
	if !ScrubDue(never, d("2026-11-23 12:00")) {
		t.Error("never scrubbed, past this month's first Sunday: due")
	}
	if ScrubDue(d("2026-11-01 01:00"), d("2026-11-23 12:00")) {
		t.Error("scrubbed this month: not due")
	}
	if ScrubDue(d("2026-10-04 01:00"), d("2026-12-05 23:00")) {
		t.Error("before December's first Sunday: not due yet")
	}
	if !ScrubDue(d("2026-11-01 01:00"), d("2026-12-06 01:00")) {
		t.Error("December's first Sunday: due")
	}
	if got := NextScrub(d("2026-11-01 02:00"), d("2026-11-23 12:00")); !got.Equal(d("2026-12-06 01:00")) {
		t.Errorf("next scrub %v", got)
	}
}

// An admin names the bays as the box's labels say: the name follows the slot (whatever disk sits in it),
// an empty name forgets it, and a name that is too long or not printable is refused with nothing changed.
func TestBayNames(t *testing.T) {
	m := &Manager{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now}
	m.status.Disks = []appliance.StorageDisk{{Serial: "SN-A", Slot: "pci-0000:00:1f.2-ata-1"}, {Serial: "SN-B", Slot: "pci-0000:00:1f.2-ata-2"}}
	set := func(slot, name string) error {
		return m.SetPolicy(t.Context(), appliance.StoragePolicyChange{Bays: map[string]string{slot: name}})
	}
	if err := set("pci-0000:00:1f.2-ata-2", " Bay 2 (right) "); err != nil {
		t.Fatal(err)
	}
	st := m.status
	if st.Disks[1].Bay != "Bay 2 (right)" || st.Disks[1].Where() != "Bay 2 (right)" || st.Disks[0].Where() != "pci-0000:00:1f.2-ata-1" || m.cfg.Bays["pci-0000:00:1f.2-ata-2"] != "Bay 2 (right)" {
		t.Errorf("after naming: %+v, kept %v", st.Disks, m.cfg.Bays)
	}
	for _, bad := range []string{strings.Repeat("x", 41), "Bay\n2", "Bay\x002"} {
		if err := set("pci-0000:00:1f.2-ata-1", bad); !errors.Is(err, appliance.ErrBadInput) {
			t.Errorf("bay name %q: %v, want ErrBadInput", bad, err)
		}
	}
	if err := set("", "Bay 9"); !errors.Is(err, appliance.ErrBadInput) {
		t.Errorf("a name without a slot: %v", err)
	}
	if err := set("pci-0000:00:1f.2-ata-2", ""); err != nil {
		t.Fatal(err)
	}
	if st := m.status; st.Disks[1].Bay != "" || len(m.cfg.Bays) != 0 {
		t.Errorf("after forgetting: %+v, kept %v", st.Disks, m.cfg.Bays)
	}
}
