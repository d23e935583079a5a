package firmware

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lawbox/appliance/appliance"
)

func TestParseEntry(t *testing.T) {
	for _, c := range []struct {
		name       string
		ok         bool
		version    string
		left, done int
	}{
		{"lawbox-3d79e20.efi", true, "3d79e20", -1, 0},
		{"lawbox-3d79e20-dirty+3.efi", true, "3d79e20-dirty", 3, 0},
		{"lawbox-v1.2+2-1.efi", true, "v1.2", 2, 1},
		{"lawbox-v1.2+0-3.efi", true, "v1.2", 0, 3},
		{"lawbox-v1.2+3.efi.part", false, "", 0, 0},
		{"systemd-bootx64.efi", false, "", 0, 0},
		{"lawbox-.efi", false, "", 0, 0},
		{"lawbox-a+b.efi", false, "", 0, 0},
	} {
		e, ok := ParseEntry(c.name)
		if ok != c.ok || ok && (e.Version != c.version || e.Left != c.left || e.Done != c.done) {
			t.Errorf("ParseEntry(%q) = %+v, %v", c.name, e, ok)
		}
	}
	if e, _ := ParseEntry("lawbox-v+0-3.efi"); !e.Failed() || e.Blessed() {
		t.Errorf("+0-3 is failed: %+v", e)
	}
}

type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (m *memStore) GetJSON(b, k string, v any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.m[b+"/"+k]
	if !ok {
		return errors.New("not found")
	}
	return json.Unmarshal(data, v)
}
func (m *memStore) PutJSON(b, k string, v any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, err := json.Marshal(v)
	m.m[b+"/"+k] = data
	return err
}

type updateRig struct {
	u        *Updater
	fat      *fakeFAT
	store    *memStore
	key      SecretKey
	restarts atomic.Int32
	blessed  int
	kept     atomic.Int32 // Kept told
	back     atomic.Int32 // GoingBack told
	count    string       // LoaderBootCountPath
	tmp      string
	unwell   atomic.Value // string: what the health check says ("": healthy)
}

// newRig: a unit running v2 (build 20), blessed on both members' boot partitions, with v1 before it.
func newRig(t *testing.T) *updateRig {
	r := &updateRig{store: &memStore{m: map[string][]byte{}}}
	r.unwell.Store("")
	r.key, _ = GenerateKey()
	r.fat = &fakeFAT{parts: map[string]map[string]string{}}
	for _, p := range []string{"/dev/vda1", "/dev/vdb1"} {
		r.fat.parts[p] = map[string]string{"/EFI/Linux/lawbox-v1.efi": "image v1", "/EFI/Linux/lawbox-v2.efi": "image v2"}
	}
	r.tmp = t.TempDir()
	r.u = r.updater("v2", 20)
	return r
}

// updater is the rig's unit booted on version (build).
func (r *updateRig) updater(version string, build int) *Updater {
	pub := r.key.Public()
	disks := []appliance.StorageDisk{{Serial: "A", Role: "member", BootPartition: "/dev/vda1"}, {Serial: "B", Role: "member", BootPartition: "/dev/vdb1"}}
	boot := &Installer{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Storage: fakeStorage{appliance.StorageStatus{Disks: disks}},
		FAT: r.fat, Version: version, TmpDir: r.tmp}
	return &Updater{Boot: boot, Store: r.store, Key: &pub, Build: build, Every: 1,
		BootCount: func() (string, error) { return r.count, nil },
		Health: []HealthCheck{{Name: "the database", Check: func(context.Context) error {
			if s := r.unwell.Load().(string); s != "" {
				return errors.New(s)
			}
			return nil
		}}},
		Restart: func(context.Context) error { r.restarts.Add(1); return nil },
		Blessed: func(context.Context) error { r.blessed++; return nil },
		Kept:    func() error { r.kept.Add(1); return nil }, GoingBack: func() error { r.back.Add(1); return nil }}
}

func (r *updateRig) bundle(t *testing.T, version string, build int) []byte {
	return bundle(t, r.key, Manifest{Version: version, Build: build, Parts: []Part{{Name: Slot(version)}}}, "image "+version)
}

func (r *updateRig) record(t *testing.T) appliance.FirmwareRun {
	var run appliance.FirmwareRun
	if err := r.store.GetJSON(bucket, runKey, &run); err != nil {
		t.Fatal(err)
	}
	return run
}

