package raid

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

type fakeRun struct {
	calls [][]string
	out   []byte
	err   error
}

func (f *fakeRun) run(_ context.Context, argv ...string) ([]byte, error) {
	f.calls = append(f.calls, argv)
	return f.out, f.err
}

func TestCreateArgv(t *testing.T) {
	f := &fakeRun{}
	m := &MDADM{Path: "/sbin/mdadm", Run: f.run}
	err := m.Create(context.Background(), "/dev/md1", CreateOptions{Level: 5, Name: "data", Homehost: "lawbox",
		Devices: []string{"/dev/vda3", "/dev/vdb3", Missing}})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(f.calls[0], " ")
	want := "/sbin/mdadm --create /dev/md1 --run --metadata=1.2 --level=5 --raid-devices=3 --bitmap=internal --name=data --homehost=lawbox /dev/vda3 /dev/vdb3 missing"
	if got != want {
		t.Errorf("argv\n got %s\nwant %s", got, want)
	}
	if slices.Contains(f.calls[0], "--force") {
		t.Error("--force turns RAID 5's recovery into a resync")
	}
	if err := m.Create(context.Background(), "/dev/md1", CreateOptions{Level: 0}); err == nil {
		t.Error("RAID 0 accepted")
	}
	f.calls = nil
	if err := m.Create(context.Background(), "/dev/md9", CreateOptions{Level: 5, Name: "scratch", Consistency: PPL, DataOffset: "8M", AssumeClean: true,
		Devices: []string{"/dev/vdx", "/dev/vdy", "/dev/vdz"}}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(f.calls[0], " "), "/sbin/mdadm --create /dev/md9 --run --metadata=1.2 --level=5 --raid-devices=3 --consistency-policy=ppl --name=scratch --data-offset=8M --assume-clean /dev/vdx /dev/vdy /dev/vdz"; got != want {
		t.Errorf("argv\n got %s\nwant %s", got, want)
	}
}

func TestErrorsNameTheArray(t *testing.T) {
	f := &fakeRun{err: errors.New("exit status 1"), out: []byte("mdadm: cannot open /dev/vdz3: No such file")}
	m := &MDADM{Run: f.run}
	err := m.Add(context.Background(), "/dev/md1", "/dev/vdz3")
	if err == nil || !strings.Contains(err.Error(), "add /dev/vdz3 to /dev/md1") {
		t.Errorf("error %v", err)
	}
	// mdadm 4.2's refusal of a RAID 5 that lost power while degraded (Assemble.c), and another failure.
	f.out = []byte("mdadm: /dev/md1 assembled from 2 drives - not enough to start the array while not clean - consider --force.\n")
	if err := m.Assemble(context.Background(), "/dev/md1", "u", []string{"/dev/vda3", "/dev/vdb3"}); !errors.Is(err, ErrNotClean) || !strings.Contains(err.Error(), "assemble /dev/md1") {
		t.Errorf("assemble a dirty degraded array: %v", err)
	}
	f.out = []byte("mdadm: no devices found for /dev/md1\n")
	if err := m.Assemble(context.Background(), "/dev/md1", "u", nil); err == nil || errors.Is(err, ErrNotClean) {
		t.Errorf("assemble with no devices: %v", err)
	}
	f.out = []byte("mdadm: No md superblock detected on /dev/vda1.\n")
	if _, err := m.Examine(context.Background(), "/dev/vda1"); !errors.Is(err, ErrNoSuperblock) {
		t.Errorf("examine a blank partition: %v", err)
	}
}

// Captured from mdadm 4.2 in the appliance image (mdadm --examine --export /dev/vdb3).
const examineRAID5 = `MD_LEVEL=raid5
MD_DEVICES=3
MD_NAME=lawbox:data
MD_UUID=5b0a3a3c:6f2d9e41:0c1b6a7e:93d2f1aa
MD_UPDATE_TIME=1795000000
MD_DEV_UUID=0e5d2a1b:44c3f9e2:8a7b6c5d:1f2e3d4c
MD_EVENTS=18
`

func TestParseExamine(t *testing.T) {
	sb, err := ParseExamine([]byte(examineRAID5))
	if err != nil {
		t.Fatal(err)
	}
	want := Superblock{Level: "raid5", Devices: 3, Name: "lawbox:data", UUID: "5b0a3a3c:6f2d9e41:0c1b6a7e:93d2f1aa",
		DevUUID: "0e5d2a1b:44c3f9e2:8a7b6c5d:1f2e3d4c", Events: 18}
	if sb != want {
		t.Errorf("got %+v\nwant %+v", sb, want)
	}
	if _, err := ParseExamine([]byte("garbage\n")); !errors.Is(err, ErrNoSuperblock) {
		t.Errorf("garbage: %v", err)
	}
}

func writeTree(t *testing.T, root string, files map[string]string) {
	for p, v := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadArrayRebuilding(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"block/md1/size":                 "2088960",
		"block/md1/md/level":             "raid5",
		"block/md1/md/array_state":       "clean",
		"block/md1/md/sync_action":       "recover",
		"block/md1/md/raid_disks":        "3",
		"block/md1/md/degraded":          "1",
		"block/md1/md/mismatch_cnt":      "0",
		"block/md1/md/sync_completed":    "262144 / 1044480",
		"block/md1/md/sync_speed":        "51200",
		"block/md1/md/dev-vda3/state":    "in_sync",
		"block/md1/md/dev-vda3/slot":     "0",
		"block/md1/md/dev-vdb3/state":    "in_sync",
		"block/md1/md/dev-vdb3/slot":     "1",
		"block/md1/md/dev-vdd3/state":    "spare",
		"block/md1/md/dev-vdd3/slot":     "2",
		"block/md1/md/dev-vdc3/state":    "faulty",
		"block/md1/md/dev-vdc3/slot":     "none",
		"block/md1/md/unrelated_setting": "x",
	})
	a, err := ReadArray(root, "md1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Level != "raid5" || a.SyncAction != "recover" || a.Degraded != 1 || a.SyncDone != 262144 ||
		a.SyncTotal != 1044480 || a.SyncSpeedKB != 51200 || a.SizeBytes != 2088960*512 || a.RaidDisks != 3 {
		t.Errorf("array %+v", a)
	}
	got := fmt.Sprint(a.Members)
	want := "[{vda3 [in_sync] 0} {vdb3 [in_sync] 1} {vdc3 [faulty] -1} {vdd3 [spare] 2}]"
	if got != want {
		t.Errorf("members\n got %s\nwant %s", got, want)
	}
	if !a.Members[2].Has("faulty") || a.Members[0].Has("faulty") {
		t.Error("Has")
	}
	if _, err := ReadArray(root, "md9"); !errors.Is(err, ErrNoArray) {
		t.Errorf("missing array: %v", err)
	}
	if d, tot := ParseSyncCompleted("none"); d != 0 || tot != 0 {
		t.Error("none")
	}
	// Reshaping from three members to four, as md says it.
	writeTree(t, root, map[string]string{"block/md1/md/raid_disks": "4 (3)", "block/md1/md/sync_action": "reshape", "block/md1/md/reshape_position": "1536"})
	if a, err := ReadArray(root, "md1"); err != nil || a.RaidDisks != 4 || a.SyncAction != "reshape" || !a.Reshaping {
		t.Errorf("reshaping: %+v %v", a, err)
	}
}

func TestFailRemoveWritesState(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"block/md1/md/dev-vdb3/state": "in_sync"})
	if err := FailRemove(root, "md1", "vdb3"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "block/md1/md/dev-vdb3/state")); string(b) != "remove" {
		t.Errorf("state file holds %q, want the last write to be remove", b)
	}
	if err := FailRemove(root, "md1", "vdz3"); err != nil {
		t.Errorf("a member already gone: %v", err)
	}
}

