package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/auth"
	"github.com/lawbox/appliance/appliance/backup"
	"github.com/lawbox/appliance/appliance/backup/engine"
	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/certs"
	"github.com/lawbox/appliance/appliance/clock"
	"github.com/lawbox/appliance/appliance/control"
	"github.com/lawbox/appliance/appliance/database"
	"github.com/lawbox/appliance/appliance/health"
	"github.com/lawbox/appliance/appliance/network"
	"github.com/lawbox/appliance/appliance/notify"
	"github.com/lawbox/appliance/appliance/pair"
	"github.com/lawbox/appliance/appliance/replica"
	"github.com/lawbox/appliance/appliance/shares"
	"github.com/lawbox/appliance/appliance/state"
	"github.com/lawbox/appliance/appliance/storage"
	"github.com/lawbox/appliance/appliance/supervise"
	"github.com/lawbox/appliance/appliance/unit"
	"github.com/lawbox/appliance/hw/disk"
	"github.com/lawbox/appliance/hw/drbd"
	"github.com/lawbox/appliance/hw/luks"
	"github.com/lawbox/appliance/hw/lvm"
	"github.com/lawbox/appliance/hw/raid"
	"github.com/lawbox/appliance/hw/tpm"
	"github.com/lawbox/appliance/netcfg/link"
	"github.com/lawbox/appliance/netcfg/static"
	"github.com/lawbox/appliance/netcfg/tunnel"
	"github.com/lawbox/appliance/netcfg/vip"
	"github.com/lawbox/appliance/webui"
)

