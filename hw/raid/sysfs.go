package raid

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Array is what md's sysfs tree says about one array (/sys/block/mdN/md).
type Array struct {
	Name        string // "md0"
	Level       string // "raid1", "raid5"; "" while inactive
	ArrayState  string // clean, active, active-idle, readonly, inactive, ...
	SyncAction  string // idle, resync, recover, check, repair, frozen, reshape
	Consistency string // md's consistency_policy: bitmap, ppl, resync (neither), none (RAID 0)
	RaidDisks   int    // active members; while reshaping, the number it is reshaping to
	Reshaping   bool   // md's reshape_position is set: a reshape is under way (running, or about to resume)
	Degraded    int    // missing members
	MismatchCnt int64  // sectors found inconsistent by the last check
	SyncDone    int64  // sectors done of the running sync action; 0 when idle
	SyncTotal   int64
	SyncSpeedKB int64 // KiB/s of the running sync action
	SizeBytes   int64
	Members     []Member
}

// Member is one component device (/sys/block/mdN/md/dev-X).
type Member struct {
	Dev   string   // kernel name, e.g. "vda3"
	State []string // e.g. in_sync, faulty, spare, write_mostly, blocked, want_replacement
	Slot  int      // role in the array; -1 for a spare or a faulty device
}

// Has reports whether the member's state includes flag.
func (m Member) Has(flag string) bool {
	for _, s := range m.State {
		if s == flag {
			return true
		}
	}
	return false
}

// ErrNoArray means the md device does not exist (not assembled, or stopped).
var ErrNoArray = errors.New("no such md array")

// ReadArray reads array name ("md0") under sysRoot (normally "/sys").
func ReadArray(sysRoot, name string) (Array, error) {
	dir := filepath.Join(sysRoot, "block", name, "md")
	if _, err := os.Stat(dir); err != nil {
		return Array{}, fmt.Errorf("read %s: %w", name, ErrNoArray)
	}
	a := Array{
		Name:        name,
		Level:       attr(dir, "level"),
		ArrayState:  attr(dir, "array_state"),
		SyncAction:  attr(dir, "sync_action"),
		Consistency: attr(dir, "consistency_policy"),
	}
	// While md reshapes it says "4 (3)": the members the array is becoming (and had).
	a.RaidDisks, _ = strconv.Atoi(strings.Fields(attr(dir, "raid_disks") + " ")[0])
	a.Degraded, _ = strconv.Atoi(attr(dir, "degraded"))
	pos := attr(dir, "reshape_position")
	a.Reshaping = pos != "" && pos != "none"
	a.MismatchCnt, _ = strconv.ParseInt(attr(dir, "mismatch_cnt"), 10, 64)
	a.SyncDone, a.SyncTotal = ParseSyncCompleted(attr(dir, "sync_completed"))
	a.SyncSpeedKB, _ = strconv.ParseInt(attr(dir, "sync_speed"), 10, 64)
	if s, err := strconv.ParseInt(attr(filepath.Dir(dir), "size"), 10, 64); err == nil {
		a.SizeBytes = s * 512
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return a, fmt.Errorf("read %s: %w", name, err)
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "dev-") {
			continue
		}
		d := filepath.Join(dir, e.Name())
		m := Member{Dev: strings.TrimPrefix(e.Name(), "dev-"), State: strings.Split(attr(d, "state"), ","), Slot: -1}
		if s, err := strconv.Atoi(attr(d, "slot")); err == nil {
			m.Slot = s
		}
		a.Members = append(a.Members, m)
	}
	sort.Slice(a.Members, func(i, j int) bool { return a.Members[i].Dev < a.Members[j].Dev })
	return a, nil
}

// ParseSyncCompleted parses md's sync_completed ("123 / 456" sectors, or "none").
func ParseSyncCompleted(s string) (done, total int64) {
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0
	}
	done, err1 := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	total, err2 := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0
	}
	return done, total
}

// SetSyncAction writes md's sync_action: "check" starts a scrub, "idle" stops one.
func SetSyncAction(sysRoot, name, action string) error {
	return write(sysRoot, name, "sync_action", action)
}

// StripeCache is a RAID 5's stripe cache (md's stripe_cache_size: pages of 4 KiB per member), 0 for
// another level.
func StripeCache(sysRoot, name string) int {
	n, _ := strconv.Atoi(attr(filepath.Join(sysRoot, "block", name, "md"), "stripe_cache_size"))
	return n
}

// SetStripeCache sets a RAID 5's stripe cache (pages per member).
func SetStripeCache(sysRoot, name string, pages int) error {
	return write(sysRoot, name, "stripe_cache_size", strconv.Itoa(pages))
}

// SetSyncMin sets where the next sync action starts (in sectors): a check resumes from there.
func SetSyncMin(sysRoot, name string, sector int64) error {
	return write(sysRoot, name, "sync_min", strconv.FormatInt(sector, 10))
}

func write(sysRoot, name, file, value string) error {
	p := filepath.Join(sysRoot, "block", name, "md", file)
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	return nil
}

func attr(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// SetSpeedLimits sets md's resync/rebuild speed floor and ceiling in KiB/s (/proc/sys/dev/raid). md runs
// at the ceiling while the disks are otherwise idle and drops to the floor under other I/O.
func SetSpeedLimits(procRoot string, minKB, maxKB int) error {
	for file, v := range map[string]int{"speed_limit_max": maxKB, "speed_limit_min": minKB} {
		p := filepath.Join(procRoot, "sys/dev/raid", file)
		if err := os.WriteFile(p, []byte(strconv.Itoa(v)), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

// SetMemberState writes a member's state: "want_replacement" has md copy it onto a spare and fail it when
// the copy is done (what mdadm --replace does).
func SetMemberState(sysRoot, name, dev, value string) error {
	p := filepath.Join(sysRoot, "block", name, "md", "dev-"+dev, "state")
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set %s of %s in %s: %w", value, dev, name, err)
	}
	return nil
}

// FailRemove marks member dev ("vdb3") of array name faulty and removes it, through md's sysfs: unlike
// mdadm's "detached" it needs no device node, so it works for a disk that is already gone. Removal waits
// for md to finish the I/O in flight to the member (up to five seconds).
func FailRemove(sysRoot, name, dev string) error {
	p := filepath.Join(sysRoot, "block", name, "md", "dev-"+dev, "state")
	if err := os.WriteFile(p, []byte("faulty"), 0o644); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // gone already
		}
		return fmt.Errorf("fail %s in %s: %w", dev, name, err)
	}
	var err error
	for range 50 {
		if err = os.WriteFile(p, []byte("remove"), 0o644); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("remove %s from %s: %w", dev, name, err)
}

// SetStartDirtyDegraded switches md's start_dirty_degraded module parameter: whether a RAID 4/5/6 array
// that is both degraded and not clean may start (sysRoot/module/md_mod/parameters).
func SetStartDirtyDegraded(sysRoot string, on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	p := filepath.Join(sysRoot, "module/md_mod/parameters/start_dirty_degraded")
	if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}
