// Package drbd drives a DRBD 8.4 resource (the kernel's module) with drbdsetup and drbdmeta, and reads
// its state from /proc/drbd. One resource, one volume, internal metadata. Like hw/raid it runs argv only
// and decides nothing: when to be primary, whom to connect to and what to do after a split is the
// caller's (appliance/replica).
package drbd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/lawbox/appliance/hw/raid"
)

// DRBD runs the tools for one resource.
type DRBD struct {
	Setup    string      // "drbdsetup" (the 8.4 one) when empty
	Meta     string      // "drbdmeta" when empty
	Run      raid.Runner // raid.Exec when nil
	Resource string      // "documents"
	Minor    int         // /dev/drbd<Minor>
	Proc     string      // "/proc/drbd" when empty
	// Fencing: when the primary loses its peer, its writes wait while the fence-peer helper (SetHelper)
	// makes sure the peer's copy can no longer be taken for the newest (DRBD's resource-and-stonith).
	Fencing bool
}

func (d *DRBD) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	run := d.Run
	if run == nil {
		run = raid.Exec
	}
	return run(ctx, append([]string{tool}, args...)...)
}

func (d *DRBD) setup(ctx context.Context, args ...string) ([]byte, error) {
	tool := d.Setup
	if tool == "" {
		tool = "drbdsetup"
	}
	return d.run(ctx, tool, args...)
}

func (d *DRBD) meta(ctx context.Context, args ...string) ([]byte, error) {
	tool := d.Meta
	if tool == "" {
		tool = "drbdmeta"
	}
	return d.run(ctx, tool, append([]string{"--force", strconv.Itoa(d.Minor), "v08"}, args...)...)
}

// Device is the replicated block device.
func (d *DRBD) Device() string { return "/dev/drbd" + strconv.Itoa(d.Minor) }

func (d *DRBD) minor() string { return strconv.Itoa(d.Minor) }

// HasMetadata reports whether lower carries DRBD metadata (at its end, internal).
func (d *DRBD) HasMetadata(ctx context.Context, lower string) bool {
	_, err := d.meta(ctx, lower, "internal", "get-gi")
	return err == nil
}

// CreateMetadata writes new metadata at the end of lower: the volume's data counts as inconsistent until
// it is made primary with force (a first copy) or synchronised from a peer.
func (d *DRBD) CreateMetadata(ctx context.Context, lower string) error {
	if _, err := d.meta(ctx, lower, "internal", "create-md"); err != nil {
		return fmt.Errorf("create drbd metadata on %s: %w", lower, err)
	}
	return nil
}

// ResyncRate caps a resynchronisation (bytes/s, K unless suffixed): a third of a gigabit link, so that on a
// LAN shared with the office (no direct cable between the units) the heartbeats, the witness and the
// clients keep their room; 1 TB takes 7 hours.
const ResyncRate = "40M"

// Up makes the resource and attaches lower (a no-op for what exists already). Writes are flushed to the
// disk below before DRBD acknowledges them (its defaults), and an I/O error there detaches the disk so
// the peer's copy serves.
func (d *DRBD) Up(ctx context.Context, lower string) error {
	st, err := d.State()
	if err == nil && st.Configured {
		if st.Disk != "Diskless" {
			return nil
		}
	} else {
		if _, err := d.setup(ctx, "new-resource", d.Resource, "--on-no-data-accessible", "suspend-io"); err != nil {
			return fmt.Errorf("drbd resource %s: %w", d.Resource, err)
		}
		if _, err := d.setup(ctx, "new-minor", d.Resource, d.minor(), "0"); err != nil {
			return fmt.Errorf("drbd minor %d: %w", d.Minor, err)
		}
	}
	// After a power cut the activity log holds the areas that were being written: drbdmeta replays it into
	// the bitmap before the disk is attached (what drbdadm does; a no-op on clean metadata).
	if _, err := d.meta(ctx, lower, "internal", "apply-al"); err != nil {
		return fmt.Errorf("drbd %s: replay the activity log of %s: %w", d.Resource, lower, err)
	}
	// A fixed resynchronisation rate: DRBD 8.4's default controller starts at 250 KiB/s.
	args := []string{"attach", d.minor(), lower, lower, "internal", "--on-io-error", "detach",
		"--c-plan-ahead", "0", "--resync-rate", ResyncRate}
	if d.Fencing {
		args = append(args, "--fencing", "resource-and-stonith")
	}
	if _, err := d.setup(ctx, args...); err != nil {
		return fmt.Errorf("attach %s to drbd %d: %w", lower, d.Minor, err)
	}
	return nil
}