func runDaemon(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	statePath := fs.String("state", "", "state database (default: on the system array, or in RAM without one)")
	listen := fs.String("listen", ":443", "HTTPS listen address")
	ctlSock := fs.String("control", control.DefaultSocket, "PID 1's control socket")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Storage first: the state store lives on the system array when there is one.
	disks := &storage.Manager{Log: log.With("part", "storage"), MD: &raid.MDADM{Path: "/sbin/mdadm"},
		LVM:   &lvm.LVM{Path: "/sbin/lvm", Devices: []string{"/dev/" + storage.Data.MD(), "/dev/mapper/" + storage.CryptName}},
		Crypt: &luks.Cryptsetup{Path: "/sbin/cryptsetup"}, TPM: &tpm.TPM{}, SysRoot: "/sys", DevRoot: "/dev",
		Volumes: map[string][]storage.Volume{"data": {{Name: "database", Dir: "postgresql"}, {Name: "WAL archive", Dir: "wal-archive"},
			{Name: "backups", Dir: "backups"}, {Name: "backup scratch", Dir: "backup-scratch"}, {Name: "documents", Dir: "documents"}}}}
	st, err := openState(ctx, log, disks, *statePath)
	if err != nil {
		return err
	}
	monitor := &health.Monitor{Log: log.With("part", "smart"), Store: st, SysRoot: "/sys", DevRoot: "/dev"}
	disks.SetHealth(monitor.Level)
	db := newDatabase(log, st, disks)
	host, _ := os.Hostname()
	a := auth.New(st, log, time.Now)
	node, vipHolder := pairNode(log, st, host, a)
	disks.SetHolders(node.KeyHolders) // the partner and the witness keep secrets for the data array's key
	// The database follows the pair: active = production, standby = mirror of the partner, fenced = read-only.
	db.Pair, db.Roles = node, node.Roles
	docs := documentsVolume(log, st, disks, node, vipHolder.Keep)
	node.Fit = func() bool { return db.Fit() && docs.Fit() } // never active with an incomplete copy
	node.Ready = db.Writable                                 // the service address moves once the database takes writes
	files := fileShares(log, st, disks, node, docs, host)
	docs.Quiet = func() bool { return !files.Serving() } // held writes complete once no client can be answered
	backups := newBackups(log, st, db, node, files, docs)
	disks.SetLastBackup(backups.Newest) // growing the data array wants a backup of the last day
	ports := &network.Manager{Log: log.With("part", "network"), Store: st, Marker: static.MarkerFile, Apply: network.ApplyKernel,
		Keep: vipHolder.Keep, Resolver: &static.SystemResolver, Watcher: &link.Watcher{Log: log.With("part", "link")}}
	keeper, err := certs.NewKeeper(st, host, localIPs(), time.Now)
	if err != nil {
		return err
	}
	fmt.Printf("TLS certificate SHA-256 fingerprint: %s\n", certs.Fingerprint(keeper.Current()))
	initCtl := control.NewClient(*ctlSock)
	// The firmware goes onto every member disk's boot partition, so that UEFI boots the unit from its
	// disks; updates go into the free slot.
	installer, updater, err := firmwareParts(log, st, disks, db, node, docs, keeper, *listen, initCtl)
	if err != nil {
		return err
	}
	clk := &clock.Keeper{Log: log.With("part", "clock"), Store: st, Now: time.Now, Query: clock.Query, Set: setClock}
	alerts := &notify.Notifier{Log: log.With("part", "notify"), Store: st, Hostname: host,
		Alerts: func(ctx context.Context) []appliance.Alert {
			return appliance.TakeSnapshot(ctx, disks, monitor, node, db, backups, ports, updater, files, clk).Alerts()
		}}
	// What is sealed on the system array is written sealed once this firmware is kept, and in the clear again
	// before the unit goes back to an older one, which may not read it.
	updater.Kept = st.Seal
	updater.GoingBack = func() error { return errors.Join(st.Clear(), alerts.ForOlderFirmware(), db.ForOlderFirmware()) }
	// Long-running parts stop before the store closes and the arrays are unmounted.
	// Each is supervised: one that fails is logged and started again with a backoff, and its state is on
	// the status page.
	sctx, stopParts := context.WithCancel(context.Background())
	parts := &supervise.Parts{Log: log}
	for _, p := range []supervise.Part{{Name: "storage", Run: disks.Run}, {Name: "disk health", Run: monitor.Run}, {Name: "database", Run: db.Run},
		{Name: "network", Run: ports.Run}, {Name: "links", Run: ports.Watcher.Run}, {Name: "pair", Run: node.Run}, {Name: "service address", Run: vipHolder.Run}, {Name: "backups", Run: backups.Run},
		{Name: "notifications", Run: alerts.Run}, {Name: "firmware install", Run: installer.Run}, {Name: "firmware updates", Run: updater.Run},
		{Name: "rolling updates", Run: updater.RunRollout}, {Name: "file shares", Run: files.Run}, {Name: "documents volume", Run: docs.Run},
		{Name: "file shares to the partner", Run: files.RunSync}, {Name: "clock", Run: clk.Run},
		{Name: "pair link", Run: (&pair.Link{Log: log.With("part", "pair link"), Node: node, Handler: linkHandler(updater, db, node, docs, backups.LinkHandler(host), files.LinkHandler()), Cert: keeper.GetCertificate}).Run}} {
		parts.Add(p.Name, p.Run)
	}
	partsDone := make(chan struct{})
	go func() { parts.Run(sctx); close(partsDone) }()
	defer func() {
		stopParts()
		<-partsDone
		st.Close()
		disks.Shutdown(context.Background())
	}()

	keeper.OnChange = func() {
		ctx, cancel := context.WithTimeout(sctx, 30*time.Second)
		defer cancel()
		if err := db.ReloadTLS(ctx); err != nil {
			log.Warn("the database server keeps its old certificate until it restarts", "err", err)
		}
	}

	a.Ship = alerts.ShipAudit
	a.Announce = func(code string) { fmt.Printf("setup code: %s\n", code) }
	a.SetupCode() // prints the code when the unit is not set up yet

	ui, err := webui.New(webui.Parts{Auth: a, System: &unit.Unit{Version: version, SysRoot: "/sys", ProcRoot: "/proc", Init: initCtl, Parts: parts.Status, Store: st},
		Storage: disks, Health: monitor, Database: db, Pair: handOver{node, pairWhole(db, node, docs)}, Network: ports, Backups: backups, Notify: alerts, Certs: keeper, Firmware: updater, Shares: files, Clock: clk}, log)
	if err != nil {
		return err
	}
	return serveUI(ctx, log, ui, keeper, host, *listen)
}

