package appliance

import (
	"context"
	"io"
	"time"
)

// FirmwareStatus is the running firmware, the slots on the boot partitions and the last update.
type FirmwareStatus struct {
	Version string         `json:"version"`
	Build   int            `json:"build"`
	Trial   bool           `json:"trial"` // this boot tries a new slot: kept only once the unit is healthy
	Slots   []FirmwareSlot `json:"slots"`
	Update  *FirmwareRun   `json:"update,omitempty"`
	// Progress is the bytes of a bundle received while an upload runs.
	Progress *Progress `json:"progress,omitempty"`
	// Rollout is the last rolling update of the pair this unit ran (a bundle uploaded to it while paired).
	Rollout *FirmwareRollout `json:"rollout,omitempty"`
}

// FirmwareRollout is a rolling update of a pair, run by the unit the bundle was uploaded to: the standby
// updates first and must come back blessed and mirroring, then a switchover makes it active, then the
// other unit updates. Never both at once; a step that fails stops the rollout, the rest untouched.
type FirmwareRollout struct {
	Version  string        `json:"version"`
	Build    int           `json:"build"`
	By       string        `json:"by"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished,omitzero"`
	State    string        `json:"state"`            // RolloutRunning, RolloutDone or RolloutStopped
	Reason   string        `json:"reason,omitempty"` // what it waits for, or why it stopped
	Steps    []RolloutStep `json:"steps"`
	// AllowDowngrade: the admin allowed an older build (audited with the upload).
	AllowDowngrade bool `json:"allow_downgrade,omitempty"`
}

// RolloutStep is one step of a rolling update: a unit updates, or a switchover makes a unit active.
type RolloutStep struct {
	Action   string    `json:"action"` // "update" or "switchover"
	Unit     string    `json:"unit"`   // the unit that updates, or the one made active
	State    string    `json:"state"`  // "waiting", "running", "done" or "failed"
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

// Rolling update states.
const (
	RolloutRunning = "running"
	RolloutDone    = "done"
	RolloutStopped = "stopped"
)

// Progress is how far a transfer is.
type Progress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"` // 0: unknown
}

// FirmwareSlot is one firmware version on the boot partitions.
type FirmwareSlot struct {
	Version string `json:"version"`
	// State: "running", "previous" (blessed, what a rollback boots), "trying" (tries left) or "failed".
	State      string   `json:"state"`
	TriesLeft  int      `json:"tries_left,omitempty"`
	Partitions []string `json:"partitions"` // the boot partitions that hold it
}

// FirmwareRun is an update (or a rollback) and how it ended.
type FirmwareRun struct {
	Version  string    `json:"version"` // what the unit was to run
	Build    int       `json:"build"`
	From     string    `json:"from"` // what it ran before
	By       string    `json:"by"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// State: FirmwareWriting, FirmwareRestarting, FirmwareTrying, FirmwareBlessed, FirmwareRolledBack,
	// FirmwareInterrupted, FirmwareFailed or FirmwareManualRollback.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"` // why it did not take, or why it is not healthy yet
}

// Firmware update states.
const (
	FirmwareWriting        = "writing"
	FirmwareRestarting     = "restarting"
	FirmwareTrying         = "trying"
	FirmwareBlessed        = "blessed"
	FirmwareRolledBack     = "rolled back"
	FirmwareInterrupted    = "interrupted"
	FirmwareFailed         = "failed"
	FirmwareManualRollback = "rolled back by hand"
	// FirmwareRolling answers an upload to a unit of a pair: the rolling update started (FirmwareRollout).
	FirmwareRolling = "rolling update"
)

// Firmware is the unit's firmware: its slots, updates and rollback.
type Firmware interface {
	Firmware(ctx context.Context) (FirmwareStatus, error)
	// Update reads a signed bundle from r (size bytes, 0 if unknown), writes it as a new slot beside the
	// running one and restarts into it; on a unit of a pair, it starts a rolling update of both units. A bad bundle is ErrBadInput, a downgrade not asked for or a second
	// update ErrConflict: the running slot is untouched.
	Update(ctx context.Context, r io.Reader, size int64, allowDowngrade bool, user string) (FirmwareRun, error)
	// Rollback restarts into the previous slot and marks the running one failed.
	Rollback(ctx context.Context, user string) error
}