// HelperParam is where the DRBD module reads the program it runs for its events (fence-peer among them).
const HelperParam = "/sys/module/drbd/parameters/usermode_helper"

// SetHelper makes path the program the module runs for its events: "path EVENT minor-N", or "path
// fence-peer RESOURCE" (DRBD 8.4), the peer's address in its environment. For fence-peer its exit status is
// the answer (FenceOutdated, FencePeerDown), any other leaves the primary's writes suspended; for
// before-resync-target and before-resync-source anything but 0 drops the connection.
func SetHelper(param, path string) error {
	if err := os.WriteFile(param, []byte(path), 0o644); err != nil {
		return fmt.Errorf("drbd helper %s: %w", path, err)
	}
	return nil
}

// The fence-peer helper's answers (DRBD 8.4's exit codes): the peer's copy is Outdated now (it was told
// over another path), or the peer is unreachable and its copy is taken as outdated (DRBD records it so
// on this side only when this side's copy is UpToDate).
const (
	FenceOutdated = 4
	FencePeerDown = 5
)

// Outdate marks this side's copy outdated (in its metadata: it survives a restart), so that it is never
// made primary before it has been synchronised from the peer. Only on a secondary that is not connected.
func (d *DRBD) Outdate(ctx context.Context) error {
	if _, err := d.setup(ctx, "outdate", d.minor()); err != nil {
		return fmt.Errorf("drbd %s outdate: %w", d.Resource, err)
	}
	return nil
}

// Resize makes the device as large as the smaller of the two units' lower devices (run on the primary,
// connected: DRBD asks the peer's size), after both grew; the new area is not synchronised (clean):
// neither unit holds data there yet, and the filesystem grown into it writes all it reads there through
// DRBD. Without a peer (connected false: an unpaired unit) it takes the whole lower device: DRBD would
// otherwise keep the size last agreed with a peer, and it takes --assume-clean only from a connected one.
func (d *DRBD) Resize(ctx context.Context, connected bool) error {
	args := []string{"resize", d.minor(), "--assume-peer-has-space"}
	if connected {
		args = []string{"resize", d.minor(), "--assume-clean"}
	}
	if _, err := d.setup(ctx, args...); err != nil {
		return fmt.Errorf("resize drbd %s: %w", d.Resource, err)
	}
	return nil
}

// Peer is whom to replicate with.
type Peer struct {
	Local, Remote string // "198.51.100.10:7789"
	Secret        string // the shared secret both ends prove with HMAC-SHA256 at connect time
}

// Connect starts connecting to the peer (DRBD retries on its own until the peer answers): protocol C (a
// write is acknowledged when it is on both units' disks). After a split brain it never discards data by
// itself: the connection stops and the caller decides.
func (d *DRBD) Connect(ctx context.Context, p Peer) error {
	if _, err := d.setup(ctx, connectArgs(d.Resource, p)...); err != nil {
		return fmt.Errorf("connect drbd %s to %s: %w", d.Resource, p.Remote, err)
	}
	return nil
}

// connectArgs is drbdsetup's connect command line, with extra options before the policies.
func connectArgs(res string, p Peer, extra ...string) []string {
	args := append([]string{"connect", res, "ipv4:" + p.Local, "ipv4:" + p.Remote, "--protocol", "C",
		"--cram-hmac-alg", "sha256", "--shared-secret", p.Secret}, extra...)
	return append(args, "--after-sb-0pri", "disconnect", "--after-sb-1pri", "disconnect", "--after-sb-2pri", "disconnect",
		"--rr-conflict", "disconnect", "--ping-timeout", "10", "--connect-int", "3")
}

// Disconnect stops replicating with the peer.
func (d *DRBD) Disconnect(ctx context.Context, p Peer) error {
	if _, err := d.setup(ctx, "disconnect", "ipv4:"+p.Local, "ipv4:"+p.Remote); err != nil {
		return fmt.Errorf("disconnect drbd %s: %w", d.Resource, err)
	}
	return nil
}