// serveUI serves the web UI on listen until ctx ends.
// pairNode is this unit's side of the pair, loaded. Each unit of a pair keeps a copy of the other's audit
// log, sent with the heartbeats. The pair publishes this unit's role (the database, the documents, the
// shares and the backups follow it) and asks for the service address, which the network part holds.
func pairNode(log *slog.Logger, st *state.Store, host string, a *auth.Auth) (*pair.Node, *network.ServiceAddress) {
	vipHolder := &network.ServiceAddress{Log: log.With("part", "service address"),
		New: func(p netip.Prefix) network.Holder { return &vip.Address{Prefix: p, ProcSys: "/proc/sys"} }}
	node := &pair.Node{Log: log.With("part", "pair"), Store: st, Name: host, Version: version, Addrs: localAddrs, Roles: &appliance.Feed[appliance.PairRole]{},
		Address: vipHolder, AuditSince: a.AuditSince, AuditKeep: a.KeepPartnerAudit}
	vipHolder.Event = node.Event
	if err := node.Load(); err != nil {
		log.Error("pair", "err", err)
	}
	return node, vipHolder
}

func serveUI(ctx context.Context, log *slog.Logger, ui *webui.Server, keeper *certs.Keeper, host, listen string) error {
	srv := &http.Server{
		Handler:           ui.Handler(),
		TLSConfig:         &tls.Config{GetCertificate: keeper.GetCertificate, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	urls := []string{webURL(host, listen)}
	for _, ip := range localIPs() {
		urls = append(urls, webURL(ip.String(), listen))
	}
	fmt.Printf("web UI ready on %s (%s)\n", listen, strings.Join(urls, " "))
	// Shutdown waits for open requests; the dashboards' event streams never end by themselves. (Requests
	// keep their own contexts: a power-off request must still get its answer while services stop.)
	srv.RegisterOnShutdown(ui.Close)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve web UI: %w", err)
	case <-ctx.Done():
	}
	shctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stop web UI: %w", err)
	}
	return nil
}

// newBackups is the backup service: backups are taken by the mirror, or by a unit that is not paired;
// "back up now" on the production unit of a pair has the mirror take it, over the pair link; a
// configuration restored from a backup gives the file shares theirs; the documents backed up are the
// shares' volume, read on the mirror from a snapshot of its replicated copy.
func newBackups(log *slog.Logger, st *state.Store, db *database.Manager, node *pair.Node, files *shares.Server, docs *replica.Replica) *backup.Service {
	backups := backup.NewService(&engine.Engine{Log: log.With("part", "backup"), BinDir: "/usr/lib/postgresql/15/bin", Socket: "/run/postgresql",
		Port: 5432, Scratch: "/data/backup-scratch", WALDir: walArchive, Local: target.Dir{Path: "/data/backups"}, Store: st, Firmware: version},
		func(ctx context.Context) bool {
			d, err := db.Database(ctx)
			return err == nil && d.State == "running" && (d.Role == "mirror" || d.Role == "production" && node.Roles.Get() == appliance.PairSingle)
		}, 30)
	toPartner := backup.LinkClient(node.Call)
	backups.Partner = func(ctx context.Context, kind string) (appliance.Backup, error) {
		if node.Roles.Get() == appliance.PairSingle {
			return appliance.Backup{}, fmt.Errorf("%w: this unit's database is not running", appliance.ErrUnavailable)
		}
		return toPartner(ctx, kind)
	}
	backups.ConfigParts = []backup.ConfigPart{func(ctx context.Context, b engine.Buckets) (string, error) { return files.RestoreConfig(ctx, b) }}
	backups.Documents = docs
	return backups
}