// A good bundle: the previous slot makes room, the new one stands beside the running one with its tries,
// on every member; the unit restarts. A second update meanwhile is refused.
func TestUpdateWritesTheFreeSlot(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	b := r.bundle(t, "v3", 30)
	run, err := r.u.Update(ctx, bytes.NewReader(b), int64(len(b)), false, "admin")
	if err != nil || run.State != appliance.FirmwareRestarting || run.From != "v2" || r.back.Load() != 0 {
		t.Fatalf("Update = %+v, %v (GoingBack told %d times)", run, err, r.back.Load())
	}
	for p, files := range r.fat.parts {
		want := map[string]string{"/EFI/Linux/lawbox-v2.efi": "image v2", "/EFI/Linux/lawbox-v3+3.efi": "image v3"}
		if !maps.Equal(files, want) {
			t.Errorf("%s after the update: %v", p, files)
		}
	}
	if _, err := r.u.Update(ctx, bytes.NewReader(b), 0, false, "admin"); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("a second update while one runs: %v, want a conflict", err)
	}
	st, err := r.u.Firmware(ctx)
	if err != nil || len(st.Slots) != 2 || st.Slots[0].State != "running" || st.Slots[1].State != "trying" || st.Slots[1].TriesLeft != Tries || st.Progress.Done != int64(len(b)) {
		t.Errorf("Firmware = %+v, %v", st, err)
	}
}

// Every bad bundle is refused with the right kind of error and the partitions keep every byte.
func TestUpdateRefusesBadBundles(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	before := map[string]map[string]string{}
	for p, files := range r.fat.parts {
		before[p] = maps.Clone(files)
	}
	good := r.bundle(t, "v3", 30)
	other, _ := GenerateKey()
	for _, c := range []struct {
		name   string
		bundle []byte
		want   error
	}{
		{"truncated", good[:len(good)-700], appliance.ErrBadInput},
		{"corrupted", bytes.Replace(good, []byte("image v3"), []byte("image v4"), 1), appliance.ErrBadInput},
		{"foreign key", bundle(t, other, Manifest{Version: "v3", Build: 30, Parts: []Part{{Name: Slot("v3")}}}, "image v3"), appliance.ErrBadInput},
		{"downgrade", r.bundle(t, "v0", 10), appliance.ErrConflict},
		{"same version", r.bundle(t, "v2", 20), appliance.ErrConflict},
		{"too big", bundle(t, r.key, Manifest{Version: "v3", Build: 30, Parts: []Part{{Name: Slot("v3")}}}, strings.Repeat("x", 401)), appliance.ErrBadInput},
		{"part misnamed", bundle(t, r.key, Manifest{Version: "v3", Build: 30, Parts: []Part{{Name: "lawbox-v9.efi"}}}, "image"), appliance.ErrBadInput},
		{"version with a path", bundle(t, r.key, Manifest{Version: "../v3", Build: 30, Parts: []Part{{Name: "lawbox-../v3.efi"}}}, "image"), appliance.ErrBadInput},
	} {
		if _, err := r.u.Update(ctx, bytes.NewReader(c.bundle), 0, false, "admin"); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if !maps.EqualFunc(r.fat.parts, before, maps.Equal) || r.restarts.Load() != 0 {
		t.Errorf("a refused bundle changed the partitions (%v) or restarted the unit (%d)", r.fat.parts, r.restarts.Load())
	}
	// The downgrade, asked for: taken, and the record says who allowed it.
	run, err := r.u.Update(ctx, bytes.NewReader(r.bundle(t, "v0", 10)), 0, true, "admin")
	if err != nil || !strings.Contains(run.Reason, "downgrade from build 20 allowed by admin") || r.back.Load() != 1 {
		t.Errorf("an allowed downgrade: %+v, %v (GoingBack told %d times)", run, err, r.back.Load())
	}
}

// Nothing is updated while the running slot is itself on trial, or not yet on every member.
func TestUpdateNeedsTheRunningSlotEverywhere(t *testing.T) {
	r := newRig(t)
	b := r.bundle(t, "v3", 30)
	delete(r.fat.parts["/dev/vdb1"], "/EFI/Linux/lawbox-v2.efi")
	if _, err := r.u.Update(context.Background(), bytes.NewReader(b), 0, false, "admin"); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("running slot missing on a member: %v", err)
	}
	r.fat.parts["/dev/vdb1"]["/EFI/Linux/lawbox-v2+2-1.efi"] = "image v2"
	if _, err := r.u.Update(context.Background(), bytes.NewReader(b), 0, false, "admin"); !errors.Is(err, appliance.ErrConflict) || !strings.Contains(err.Error(), "trial") {
		t.Errorf("running slot on trial: %v", err)
	}
}