// Primary makes this side writable. force makes an inconsistent copy the good one: only for a volume
// this unit has just created and never shared.
func (d *DRBD) Primary(ctx context.Context, force bool) error {
	args := []string{"primary", d.minor()}
	if force {
		args = append(args, "--force")
	}
	if _, err := d.setup(ctx, args...); err != nil {
		return fmt.Errorf("drbd %s primary: %w", d.Resource, err)
	}
	return nil
}

// Secondary makes this side read-only (the peer may then become primary).
func (d *DRBD) Secondary(ctx context.Context) error {
	if _, err := d.setup(ctx, "secondary", d.minor()); err != nil {
		return fmt.Errorf("drbd %s secondary: %w", d.Resource, err)
	}
	return nil
}

// DiscardMine reconnects as the side whose changes since the split are dropped: it becomes the target of
// a resynchronisation from the peer. Only for the older side, decided by the caller.
func (d *DRBD) DiscardMine(ctx context.Context, p Peer) error {
	_ = d.Disconnect(ctx, p)
	if _, err := d.setup(ctx, connectArgs(d.Resource, p, "--discard-my-data")...); err != nil {
		return fmt.Errorf("reconnect drbd %s discarding this side: %w", d.Resource, err)
	}
	return nil
}

// Down stops the resource (the device must be closed).
func (d *DRBD) Down(ctx context.Context) error {
	if _, err := d.setup(ctx, "down", d.Resource); err != nil {
		return fmt.Errorf("drbd %s down: %w", d.Resource, err)
	}
	return nil
}

// State is one minor's line of /proc/drbd.
type State struct {
	Configured bool     // the minor exists
	Connection string   // "StandAlone", "WFConnection", "Connected", "SyncSource", "SyncTarget", ...
	Role       string   // "Primary", "Secondary"
	PeerRole   string   // "Unknown" while not connected
	Disk       string   // "UpToDate", "Inconsistent", "Outdated", "Diskless", ...
	PeerDisk   string   // "DUnknown" while not connected
	OutOfSync  int64    // bytes known to differ from the peer
	Synced     *float64 // percent, during a resynchronisation
}

// State reads /proc/drbd.
func (d *DRBD) State() (State, error) {
	proc := d.Proc
	if proc == "" {
		proc = "/proc/drbd"
	}
	b, err := os.ReadFile(proc)
	if errors.Is(err, os.ErrNotExist) {
		return State{}, fmt.Errorf("drbd state: the drbd module is not loaded: %w", err)
	}
	if err != nil {
		return State{}, fmt.Errorf("drbd state: %w", err)
	}
	return parseProc(b, d.Minor)
}

// parseProc reads minor's entry of /proc/drbd (DRBD 8.4):
//
//	0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----
//	   ns:1024 nr:0 dw:1024 dr:2048 al:1 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:51200
//	   [==>.................] sync'ed: 16.7% (51200/61440)K
func parseProc(b []byte, minor int) (State, error) {
	var st State
	prefix := strconv.Itoa(minor) + ":"
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if strings.HasSuffix(f[0], ":") {
			if _, err := strconv.Atoi(strings.TrimSuffix(f[0], ":")); err == nil {
				in = f[0] == prefix
				if in {
					st.Configured = true
					if len(f) > 1 && f[1] == "cs:Unconfigured" {
						return State{}, nil
					}
				}
			}
		}
		if !in {
			continue
		}
		for _, kv := range f {
			k, v, ok := strings.Cut(kv, ":")
			if !ok {
				continue
			}
			switch k {
			case "cs":
				st.Connection = v
			case "ro":
				st.Role, st.PeerRole, _ = strings.Cut(v, "/")
			case "ds":
				st.Disk, st.PeerDisk, _ = strings.Cut(v, "/")
			case "oos":
				kib, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return State{}, fmt.Errorf("drbd state: oos %q", v)
				}
				st.OutOfSync = kib << 10
			}
		}
		if i := strings.Index(line, "sync'ed:"); i >= 0 {
			rest := strings.Fields(line[i+len("sync'ed:"):])
			if len(rest) > 0 {
				if p, err := strconv.ParseFloat(strings.TrimSuffix(rest[0], "%"), 64); err == nil {
					st.Synced = &p
				}
			}
		}
	}
	if st.Configured && (st.Connection == "" || st.Role == "" || st.Disk == "") {
		return State{}, fmt.Errorf("drbd state: minor %d: line not understood", minor)
	}
	return st, nil
}
