// Package replica keeps the documents volume: a DRBD resource on the data array's "documents" volume
// (docs/storage.md), replicated to the partner unit in protocol C (a write the SMB client is told is done
// is on both units' disks), primary and mounted only on the unit that leads (alone, or the pair's active
// unit), secondary on the standby.
//
// After a split (the units lost each other and one took over), the standby is the side whose changes are
// dropped, as the database's pg_rewind does on the old production: the active unit holds the pair's
// lease, which only the newer epoch does; the active side is never resynchronised from the standby. Two
// copies that both hold files and share no history (two units that each served documents alone before
// they were paired) are never merged or dropped by the unit: it says so and waits for the admin.
package replica

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
	"github.com/lawbox/appliance/hw/drbd"
	"github.com/lawbox/appliance/hw/fs"
)

// Port is DRBD's TCP port between the units.
const Port = 7789

const configKey = "documents-replica"

// config is what the replica keeps in the state store.
type config struct {
	Made bool   `json:"made"`           // the volume got its first filesystem here (a later inconsistent copy is not forced)
	Used bool   `json:"used"`           // a share folder held a file while this unit served them
	Pair string `json:"pair,omitempty"` // the pair whose copy this volume is (it was connected to the partner)
}

// Replica runs the documents volume.
type Replica struct {
	Log    *slog.Logger
	Store  *state.Store
	DRBD   *drbd.DRBD
	Dir    string                              // "/data/documents": where the volume is mounted while this unit leads
	Device func() string                       // the documents volume ("" while there is none)
	Roles  *appliance.Feed[appliance.PairRole] // the pair's role: the volume leads alone or as the active unit
	// PartnerLeads: the partner is heard and is the pair's active unit (only then is a standby's copy that
	// the partner never had replaced by the partner's).
	PartnerLeads func() bool
	Peers        func() []string // the partner's addresses, the preferred path first (none when unpaired)
	Secret       func() []byte   // the pair's key for the replication (nil when unpaired)
	// Link carries the replication inside the pair's encrypted link (netcfg/tunnel); nil: on the LAN.
	Link Link
	// Snapshot makes a snapshot of the documents volume (DRBD's lower device) and answers its device and
	// how to drop it: what a documents backup reads on a unit that does not serve the shares.
	Snapshot func(ctx context.Context) (string, func(context.Context) error, error)
	// Extend makes the documents volume (DRBD's lower device) that many bytes and answers its size (0:
	// just its size); Call sends a request to the partner over the pair link. Both are for Grow.
	Extend func(ctx context.Context, size int64) (int64, error)
	Call   func(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Response, error)
	Every  time.Duration // between passes; 2 s when zero
	// Fencing (fence.go): Helper is the program DRBD runs for its events, this firmware ("": no fencing);
	// Alone reports that this unit may write without its partner (pair.Node.Alone); Quiet, that nothing
	// serving the volume can answer a client any more (the file server was killed).
	Helper string
	Alone  func() bool
	Quiet  func() bool

	growMu       sync.Mutex      // one Grow at a time
	outdates     chan chan error // the partner's requests to mark this copy outdated, carried out by Run
	outdatesOnce sync.Once

	mu         sync.Mutex
	cfg        config
	loaded     bool
	status     appliance.Replication
	tries      int       // reconnections that dropped this side's changes, since the last connection
	connecting bool      // a connection was asked for since the volume started
	unfit      bool      // the last pass found this copy may not serve as the pair's
	behind     bool      // this copy was not connected while the partner served: it may lack documents (judge)
	path       int       // which of the partner's addresses the replication uses
	current    drbd.Peer // the connection asked for
	alone      time.Time // since when the partner has not been connected (zero while it is)
	sizeAsked  time.Time // when the partner was last asked to make its volume as large as this unit's
	sizeFailed bool      // and could not
}

// Link is the pair's encrypted link as the replication uses it.
type Link interface {
	// Via makes the link reach the partner at addr (the path in use) and answers the inner addresses DRBD
	// connects between; inside false: the replication goes on the LAN (the partner does not run the link).
	Via(addr string) (local, remote string, inside bool, err error)
	Close() error
}