// On trial: not blessed while unhealthy (the reason is recorded), blessed on every member once healthy,
// and PID 1 is told.
func TestTrialBlessesWhenHealthy(t *testing.T) {
	r := newRig(t)
	r.fat.parts["/dev/vda1"] = map[string]string{"/EFI/Linux/lawbox-v1.efi": "v1", "/EFI/Linux/lawbox-v2+2-1.efi": "v2"} // booted from here
	r.fat.parts["/dev/vdb1"] = map[string]string{"/EFI/Linux/lawbox-v1.efi": "v1", "/EFI/Linux/lawbox-v2+3.efi": "v2"}
	r.store.PutJSON(bucket, runKey, appliance.FirmwareRun{Version: "v2", From: "v1", State: appliance.FirmwareRestarting})
	r.count = `\EFI\Linux\lawbox-v2+2-1.efi`
	r.unwell.Store("not running")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.u.Run(ctx) }()
	for r.record(t).Reason == "" {
	}
	if run := r.record(t); run.State != appliance.FirmwareTrying || run.Reason != "not healthy yet: the database: not running" {
		t.Errorf("unhealthy on trial: %+v", run)
	}
	if r.kept.Load() != 0 {
		t.Error("a firmware on trial said to be kept")
	}
	r.unwell.Store("")
	for r.record(t).State != appliance.FirmwareBlessed {
	}
	cancel()
	<-done
	for p, files := range r.fat.parts {
		if files["/EFI/Linux/lawbox-v2.efi"] != "v2" || len(files) != 2 {
			t.Errorf("%s after blessing: %v", p, files)
		}
	}
	if r.blessed != 1 || r.kept.Load() != 1 {
		t.Errorf("PID 1 told %d times, Kept %d times", r.blessed, r.kept.Load())
	}
}

// Back on the old slot after a trial: the record says why, and the failed slot is marked on every member
// (the boot loader counted it down on the one it booted from only). A write cut short is "interrupted".
func TestCameBack(t *testing.T) {
	r := newRig(t)
	r.fat.parts["/dev/vda1"]["/EFI/Linux/lawbox-v3+0-3.efi"] = "v3"
	r.fat.parts["/dev/vdb1"]["/EFI/Linux/lawbox-v3+3.efi"] = "v3"
	r.store.PutJSON(bucket, runKey, appliance.FirmwareRun{Version: "v3", From: "v2", State: appliance.FirmwareTrying, Reason: "not healthy yet: the database: not running"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.u.Run(ctx)
	run := r.record(t)
	if run.State != appliance.FirmwareRolledBack || !strings.Contains(run.Reason, "version v3 did not become healthy in 3 tries (the database: not running); the unit went back to v2") {
		t.Errorf("came back: %+v", run)
	}
	if _, ok := r.fat.parts["/dev/vdb1"]["/EFI/Linux/lawbox-v3+0.efi"]; !ok {
		t.Errorf("the failed slot is not marked on the other member: %v", r.fat.parts["/dev/vdb1"])
	}

	r.store.PutJSON(bucket, runKey, appliance.FirmwareRun{Version: "v4", From: "v2", State: appliance.FirmwareWriting})
	r.u.Run(ctx)
	if run := r.record(t); run.State != appliance.FirmwareInterrupted {
		t.Errorf("a write cut short: %+v", run)
	}
	if r.kept.Load() != 2 {
		t.Errorf("a boot without a trial: Kept told %d times in 2 boots", r.kept.Load())
	}
}

// A rollback marks the running slot failed everywhere and restarts; without a previous blessed slot it is
// refused.
func TestRollback(t *testing.T) {
	r := newRig(t)
	if err := r.u.Rollback(context.Background(), "admin"); err != nil {
		t.Fatal(err)
	}
	for p, files := range r.fat.parts {
		if _, ok := files["/EFI/Linux/lawbox-v2+0.efi"]; !ok || files["/EFI/Linux/lawbox-v1.efi"] == "" {
			t.Errorf("%s after the rollback: %v", p, files)
		}
	}
	if run := r.record(t); run.Version != "v1" || run.State != appliance.FirmwareManualRollback {
		t.Errorf("record: %+v", run)
	}
	if r.back.Load() != 1 {
		t.Errorf("GoingBack told %d times", r.back.Load())
	}
	r = newRig(t)
	for _, files := range r.fat.parts {
		delete(files, "/EFI/Linux/lawbox-v1.efi")
	}
	if err := r.u.Rollback(context.Background(), "admin"); !errors.Is(err, appliance.ErrConflict) || r.back.Load() != 0 {
		t.Errorf("rollback without a previous slot: %v (GoingBack told %d times)", err, r.back.Load())
	}
}
