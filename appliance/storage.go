package appliance

import (
	"context"
	"fmt"
	"time"
	"unicode"

	"github.com/lawbox/appliance/hw/smart"
)

// Array states, member states and disk roles the storage reports.
const (
	ArrayClean      = "clean"
	ArrayDegraded   = "degraded"
	ArrayRebuilding = "rebuilding"
	ArrayResyncing  = "resyncing"
	ArrayChecking   = "checking"
	ArrayGrowing    = "growing" // md reshapes it onto a new disk
	ArrayFailed     = "failed"

	MemberInSync     = "in_sync"
	MemberFaulty     = "faulty"
	MemberRebuilding = "rebuilding"
	MemberSpare      = "spare"
	MemberRemoved    = "removed"
)

// StorageStatus is the disks and arrays (GET /api/v1/storage).
type StorageStatus struct {
	Arrays []Array       `json:"arrays"`
	Disks  []StorageDisk `json:"disks"`
	StoragePolicy
	Persisted bool      `json:"persistent"` // settings live on the system array, not in RAM
	LastScrub time.Time `json:"last_scrub,omitzero"`
	NextScrub time.Time `json:"next_scrub,omitzero"`
	Alerts    []Alert   `json:"alerts"`
	// Space is each array's filesystem: size, use and what takes the room.
	Space []Space `json:"space"`
	// GrowWaits says why the data array did not grow onto a new disk, which waits as a spare ("": it did,
	// or there is none). POST /api/v1/storage/grow grows it all the same when the reason is an old backup.
	GrowWaits string `json:"grow_waits,omitempty"`
	// Encryption is the data array's.
	Encryption Encryption `json:"encryption"`
}

// Encryption is the state of the data array's encryption at rest (LUKS2).
type Encryption struct {
	// State: "none" (an array made before encryption), "locked" (encrypted, and its key not had: nothing is
	// served until an admin types the recovery key), "open".
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"` // why it is locked
	// KeyHolders keep the unit key that opens it at boot: "tpm" (sealed to this box's TPM), "partner" and
	// "witness" (each keeps a secret the key is wrapped with); any one of them opens it.
	KeyHolders []string `json:"key_holders"`
	// KeysNeeded is how many of them must give their part: 1, or 2 when the box has a TPM and a network
	// holder (a unit taken away from the office, TPM and all, stays locked).
	KeysNeeded int `json:"keys_needed,omitempty"`
	// KeyOnDisks: the unit key is also on the disks in the clear (nothing keeps it, or no recovery sheet
	// was made yet): a disk taken out is not protected.
	KeyOnDisks  bool `json:"key_on_disks"`
	RecoveryKey bool `json:"recovery_key"` // a recovery key (the recovery sheet) opens it too
}

// Space is one filesystem's size and use, as df reports them, and what takes its room.
type Space struct {
	Name      string  `json:"name"` // the array: "system" or "data"
	SizeBytes int64   `json:"size_bytes"`
	UsedBytes int64   `json:"used_bytes"`
	FreeBytes int64   `json:"free_bytes"` // what new files may still take
	Percent   float64 `json:"percent"`    // used / (used + free), as df
	// Parts are the volumes on it (database, WAL archive, backups, documents), measured every 10 minutes.
	Parts []SpacePart `json:"parts,omitempty"`
	// History is the use once a day, the last 30 days, oldest first.
	History []SpacePoint `json:"history"`
}

// SpacePart is one volume on a filesystem.
type SpacePart struct {
	Name      string `json:"name"`
	UsedBytes int64  `json:"used_bytes"`
}

// SpacePoint is a filesystem's use on a day.
type SpacePoint struct {
	Day       time.Time `json:"day"`
	UsedBytes int64     `json:"used_bytes"`
}

// A filesystem fuller than these percentages raises a warning, then a critical alert.
const (
	SpaceWarning  = 85
	SpaceCritical = 95
)

// StoragePolicy is what an admin decides about new and failing disks.
type StoragePolicy struct {
	AutoAdd          bool `json:"auto_add"`          // a new blank disk is used without asking
	ProactiveReplace bool `json:"proactive_replace"` // a disk SMART says to replace is copied onto a spare first
	KeepSpare        bool `json:"keep_spare"`        // a new disk waits as a hot spare rather than grow the arrays
}

// StoragePolicyChange sets the fields that are not nil.
type StoragePolicyChange struct {
	AutoAdd          *bool `json:"auto_add"`
	ProactiveReplace *bool `json:"proactive_replace"`
	KeepSpare        *bool `json:"keep_spare"`
	// Bays names slots (hardware path -> the name printed on the box's bay); an empty name forgets one.
	Bays map[string]string `json:"bays,omitempty"`
}

// Where names a disk's place in the box: the bay's name an admin gave its slot, or the slot.
func (d StorageDisk) Where() string {
	if d.Bay != "" {
		return d.Bay
	}
	return d.Slot
}

// CheckBay says what is wrong with a bay's name: at most 40 printable characters.
func CheckBay(name string) error {
	if len(name) > 40 {
		return fmt.Errorf("bay name %q: at most 40 characters: %w", name, ErrBadInput)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("bay name %q: only printable characters: %w", name, ErrBadInput)
		}
	}
	return nil
}