// Run keeps the volume in the role the unit has until ctx ends, then stops it.
func (r *Replica) Run(ctx context.Context) error {
	every := r.Every
	if every == 0 {
		every = 2 * time.Second
	}
	for _, d := range []string{"/run/drbd", "/var/lib/drbd"} { // drbdmeta's lock and the tools' state
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("documents volume: %w", err)
		}
	}
	if r.Helper != "" {
		if err := drbd.SetHelper(drbd.HelperParam, r.Helper); err != nil {
			r.Log.Error("documents fencing is off: the volume is replicated without it", "err", err)
		} else {
			r.DRBD.Fencing = true
			go func() { // a helper not answered keeps the writes held: the socket is made again if it fails
				for ctx.Err() == nil {
					if err := r.serveFence(ctx, FenceSocket); err != nil {
						r.Log.Error("documents fencing; listening again", "err", err)
						time.Sleep(time.Second)
					}
				}
			}()
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		_, roleChanged := r.Roles.Watch()
		r.pass(ctx)
		select {
		case <-ctx.Done():
			r.stop()
			return nil
		case <-t.C:
		case <-roleChanged: // a takeover promotes the volume at once, not at the next pass
		case done := <-r.requests():
			done <- r.outdate(ctx)
		}
	}
}

// leads reports whether this unit's volume leads: the unit serves alone or as the pair's active unit.
func (r *Replica) leads() bool { return r.Roles.Get().Serves() }

// Ready reports whether the volume is mounted writable here: what serving the shares waits for. On a
// unit whose data array has no documents volume (made before volumes existed) the folder is on /data
// itself and it is ready with the data array.
func (r *Replica) Ready() bool {
	if r.Device() == "" {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status.Mounted
}

// Status is the replication's state for the pair and storage pages.
func (r *Replica) Status() *appliance.Replication {
	if r.Device() == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	return &s
}

func (r *Replica) set(f func(s *appliance.Replication)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.status)
}

// load is what the store keeps, read once.
func (r *Replica) load() config {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.loaded && r.Store != nil {
		if err := r.Store.GetJSON(state.BucketConfig, configKey, &r.cfg); err != nil && !errors.Is(err, state.ErrNotFound) {
			r.Log.Error("read documents replica settings", "err", err)
		}
		r.loaded = true
	}
	return r.cfg
}

func (r *Replica) save(c config) {
	r.mu.Lock()
	r.cfg = c
	r.mu.Unlock()
	if r.Store == nil {
		return
	}
	if err := r.Store.PutJSON(state.BucketConfig, configKey, c); err != nil {
		r.Log.Error("save documents replica settings", "err", err)
	}
}

func (r *Replica) peer() (drbd.Peer, bool) {
	addrs := r.Peers()
	key := r.Secret()
	if len(addrs) == 0 || len(key) < 24 {
		return drbd.Peer{}, false
	}
	addr := addrs[r.path%len(addrs)]
	secret := hex.EncodeToString(key[:24])
	if r.Link != nil {
		local, remote, inside, err := r.Link.Via(addr)
		if err != nil {
			r.problem(linkProblem, err)
			return drbd.Peer{}, true
		}
		r.set(func(s *appliance.Replication) {
			s.Encrypted = inside
			if s.Problem == linkProblem {
				s.Problem = ""
			}
		})
		if inside {
			return drbd.Peer{Local: net.JoinHostPort(local, strconv.Itoa(Port)), Remote: net.JoinHostPort(remote, strconv.Itoa(Port)), Secret: secret}, true
		}
	}
	remote := net.JoinHostPort(addr, strconv.Itoa(Port))
	// The route to the partner names the local address DRBD binds (no packet is sent).
	c, err := net.Dial("udp", remote)
	if err != nil {
		return drbd.Peer{}, false
	}
	local := c.LocalAddr().(*net.UDPAddr).IP.String()
	_ = c.Close()
	return drbd.Peer{Local: net.JoinHostPort(local, strconv.Itoa(Port)), Remote: remote, Secret: secret}, true
}

// linkProblem is what the unit says when the pair link cannot be made (the kernel refused the interface).
const linkProblem = "The encrypted link to the other unit could not be set up: the documents are not replicated until it is."

// pairID names the pair (it changes when the units are paired again); "" when unpaired.
func (r *Replica) pairID() string {
	key := r.Secret()
	if len(key) < 32 {
		return ""
	}
	return hex.EncodeToString(key[24:32])
}

// Fit reports whether this unit's documents may serve as the pair's: not while they are incomplete (being
// synchronised) or outdated (the partner went on writing without this unit). A copy that was never
// connected to the partner is fit, as either unit's database is at pairing: the unit that becomes active
// first keeps its copy (lead makes it primary only once DRBD has met the partner, unless it was primary
// already) and the other's is replaced, never if it holds files. It is what the last pass found: the pair
// asks it while holding its own lock, so it asks nothing back.
func (r *Replica) Fit() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.unfit
}