func TestSetConsistencySteps(t *testing.T) {
	for _, c := range []struct{ from, to, want string }{
		{Bitmap, PPL, "--grow /dev/md1 --bitmap=none|--grow /dev/md1 --consistency-policy=ppl"},
		{"resync", PPL, "--grow /dev/md1 --consistency-policy=ppl"},
		{PPL, Bitmap, "--grow /dev/md1 --consistency-policy=resync|--grow /dev/md1 --bitmap=internal"},
		{"resync", Bitmap, "--grow /dev/md1 --bitmap=internal"},
		{PPL, PPL, ""},
	} {
		f := &fakeRun{}
		m := &MDADM{Path: "mdadm", Run: f.run}
		if err := m.SetConsistency(context.Background(), "/dev/md1", c.from, c.to); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, call := range f.calls {
			got = append(got, strings.Join(call[1:], " "))
		}
		if strings.Join(got, "|") != c.want {
			t.Errorf("%s -> %s: %q, want %q", c.from, c.to, strings.Join(got, "|"), c.want)
		}
	}
	// No room for the log: the bitmap comes back.
	f := &fakeRun{}
	fails := func(_ context.Context, argv ...string) ([]byte, error) {
		f.calls = append(f.calls, argv)
		if strings.HasSuffix(argv[len(argv)-1], "=ppl") {
			return nil, errors.New("exit status 254: mdadm: Not enough space to add ppl")
		}
		return nil, nil
	}
	if err := (&MDADM{Path: "mdadm", Run: fails}).SetConsistency(context.Background(), "/dev/md1", Bitmap, PPL); err == nil ||
		len(f.calls) != 3 || strings.Join(f.calls[2], " ") != "mdadm --grow /dev/md1 --bitmap=internal" {
		t.Errorf("no room for the log: %v, calls %q", err, f.calls)
	}
	if err := (&MDADM{Run: (&fakeRun{}).run}).SetConsistency(context.Background(), "/dev/md1", Bitmap, "journal"); err == nil {
		t.Error("a journal accepted")
	}
}

func TestKmsgRecord(t *testing.T) {
	rec := []byte("2,512,3140227,-;md/raid:md1: starting dirty degraded array with PPL.\n SUBSYSTEM=block\n")
	if !recordHas(rec, "md/raid:md1: starting dirty degraded array with PPL") || recordHas(rec, "md/raid:md0: starting dirty") ||
		recordHas(rec, "SUBSYSTEM=block") || recordHas([]byte("no prefix"), "no") {
		t.Error("kmsg records misread")
	}
	if _, err := KernelSaid(filepath.Join(t.TempDir(), "none"), "x"); err == nil {
		t.Error("a missing kernel log read")
	}
}

// Read to its end, the kernel's log answers (a read parked until the kernel logs more hung a unit's
// boot once).
func TestKernelSaidReturnsAtTheEnd(t *testing.T) {
	if _, err := os.Stat("/dev/kmsg"); err != nil {
		t.Skip("no /dev/kmsg here")
	}
	done := make(chan error, 1)
	go func() {
		said, err := KernelSaid("/dev/kmsg", "a line no kernel ever logged: 7f3c9a")
		if said {
			err = errors.New("found a line nobody logged")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EACCES) {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reading the kernel's log did not return at its end")
	}
}
