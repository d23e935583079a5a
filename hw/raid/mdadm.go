// Package raid drives Linux md RAID: mdadm for what changes superblocks (create, assemble, add, fail,
// remove), and md's sysfs tree for what the kernel reports and for starting checks. Like Talos'
// internal/pkg/md it only runs commands with argv, never a shell, and decides nothing: the policy lives in
// appliance/storage.
package raid

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// Runner runs argv and returns its combined output. Tests swap it for a recording fake.
type Runner func(ctx context.Context, argv ...string) ([]byte, error)

// Exec is the real Runner.
func Exec(ctx context.Context, argv ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// MDADM runs mdadm.
type MDADM struct {
	Path string // "mdadm" when empty
	Run  Runner // Exec when nil
}

func (m *MDADM) run(ctx context.Context, args ...string) ([]byte, error) {
	path, run := m.Path, m.Run
	if path == "" {
		path = "mdadm"
	}
	if run == nil {
		run = Exec
	}
	return run(ctx, append([]string{path}, args...)...)
}

// Missing stands for an absent member in Create: the array starts degraded.
const Missing = "missing"

// CreateOptions describe a new array.
type CreateOptions struct {
	Level    int      // 1 or 5
	Name     string   // array name stored in the superblock, e.g. "data"
	Homehost string   // stored with the name ("homehost:name"); identifies arrays this firmware made
	Devices  []string // member devices in slot order; Missing leaves a slot empty
	// Consistency is Bitmap (when empty) or PPL, a RAID 5's partial parity log.
	Consistency string
	// DataOffset is where the data starts on each member ("8M"); empty: mdadm's choice, which leaves small
	// members no room for a partial parity log.
	DataOffset string
	// AssumeClean skips the initial sync: only for scratch arrays whose content does not matter (benches).
	AssumeClean bool
}

// Create makes an array with metadata 1.2 and an internal write-intent bitmap and starts it. It never
// passes --force: for RAID 5 that would turn the initial parity build into a full resync.
func (m *MDADM) Create(ctx context.Context, md string, o CreateOptions) error {
	if o.Level != 1 && o.Level != 5 {
		return fmt.Errorf("create %s: level %d is not supported", md, o.Level)
	}
	args := []string{"--create", md, "--run", "--metadata=1.2", "--level=" + strconv.Itoa(o.Level),
		"--raid-devices=" + strconv.Itoa(len(o.Devices))}
	switch o.Consistency {
	case "", Bitmap:
		args = append(args, "--bitmap=internal")
	case PPL:
		args = append(args, "--consistency-policy=ppl")
	default:
		return fmt.Errorf("create %s: consistency policy %q", md, o.Consistency)
	}
	args = append(args, "--name="+o.Name)
	if o.DataOffset != "" {
		args = append(args, "--data-offset="+o.DataOffset)
	}
	if o.AssumeClean {
		args = append(args, "--assume-clean")
	}
	if o.Homehost != "" {
		args = append(args, "--homehost="+o.Homehost)
	}
	if _, err := m.run(ctx, append(args, o.Devices...)...); err != nil {
		return fmt.Errorf("create %s: %w", md, err)
	}
	return nil
}

// Assemble starts the array uuid from the given members, degraded if some are missing (--run).
func (m *MDADM) Assemble(ctx context.Context, md, uuid string, members []string) error {
	args := append([]string{"--assemble", md, "--run", "--uuid=" + uuid}, members...)
	if out, err := m.run(ctx, args...); err != nil {
		if bytes.Contains(out, []byte("while not clean")) {
			err = fmt.Errorf("%w: %w", ErrNotClean, err)
		}
		return fmt.Errorf("assemble %s: %w", md, err)
	}
	return nil
}

// ErrNotClean is Assemble's refusal of an array that is degraded and was not stopped cleanly (a power cut
// during writes or a rebuild): mdadm says "not enough to start the array while not clean". Starting it
// anyway risks what was being written (RAID 5's write hole).
var ErrNotClean = errors.New("degraded and not stopped cleanly")

// Stop stops an array.
func (m *MDADM) Stop(ctx context.Context, md string) error {
	if _, err := m.run(ctx, "--stop", md); err != nil {
		return fmt.Errorf("stop %s: %w", md, err)
	}
	return nil
}

// Add adds a member (a spare, or the target of a rebuild).
func (m *MDADM) Add(ctx context.Context, md, dev string) error {
	if _, err := m.run(ctx, md, "--add", dev); err != nil {
		return fmt.Errorf("add %s to %s: %w", dev, md, err)
	}
	return nil
}

// ReAdd puts back a member that left the array recently; with the bitmap only what changed is copied.
func (m *MDADM) ReAdd(ctx context.Context, md, dev string) error {
	if _, err := m.run(ctx, md, "--re-add", dev); err != nil {
		return fmt.Errorf("re-add %s to %s: %w", dev, md, err)
	}
	return nil
}

// Grow changes a running array's shape: its level (level > 0: a RAID 1 of two members becomes a RAID 5
// of two, the same bytes) or its number of active members (devices > 0: spares become members). md then
// reshapes (RAID 5) or rebuilds onto the new members (RAID 1) in the background, and records how far it is
// in the superblocks, so a reshape cut by a power loss resumes when the array is next assembled. No
// --backup-file: mdadm moves the data offset instead, which needs nothing outside the array.
func (m *MDADM) Grow(ctx context.Context, md string, level, devices int) error {
	args := []string{"--grow", md}
	if level > 0 {
		args = append(args, "--level="+strconv.Itoa(level))
	}
	if devices > 0 {
		args = append(args, "--raid-devices="+strconv.Itoa(devices))
	}
	if len(args) == 2 {
		return fmt.Errorf("grow %s: neither a level nor a number of members", md)
	}
	if _, err := m.run(ctx, args...); err != nil {
		return fmt.Errorf("grow %s: %w", md, err)
	}
	return nil
}

// Consistency policies of a RAID 5 (md's consistency_policy): how it stays consistent across a power cut.
const (
	Bitmap = "bitmap" // a write-intent bitmap: a resync of what was being written, a re-added member gets only what changed
	PPL    = "ppl"    // a partial parity log: the stripes being written are made consistent again, degraded too; no bitmap
)

// SetConsistency moves a running RAID 5 from its consistency policy (from: Array.Consistency) to policy.
// md allows one at a time, so the bitmap is removed before the log is turned on (and the log turned off
// before the bitmap is added): between the two calls the array has neither, for the time of one mdadm call.
func (m *MDADM) SetConsistency(ctx context.Context, md, from, policy string) error {
	var steps [][]string
	switch {
	case policy != PPL && policy != Bitmap:
		return fmt.Errorf("consistency policy of %s: %q is neither %s nor %s", md, policy, Bitmap, PPL)
	case from == policy:
		return nil
	case policy == PPL && from == Bitmap:
		steps = [][]string{{"--bitmap=none"}, {"--consistency-policy=ppl"}}
	case policy == PPL:
		steps = [][]string{{"--consistency-policy=ppl"}}
	case from == PPL:
		steps = [][]string{{"--consistency-policy=resync"}, {"--bitmap=internal"}}
	default:
		steps = [][]string{{"--bitmap=internal"}}
	}
	for i, s := range steps {
		if _, err := m.run(ctx, append([]string{"--grow", md}, s...)...); err != nil {
			if i == 1 && policy == PPL { // no room for the log: the bitmap back, rather than neither
				if _, err2 := m.run(ctx, "--grow", md, "--bitmap=internal"); err2 != nil {
					err = errors.Join(err, err2)
				}
			}
			return fmt.Errorf("consistency policy %s of %s: %w", policy, md, err)
		}
	}
	return nil
}

// Superblock is what a member's md superblock says (mdadm --examine --export).
type Superblock struct {
	Level   string // "raid1", "raid5"
	Devices int    // raid disks
	Name    string // "homehost:name"
	UUID    string // array UUID, mdadm's colon form
	DevUUID string // this member's UUID
	Events  uint64
}

// ErrNoSuperblock means a device holds no md superblock.
var ErrNoSuperblock = errors.New("no md superblock")

// Examine reads dev's md superblock.
func (m *MDADM) Examine(ctx context.Context, dev string) (Superblock, error) {
	out, err := m.run(ctx, "--examine", "--export", dev)
	if err != nil {
		if bytes.Contains(out, []byte("No md superblock")) {
			return Superblock{}, fmt.Errorf("examine %s: %w", dev, ErrNoSuperblock)
		}
		return Superblock{}, fmt.Errorf("examine %s: %w", dev, err)
	}
	sb, err := ParseExamine(out)
	if err != nil {
		return Superblock{}, fmt.Errorf("examine %s: %w", dev, err)
	}
	return sb, nil
}

// ParseExamine parses the KEY=VALUE lines of mdadm --examine --export.
func ParseExamine(out []byte) (Superblock, error) {
	var sb Superblock
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch k {
		case "MD_LEVEL":
			sb.Level = v
		case "MD_DEVICES":
			sb.Devices, _ = strconv.Atoi(v)
		case "MD_NAME":
			sb.Name = v
		case "MD_UUID":
			sb.UUID = v
		case "MD_DEV_UUID":
			sb.DevUUID = v
		case "MD_EVENTS":
			sb.Events, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	if sb.UUID == "" || sb.Level == "" {
		return sb, fmt.Errorf("%w: no MD_UUID or MD_LEVEL in %q", ErrNoSuperblock, out)
	}
	return sb, nil
}