// pass brings the volume one step closer to what the unit's role asks.
func (r *Replica) pass(ctx context.Context) {
	dev := r.Device()
	if dev == "" {
		return
	}
	c := r.load()
	if st, err := r.DRBD.State(); (err != nil || !st.Configured || st.Disk == "Diskless") && !r.DRBD.HasMetadata(ctx, dev) {
		if err := r.DRBD.CreateMetadata(ctx, dev); err != nil {
			r.problem("The documents volume could not be prepared for replication.", err)
			return
		}
	}
	if err := r.DRBD.Up(ctx, dev); err != nil {
		r.problem("The documents volume could not be started.", err)
		return
	}
	st, err := r.DRBD.State()
	if err != nil {
		r.problem("The documents volume's state could not be read.", err)
		return
	}
	peer, paired := r.peer()
	r.choosePath(ctx, st, paired)
	if paired && !connected(st) && st.Connection != "StandAlone" && r.current.Remote != "" && peer.Remote != "" && peer.Remote != r.current.Remote {
		// The replication moves into the pair link (the partner now runs it) or out of it (the partner
		// went back to a firmware without it): DRBD names a connection by its addresses.
		r.Log.Info("the documents' replication changes its addresses", "was", r.current.Remote, "now", peer.Remote)
		if err := r.DRBD.Disconnect(ctx, r.current); err != nil {
			r.Log.Error("leave the replication's old addresses", "err", err)
		}
		r.connecting, r.current = false, drbd.Peer{}
		st, _ = r.DRBD.State()
	}
	switch {
	case paired && peer.Remote == "": // the link is not up: the next pass tries again
	case paired && st.Connection == "StandAlone":
		r.connect(ctx, peer, c)
	case !paired && st.Connection != "StandAlone":
		r.disconnectAll(ctx)
	case connected(st):
		r.tries = 0
		if id := r.pairID(); c.Pair != id { // DRBD accepted the partner: this copy is the pair's from now on
			c.Pair = id
			r.save(c)
		}
	}
	if r.leads() {
		r.lead(ctx, st, paired, &c)
		r.matchPartnerSize(ctx, paired && !connected(st))
	} else {
		r.follow(ctx, st)
	}
	st, _ = r.DRBD.State()
	partnerLeads := r.PartnerLeads() // asked outside r.mu: the pair asks Fit while holding its own lock
	unfit, behind := judge(st, r.pairID() != "", partnerLeads, r.behind)
	r.behind = behind
	r.set(func(s *appliance.Replication) {
		switch orphan := behind && !partnerLeads; {
		case orphan && s.Problem == "":
			s.Problem = behindProblem
		case !orphan && s.Problem == behindProblem:
			s.Problem = ""
		}
	})
	r.mu.Lock() // before the status: a page that shows the copy in sync finds it fit to take over
	changed := r.unfit != unfit
	r.unfit = unfit
	r.mu.Unlock()
	r.set(func(s *appliance.Replication) {
		s.State, s.Role, s.Disk, s.PeerDisk, s.Connection = "running", st.Role, st.Disk, st.PeerDisk, st.Connection
		s.Paired, s.OutOfSync, s.Synced = paired, st.OutOfSync, st.Synced
		s.Mounted = fs.MountedAt(r.Dir) == r.DRBD.Device()
	})
	if changed {
		r.Log.Info("documents copy", "fit_to_serve", !unfit, "disk", st.Disk, "role", st.Role, "connection", st.Connection, "may_be_behind", behind)
	}
}

// behindProblem is what the unit says when its partner went away while its copy may be behind.
const behindProblem = "This unit's copy of the documents may lack some the other unit stored while the replication was down: it does not take over by itself. Bring the other unit back; forcing this unit to take over would lose those documents."

// judge decides whether this unit's copy may serve as the pair's. Not while it is incomplete (being
// synchronised) or outdated, nor while it may be behind: a secondary that was not connected while its
// partner, active, was heard may lack documents the partner stored alone meanwhile (the replication link
// broke, the heartbeats did not), and DRBD still calls such a copy UpToDate; it stays behind until it is
// connected and complete again. A partner that dies takes the replication down with its heartbeats, so a
// copy that was connected until then is not behind. An unpaired unit's copy is its own.
func judge(st drbd.State, paired, partnerLeads, behind bool) (unfit, stillBehind bool) {
	if !paired {
		return false, false
	}
	switch {
	case connected(st) && st.Disk == "UpToDate":
		behind = false
	case !connected(st) && st.Role != "Primary" && partnerLeads:
		behind = true
	}
	return st.Disk != "UpToDate" || behind, behind
}