// fileShares is the office's file server: the shares' folders are on the data array, and only a unit that
// is alone or the active unit of its pair serves them.
func fileShares(log *slog.Logger, st *state.Store, disks *storage.Manager, node *pair.Node, docs *replica.Replica, host string) *shares.Server {
	toPartner := shares.LinkClient(node.Call)
	return &shares.Server{Log: log.With("part", "file shares"), Store: st, Dir: "/data/documents", Smbd: "/usr/sbin/smbd",
		Conf: "/etc/samba/smb.conf", RunDir: "/run/samba", PrivateDir: filepath.Join(storage.System.Mount(), "samba"),
		Passwd: "/etc/passwd", Name: netbiosName(host), Replication: docs.Status, Grow: docs.Grow,
		Serve: func() (bool, string) {
			if !disks.DataReady() {
				return false, "The data array is not ready: the shares are served once it is."
			}
			if !docs.Ready() {
				return false, "The documents volume is not mounted on this unit: the shares are served once it is."
			}
			if !node.Roles.Get().Serves() {
				return false, "This unit is not the active unit of the pair: the active unit serves the shares."
			}
			return true, ""
		},
		// The shares are changed on the unit that serves them and handed to the other over the pair link,
		// so that the unit taking over serves the same shares to the same accounts.
		Roles: node.Roles,
		Send: func(ctx context.Context, settings []byte) error {
			if node.Roles.Get() == appliance.PairSingle {
				return nil
			}
			return toPartner(ctx, settings)
		}}
}

// documentsVolume is the shares' volume, replicated to the partner by DRBD: primary and mounted on the
// unit that serves the shares, secondary on the other.
func documentsVolume(log *slog.Logger, st *state.Store, disks *storage.Manager, node *pair.Node, vip func() []netip.Prefix) *replica.Replica {
	return &replica.Replica{Log: log.With("part", "documents volume"), Store: st, Dir: "/data/documents",
		DRBD: &drbd.DRBD{Setup: "/sbin/drbdsetup", Meta: "/sbin/drbdmeta", Resource: "documents", Minor: 0},
		Device: func() string {
			if !disks.DataReady() {
				return ""
			}
			return disks.DocumentsDevice()
		},
		Roles: node.Roles,
		PartnerLeads: func() bool {
			p := node.Pair()
			return p.Peer != nil && p.Peer.Reachable && p.Peer.Role == pair.Active
		},
		Peers:    func() []string { return replicationPaths(node.PeerAddrs(), vip()) },
		Secret:   func() []byte { return node.Secret("documents replication") },
		Link:     &pairLink{node: node},
		Snapshot: disks.DocumentsSnapshot, Extend: disks.ExtendDocuments, Call: node.Call,
		Helper: drbdHelperPath(), Alone: node.Alone}
}

// pairLink is the pair's encrypted link (netcfg/tunnel) as the documents' replication uses it: made when
// the partner runs it too, its keys derived from the pair's.
type pairLink struct {
	node *pair.Node
	link tunnel.Link
}

func (l *pairLink) Via(addr string) (local, remote string, inside bool, err error) {
	if !l.node.PeerTunnels() {
		return "", "", false, l.link.Close()
	}
	self, peer := l.node.Names()
	k, err := tunnel.Derive(l.node.Secret, self, peer)
	if err != nil {
		return "", "", false, err
	}
	to, err := netip.ParseAddr(addr)
	if err != nil {
		return "", "", false, fmt.Errorf("pair link: the other unit's address %q: %w", addr, err)
	}
	if err := l.link.Set(k, to); err != nil {
		return "", "", false, err
	}
	return k.Local.String(), k.Remote.String(), true, nil
}

func (l *pairLink) Close() error { return l.link.Close() }

// handOver is the pair as the web UI drives it: an active unit asked to hand the service over (not
// forced) does so only when the other unit can take it at once: its database mirrors this one's and its
// documents are in sync. Otherwise nobody would serve until the other unit caught up.
type handOver struct {
	*pair.Node
	whole func(ctx context.Context) error
}

func (h handOver) SetRole(ctx context.Context, role string, force bool) error {
	if role == pair.Standby && !force && h.Role() == pair.Fenced {
		// It serves nothing and takes the service back by itself once it hears the witness or its partner.
		return fmt.Errorf("%w: this unit is fenced (it lost the witness and the other unit): there is nothing to hand over now", appliance.ErrConflict)
	}
	if role == pair.Standby && !force && h.Role() == pair.Active {
		if err := h.whole(ctx); err != nil {
			return fmt.Errorf("%w: the other unit cannot take over yet (%v); try again in a moment, or force it", appliance.ErrConflict, err)
		}
	}
	return h.Node.SetRole(ctx, role, force)
}