// Array is one md array.
type Array struct {
	Name      string `json:"name"`  // "system" or "data"
	Level     string `json:"level"` // "raid1", "raid5"
	State     string `json:"state"` // ArrayClean, ...
	SizeBytes int64  `json:"size_bytes"`
	// Consistency is how a RAID 5 survives a power cut: "bitmap" (complete) or "ppl" (degraded: its
	// partial parity log closes the write hole); "" for RAID 1.
	Consistency     string   `json:"consistency,omitempty"`
	RebuildProgress *float64 `json:"rebuild_progress"` // 0..1 while rebuilding, resyncing or checking
	ETASeconds      *int64   `json:"eta_s,omitempty"`
	MismatchSectors int64    `json:"mismatch_sectors"` // found by the last scrub
	Members         []Member `json:"members"`
}

// Member is a disk's place in an array.
type Member struct {
	Serial string `json:"serial"`
	Device string `json:"device,omitempty"`
	State  string `json:"state"` // MemberInSync, ...
}

// StorageDisk is a disk as the storage sees it.
type StorageDisk struct {
	Serial    string `json:"serial"`
	Model     string `json:"model"`
	SizeBytes int64  `json:"size_bytes"`
	Slot      string `json:"slot"`          // hardware path
	Bay       string `json:"bay,omitempty"` // the name an admin gave that slot ("Bay 2, left"), if any
	Device    string `json:"device"`        // kernel name
	Role      string `json:"role"`          // "member", "spare", "unused"
	State     string `json:"state"`         // "ok", "faulty", "rebuilding", "blank", "needs_adopt", "refused"
	Reason    string `json:"reason,omitempty"`
	// Locate is the light that shows where the disk sits: "" when the hardware has none for it, "off", "on".
	Locate string `json:"locate,omitempty"`
	// BootPartition is a member's EFI system partition ("/dev/vda1"): the boot loader and firmware slots.
	BootPartition string `json:"boot_partition,omitempty"`
}

// KeyHolder keeps a secret for this unit's disks elsewhere (the partner unit, the witness): the key that
// opens the encrypted data array at boot is wrapped with it.
type KeyHolder struct {
	Name  string // "partner", "witness"
	Share func(ctx context.Context) ([]byte, error)
}

// Storage is the RAID storage.
type Storage interface {
	Storage(ctx context.Context) (StorageStatus, error)
	// Scrub starts a check of every array now.
	Scrub(ctx context.Context) error
	// Adopt confirms that a disk holding data may be erased and used.
	Adopt(ctx context.Context, serial string) error
	// SetPolicy changes the fields of p that are set.
	SetPolicy(ctx context.Context, p StoragePolicyChange) error
	// Grow grows the arrays onto their spare disks now; anyway overrides the refusal for an old backup.
	Grow(ctx context.Context, anyway bool) error
	// Unlock opens the locked data array with the recovery key typed from the recovery sheet.
	Unlock(ctx context.Context, recoveryKey string) error
	// NewRecoveryKey makes a new recovery key for the encrypted data array and answers it, once.
	NewRecoveryKey(ctx context.Context) (string, error)
	// Locate turns the light that shows where a disk sits on or off (ErrConflict where it has none).
	Locate(ctx context.Context, serial string, on bool) error
}

// Finding is one thing SMART says about a disk. Key is stable across polls; Value is what it was judged on,
// so an acknowledgement holds until the value changes.
type Finding struct {
	Key          string `json:"key"`
	Level        string `json:"level"` // "watch", "replace", "failed", or "cable" (the link, not the disk)
	Message      string `json:"message"`
	Value        uint64 `json:"value"`
	Acknowledged bool   `json:"acknowledged"`
}

// SMARTStatus is a disk's health as last polled.
type SMARTStatus struct {
	Supported    bool                 `json:"supported"`
	Reason       string               `json:"reason,omitempty"` // why it is unsupported, or the last poll's error
	Health       string               `json:"health"`           // "ok", "watch", "replace", "failed"; "" if unsupported
	TemperatureC int                  `json:"temperature_c"`
	HotC         int                  `json:"hot_c,omitempty"` // above it the disk runs hot (a finding)
	PowerOnHours uint64               `json:"power_on_hours"`
	Attributes   []smart.Attribute    `json:"attributes"`
	NVMe         *smart.NVMeHealth    `json:"nvme,omitempty"`
	Findings     []Finding            `json:"findings"`
	LastPoll     time.Time            `json:"last_poll,omitzero"`
	PollMS       float64              `json:"poll_ms"`     // wall time of the last poll
	PollCPUMS    float64              `json:"poll_cpu_ms"` // CPU time of the daemon during it
	SelfTest     smart.SelfTestResult `json:"self_test"`
}

// DiskHealth is a disk and its SMART status (GET /api/v1/disks).
type DiskHealth struct {
	Serial    string      `json:"serial"`
	Model     string      `json:"model"`
	SizeBytes int64       `json:"size_bytes"`
	Device    string      `json:"device"`
	SMART     SMARTStatus `json:"smart"`
}

// HistoryPoint is one sample of a disk's history.
type HistoryPoint struct {
	Time         time.Time         `json:"t"`
	TemperatureC int               `json:"temp_c"`
	Counters     map[string]uint64 `json:"counters,omitempty"` // "ata-5", "nvme-media", ...
}

// Health is SMART monitoring.
type Health interface {
	Disks(ctx context.Context) ([]DiskHealth, error)
	Refresh(ctx context.Context, serial string) error
	SelfTest(ctx context.Context, serial, kind string) error
	Acknowledge(ctx context.Context, serial, key string) error
	History(ctx context.Context, serial string) ([]HistoryPoint, error)
	// SetPollMinutes sets how often disks are polled (1..1440).
	SetPollMinutes(ctx context.Context, minutes int) error
}