// connected reports whether DRBD talks to the partner (in sync or synchronising).
func connected(st drbd.State) bool {
	c := st.Connection
	return c == "Connected" || strings.HasPrefix(c, "Sync") || strings.HasPrefix(c, "PausedSync") || strings.HasPrefix(c, "WFBitMap") ||
		c == "WFSyncUUID"
}

// choosePath moves the replication to the partner's next address when it has not been connected for
// switchPath (a direct cable pulled: the office LAN carries it until the cable is back).
func (r *Replica) choosePath(ctx context.Context, st drbd.State, paired bool) {
	if !paired || connected(st) || st.Connection == "StandAlone" {
		r.alone = time.Time{}
		return
	}
	if r.alone.IsZero() {
		r.alone = time.Now()
		return
	}
	wait := switchPath
	if !r.leads() {
		wait = 5 * switchPath / 2 // another period than the partner's, so that two units switching meet
	}
	if time.Since(r.alone) < wait || len(r.Peers()) < 2 || r.current.Remote == "" {
		return
	}
	r.Log.Warn("the partner is not reached on this path; trying its next address", "was", r.current.Remote)
	if err := r.DRBD.Disconnect(ctx, r.current); err != nil {
		r.Log.Error("leave the replication path", "err", err)
	}
	r.path++
	r.alone, r.connecting, r.current = time.Time{}, false, drbd.Peer{}
}

// switchPath is how long the partner may stay unreached on one path before the next is tried.
const switchPath = 20 * time.Second

// disconnectAll drops the connection to a partner the unit is no longer paired with.
func (r *Replica) disconnectAll(ctx context.Context) {
	// drbdsetup 8.4 names a connection by its addresses; "down" and "up" again forgets it whatever it was.
	if fs.MountedAt(r.Dir) != "" {
		return // a connection without a partner does no harm while the volume is in use; next time
	}
	if err := r.DRBD.Down(ctx); err != nil {
		r.Log.Error("drop the old partner's replication", "err", err)
	}
	if r.Link != nil {
		if err := r.Link.Close(); err != nil {
			r.Log.Error("remove the pair link", "err", err)
		}
	}
	r.connecting = false
}

// connect starts replicating with the partner. The active unit only ever connects. A standby that was
// refused either holds this pair's copy that diverged during a split (it reconnects dropping its changes
// since, which the epoch allows), or a copy the partner never had (made while it was alone): that one is
// made afresh and filled from the partner in full, unless it holds files, which are never dropped.
func (r *Replica) connect(ctx context.Context, peer drbd.Peer, c config) {
	refused := r.connecting // it was connecting (or connected) and is alone again: the partner refused it
	r.connecting = true
	r.current = peer
	if !refused || r.leads() {
		if err := r.DRBD.Connect(ctx, peer); err != nil {
			r.Log.Error("connect the documents replication", "err", err)
		}
		return
	}
	if c.Pair == r.pairID() {
		if r.tries < 3 {
			r.tries++
			r.Log.Warn("the partner refused this unit's documents copy after a split; reconnecting as the side whose changes since are dropped")
			if err := r.DRBD.DiscardMine(ctx, peer); err != nil {
				r.Log.Error("reconnect the documents replication", "err", err)
			}
			return
		}
		r.problem("The documents replication stopped: this unit's copy and its partner's could not be reconciled. Nothing was discarded; the active unit serves its copy.", errors.New("refused after discarding"))
		return
	}
	if !r.PartnerLeads() {
		return // both units wait (manual mode, or a switchover): the copy kept is the one made primary first
	}
	if c.Used {
		r.problem("This unit's documents and its partner's are two different sets of files (this unit served shares before it was paired). Nothing was discarded: copy this unit's files off, then pair it again.", errors.New("unrelated copies"))
		return
	}
	r.Log.Warn("this unit's documents volume never held a file: it takes the partner's copy in full")
	if err := r.DRBD.Down(ctx); err != nil {
		r.Log.Error("stop the documents volume", "err", err)
		return
	}
	if err := r.DRBD.CreateMetadata(ctx, r.Device()); err != nil {
		r.Log.Error("renew the documents volume's metadata", "err", err)
		return
	}
	r.connecting = false
	c.Made = true
	r.save(c)
}