// replicationPaths are the partner's addresses the documents may be replicated to, those outside the
// office LAN (the service address's network: a direct cable between the units) first, so that a
// resynchronisation does not crowd the witness and the clients.
func replicationPaths(peer []string, service []netip.Prefix) []string {
	var direct, lan []string
	for _, a := range peer {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			continue
		}
		onLAN := false
		for _, p := range service {
			onLAN = onLAN || p.Masked().Contains(ip)
		}
		if onLAN {
			lan = append(lan, a)
		} else {
			direct = append(direct, a)
		}
	}
	return append(direct, lan...)
}

// walArchive holds the server's finished WAL segments until the backups ship them.
const walArchive = "/data/wal-archive"

// newDatabase is the production or mirror PostgreSQL server on the data array.
func newDatabase(log *slog.Logger, st *state.Store, disks *storage.Manager) *database.Manager {
	return &database.Manager{Log: log.With("part", "database"), BinDir: "/usr/lib/postgresql/15/bin", DataDir: "/data/postgresql/15/main",
		Socket: "/run/postgresql", Archive: walArchive, Port: 5432, Ready: disks.DataReady, Store: st, TLS: func() ([]byte, []byte, error) { return certs.PEM(st) },
		Host: func() string {
			if ips := localIPs(); len(ips) > 0 {
				return ips[0].String()
			}
			h, _ := os.Hostname()
			return h
		}}
}

// openState assembles the arrays and opens the state store: on the system array when there is one (or path),
// else in RAM until storage is set up, when it moves there.
func openState(ctx context.Context, log *slog.Logger, disks *storage.Manager, path string) (*state.Store, error) {
	persistent, err := disks.Prepare(ctx)
	if err != nil {
		log.Error("storage", "err", err)
	}
	if path == "" {
		path = "/run/appliance/state.db"
		if persistent {
			path = filepath.Join(storage.System.Mount(), "state.db")
		} else {
			log.Warn("no system array: settings are kept in RAM until storage is set up")
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	st, err := state.Open(path)
	if err != nil {
		return nil, err
	}
	fmt.Printf("state store: %s\n", path)
	// The file accounts' NT hashes open SMB as the passwords would, the mail password the office's mailbox:
	// kept encrypted with a key on the data array (storage.StateKeyFile) once this firmware is kept (below),
	// readable once the data array is open.
	st.SealBuckets(state.BucketShares, state.BucketSecrets)
	disks.Attach(st)
	disks.OnPersistent = func(dir string) error {
		path := filepath.Join(dir, "state.db")
		if err := st.Relocate(path); err != nil {
			return err
		}
		fmt.Printf("state store: %s\n", path)
		return nil
	}
	return st, nil
}

// webURL is the address a browser uses to reach host on the listen address.
func webURL(host, listen string) string {
	_, p, err := net.SplitHostPort(listen)
	if err != nil || p == "443" {
		return "https://" + host + "/"
	}
	return "https://" + net.JoinHostPort(host, p) + "/"
}

// localAddrs lists the unit's global unicast addresses (IPv4 and IPv6) on the office's networks: not the
// pair link's, which runs over them.
func localAddrs() []netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && !tunnel.Inside(ip.Unmap()) {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// localIPs lists the unit's global unicast IPv4 addresses.
func localIPs() []net.IP {
	var out []net.IP
	for _, a := range localAddrs() {
		if a.Is4() {
			out = append(out, a.AsSlice())
		}
	}
	return out
}

// allPartitions lists every partition of every disk ("/dev/vdc1"): where the firmware may have booted from.
func allPartitions() []string {
	disks, _ := disk.List("/sys")
	var out []string
	for _, d := range disks {
		for _, p := range disk.Partitions("/sys", d.Name) {
			out = append(out, "/dev/"+p)
		}
	}
	return out
}

// netbiosName is host as a NetBIOS name: upper case, at most 15 characters.
func netbiosName(host string) string {
	n := strings.ToUpper(host)
	if len(n) > 15 {
		n = n[:15]
	}
	return n
}