// lead makes the volume primary and mounts it.
func (r *Replica) lead(ctx context.Context, st drbd.State, paired bool, c *config) {
	if st.Role != "Primary" {
		if id := r.pairID(); paired && c.Pair != id {
			r.problem("This unit's documents are not a copy of its partner's yet: they are served again once the partner has sent them.", errors.New("documents volume never connected to this pair"))
			return
		}
		force := !c.Made && !paired && st.Disk == "Inconsistent" // a new volume on a unit alone: its first copy
		if err := r.promote(ctx, st, force); err != nil {
			if errors.Is(err, errPartnerPrimary) { // the unit handing over has not released it yet: next pass
				r.Log.Info("waiting for the partner to release the documents volume", "err", err)
				return
			}
			r.problem("The documents volume could not be made writable on this unit: its copy is not complete (the partner holds the complete one).", err)
			return
		}
		if force {
			if err := fs.Mkfs(ctx, r.DRBD.Device(), "documents"); err != nil {
				r.problem("The documents volume's filesystem could not be made.", err)
				return
			}
			c.Made = true
			r.save(*c)
		}
	}
	if fs.MountedAt(r.Dir) == "" {
		res, out, err := fs.Check(ctx, r.DRBD.Device())
		if err != nil || res != fs.CheckOK {
			r.problem("The documents filesystem has errors the automatic check did not repair: it is not served until a technician checks it.", fmt.Errorf("%v %s", err, out))
			return
		}
		if err := fs.Mount(r.DRBD.Device(), r.Dir, false); err != nil {
			r.problem("The documents filesystem could not be mounted.", err)
			return
		}
		if err := os.Chmod(r.Dir, 0o755); err != nil {
			r.Log.Error("documents folder mode", "err", err)
		}
	}
	if !c.Used && holdsFiles(r.Dir) {
		c.Used = true
		r.save(*c)
	}
	r.set(func(s *appliance.Replication) { s.Problem = "" })
}

// errPartnerPrimary: DRBD still sees the partner primary.
var errPartnerPrimary = errors.New("the partner's copy is still primary")

// promote makes the volume primary. DRBD refuses while it still sees the partner primary: in a switchover
// the partner releases it within a pass; after the partner died, DRBD notices only at its next ping (up to
// 11 s), so once this unit is alone (the witness raised its epoch: the partner cannot be writing) the
// connection is dropped and the copy made primary at once.
func (r *Replica) promote(ctx context.Context, st drbd.State, force bool) error {
	err := r.DRBD.Primary(ctx, force)
	if err == nil || st.PeerRole != "Primary" {
		return err
	}
	if r.Alone == nil || !r.Alone() {
		return fmt.Errorf("%w: %v", errPartnerPrimary, err)
	}
	r.Log.Warn("the other unit is gone and DRBD still sees it: its connection is dropped to take over", "err", err)
	if err := r.dropConnection(ctx); err != nil {
		return err
	}
	return r.DRBD.Primary(ctx, force)
}

// follow unmounts the volume and makes it secondary; the SMB server stops first (it follows the role
// too), so a busy mount is tried again on the next pass.
func (r *Replica) follow(ctx context.Context, st drbd.State) {
	if fs.MountedAt(r.Dir) != "" {
		if err := fs.Unmount(r.Dir); err != nil {
			r.Log.Warn("documents still in use; unmounting again shortly", "err", err)
			return
		}
	}
	if st.Role == "Primary" {
		if err := r.DRBD.Secondary(ctx); err != nil {
			r.Log.Error("documents volume secondary", "err", err)
		}
	}
}

// stop unmounts and stops the volume at shutdown, so the data array below can stop.
func (r *Replica) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; fs.MountedAt(r.Dir) != ""; i++ {
		err := fs.Unmount(r.Dir)
		if err == nil {
			break
		}
		if i == 20 { // the SMB server stops at the same time; it had 10 s
			r.Log.Error("unmount documents", "err", err)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	if st, err := r.DRBD.State(); err == nil && st.Configured {
		if err := r.DRBD.Down(ctx); err != nil {
			r.Log.Error("stop documents volume", "err", err)
		}
	}
}

func (r *Replica) problem(msg string, err error) {
	r.Log.Error(msg, "err", err)
	r.set(func(s *appliance.Replication) { s.Problem = msg })
}

// holdsFiles reports whether a share folder under dir holds anything.
func holdsFiles(dir string) bool {
	shares, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, s := range shares {
		if !s.IsDir() || s.Name() == "lost+found" {
			continue
		}
		if f, err := os.ReadDir(dir + "/" + s.Name()); err == nil && len(f) > 0 {
			return true
		}
	}
	return false
}
