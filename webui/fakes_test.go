package webui

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// fakeSystem stands in for the unit's hardware; auth is the real one on a temporary store.
type fakeSystem struct {
	shutdowns []bool
	zone      *time.Location
}

func (f *fakeSystem) TimeZone() *time.Location {
	if f.zone == nil {
		return time.UTC
	}
	return f.zone
}

func (f *fakeSystem) SetTimeZone(name string) error {
	loc, err := time.LoadLocation(name)
	if err != nil || name == "" {
		return fmt.Errorf("%w: time zone %q", appliance.ErrBadInput, name)
	}
	f.zone = loc
	return nil
}

func (f *fakeSystem) Status(context.Context) (appliance.Status, error) {
	return appliance.Status{Version: "test", Hostname: "unit-a", UptimeS: 42,
		Disks:    []appliance.Disk{{Name: "vda", Serial: "SN-A", SizeBytes: 1 << 30}},
		Services: []appliance.Service{{Name: "daemon", State: "running", Logs: []string{`statement: ALTER ROLE practice_app PASSWORD 'client secret'`}}},
		Parts:    []appliance.Service{{Name: "pair", State: "backoff", Restarts: 2, LastExit: "listen udp :7946: address already in use"}}}, nil
}

func (f *fakeSystem) Shutdown(_ context.Context, reboot bool) error {
	f.shutdowns = append(f.shutdowns, reboot)
	return nil
}

// fakeStorage records the storage actions the UI asks for.
type fakeStorage struct {
	mu       sync.Mutex
	st       appliance.StorageStatus
	scrubs   int
	adopted  []string
	scrubErr error
}

func (f *fakeStorage) Storage(context.Context) (appliance.StorageStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st, nil
}

// change edits the status while the server may be reading it.
func (f *fakeStorage) change(edit func(*appliance.StorageStatus)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	edit(&f.st)
}

func (f *fakeStorage) Scrub(context.Context) error {
	if f.scrubErr != nil {
		return f.scrubErr
	}
	f.scrubs++
	return nil
}

func (f *fakeStorage) Adopt(_ context.Context, serial string) error {
	for _, d := range f.st.Disks {
		if d.Serial == serial {
			f.adopted = append(f.adopted, serial)
			return nil
		}
	}
	return fmt.Errorf("adopt %s: %w", serial, appliance.ErrNotFound)
}

// Unlock takes "GOOD-KEY" as the recovery key, as the storage takes its own.
func (f *fakeStorage) Unlock(_ context.Context, key string) error {
	if f.st.Encryption.State != "locked" {
		return fmt.Errorf("unlock: %w", appliance.ErrConflict)
	}
	if key != "GOOD-KEY" {
		return fmt.Errorf("unlock: %w", appliance.ErrBadInput)
	}
	f.st.Encryption.State = "open"
	return nil
}

// Locate turns the light of a disk that has one on or off.
func (f *fakeStorage) Locate(_ context.Context, serial string, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, d := range f.st.Disks {
		if d.Serial != serial {
			continue
		}
		if d.Locate == "" {
			return fmt.Errorf("locate disk %s: the box has no light for its slot: %w", serial, appliance.ErrConflict)
		}
		f.st.Disks[i].Locate = map[bool]string{true: "on", false: "off"}[on]
		return nil
	}
	return fmt.Errorf("locate disk %s: %w", serial, appliance.ErrNotFound)
}

func (f *fakeStorage) NewRecoveryKey(context.Context) (string, error) {
	if f.st.Encryption.State != "open" {
		return "", fmt.Errorf("recovery key: %w", appliance.ErrConflict)
	}
	f.st.Encryption.RecoveryKey = true
	return "ABCD-EFGH", nil
}

// Grow grows when the only refusal is an old backup and anyway is set, as the storage does.
func (f *fakeStorage) Grow(_ context.Context, anyway bool) error {
	if f.st.GrowWaits == "" {
		return fmt.Errorf("grow: no spare disk to grow onto: %w", appliance.ErrConflict)
	}
	if !anyway {
		return fmt.Errorf("grow: %s: %w", f.st.GrowWaits, appliance.ErrConflict)
	}
	f.st.GrowWaits = ""
	return nil
}

func (f *fakeStorage) SetPolicy(_ context.Context, p appliance.StoragePolicyChange) error {
	if p.AutoAdd != nil {
		f.st.AutoAdd = *p.AutoAdd
	}
	if p.ProactiveReplace != nil {
		f.st.ProactiveReplace = *p.ProactiveReplace
	}
	if p.KeepSpare != nil {
		f.st.KeepSpare = *p.KeepSpare
	}
	for slot, name := range p.Bays {
		if err := appliance.CheckBay(name); err != nil {
			return err
		}
		for i := range f.st.Disks {
			if f.st.Disks[i].Slot == slot {
				f.st.Disks[i].Bay = name
			}
		}
	}
	return nil
}

// fakeHealth holds one NVMe disk with a warning.
type fakeHealth struct {
	disks []appliance.DiskHealth
	acked []string
	tests []string
	poll  int
}

func (f *fakeHealth) Disks(context.Context) ([]appliance.DiskHealth, error) { return f.disks, nil }

func (f *fakeHealth) find(serial string) error {
	for _, d := range f.disks {
		if d.Serial == serial {
			return nil
		}
	}
	return fmt.Errorf("disk %s: %w", serial, appliance.ErrNotFound)
}

func (f *fakeHealth) Refresh(_ context.Context, serial string) error { return f.find(serial) }

func (f *fakeHealth) SelfTest(_ context.Context, serial, kind string) error {
	if err := f.find(serial); err != nil {
		return err
	}
	if kind != "short" && kind != "long" {
		return fmt.Errorf("kind %q: %w", kind, appliance.ErrBadInput)
	}
	f.tests = append(f.tests, kind)
	return nil
}

func (f *fakeHealth) Acknowledge(_ context.Context, serial, key string) error {
	if err := f.find(serial); err != nil {
		return err
	}
	f.acked = append(f.acked, key)
	return nil
}

func (f *fakeHealth) SetPollMinutes(_ context.Context, n int) error {
	if n < 1 {
		return fmt.Errorf("%d: %w", n, appliance.ErrBadInput)
	}
	f.poll = n
	return nil
}

func (f *fakeHealth) History(context.Context, string) ([]appliance.HistoryPoint, error) {
	t0 := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	return []appliance.HistoryPoint{{Time: t0, TemperatureC: 38, Counters: map[string]uint64{"nvme-media": 0, "nvme-warning": 0}},
		{Time: t0.Add(time.Hour), TemperatureC: 44, Counters: map[string]uint64{"nvme-media": 3, "nvme-warning": 0}}}, nil
}

// fakeDB is a running server with one database.
type fakeDB struct {
	role     string // "" is production
	created  []string
	upstream string
	promoted int
	policy   appliance.DatabasePolicy
	aside    []appliance.SetAside
	stranded bool
	plain    bool
	// lagSeconds: how far the mirror's replay is behind, if known
	lagSeconds *float64
}

func (f *fakeDB) StartAfresh(context.Context) error {
	if !f.stranded {
		return fmt.Errorf("not stranded: %w", appliance.ErrConflict)
	}
	f.stranded = false
	f.aside = append(f.aside, appliance.SetAside{Name: "main.previous-20261124-010000"})
	return nil
}

func (f *fakeDB) Database(context.Context) (appliance.DatabaseStatus, error) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	role := f.role
	if role == "" {
		role = "production"
	}
	lag := int64(4096)
	return appliance.DatabaseStatus{Role: role, State: "running", Version: "15.14", Mirror: "streaming from 192.0.2.12", LagBytes: &lag,
		LagHistory: []appliance.LagPoint{{Time: t0, Seconds: 0.2}, {Time: t0.Add(10 * time.Second), Seconds: 1.5}},
		LagDay:     []appliance.LagPoint{{Time: t0.Add(-10 * time.Minute), Seconds: 12.5}, {Time: t0.Add(-5 * time.Minute), Seconds: 0.4}},
		Databases:  []appliance.DatabaseInfo{{Name: "practice", Owner: "practice_app", SizeBytes: 8 << 20}},
		Slots:      []appliance.ReplicationSlot{{Name: "lawbox_mirror", Active: true, RetainedBytes: 48 << 20, WALStatus: "reserved"}},
		SetAside:   slices.Clone(f.aside), Stranded: f.stranded, LagSeconds: f.lagSeconds}, nil
}

func (f *fakeDB) CreateDatabase(_ context.Context, name, owner string) (appliance.NewDatabase, error) {
	if name == "" || strings.ContainsAny(name+owner, "'\\ ;") {
		return appliance.NewDatabase{}, fmt.Errorf("name %q: %w", name, appliance.ErrBadInput)
	}
	f.created = append(f.created, name)
	return appliance.NewDatabase{Name: name, Owner: owner, Password: "pw", URL: "postgresql://" + owner + ":pw@unit:5432/" + name}, nil
}

func (f *fakeDB) SetPlain(_ context.Context, name string, allow bool) error {
	if name != "practice" {
		return fmt.Errorf("no database %q: %w", name, appliance.ErrNotFound)
	}
	f.plain = allow
	return nil
}

func (f *fakeDB) SetUpstream(_ context.Context, u appliance.Upstream) error {
	if u.Host == "" {
		return fmt.Errorf("upstream: %w", appliance.ErrBadInput)
	}
	f.upstream = u.Host
	return nil
}

func (f *fakeDB) DeleteSetAside(_ context.Context, name string) error {
	for i, a := range f.aside {
		if a.Name == name {
			f.aside = slices.Delete(f.aside, i, i+1)
			return nil
		}
	}
	return fmt.Errorf("set-aside %q: %w", name, appliance.ErrNotFound)
}

func (f *fakeDB) Promote(context.Context) (appliance.Promotion, error) {
	f.promoted++
	return appliance.Promotion{Seconds: 1.5}, nil
}

func (f *fakeDB) SetPolicy(_ context.Context, p appliance.DatabasePolicy) error {
	if p.DegradeAfterS < 0 {
		return fmt.Errorf("degrade: %w", appliance.ErrBadInput)
	}
	f.policy = p
	return nil
}

type fakePair struct {
	st       appliance.PairStatus
	settings appliance.PairSettings
	roles    []string
}

func (f *fakePair) Pair() appliance.PairStatus { return f.st }
func (f *fakePair) Invite(_ context.Context, s appliance.PairSettings) (string, error) {
	if s.VIP == "" {
		return "", fmt.Errorf("%w: no service address", appliance.ErrBadInput)
	}
	f.settings = s
	return "ABCD-EFGH-IJKL-MNOP", nil
}
func (f *fakePair) Join(_ context.Context, peer, code string) error {
	if code != "ABCD-EFGH-IJKL-MNOP" {
		return fmt.Errorf("%w: no answer from %s", appliance.ErrUnavailable, peer)
	}
	f.st.Paired, f.st.Role, f.st.Peer = true, "standby", &appliance.PairPeer{Name: "unit-b", Address: peer}
	return nil
}
func (f *fakePair) Unpair(context.Context) error {
	f.st = appliance.PairStatus{Role: "single"}
	return nil
}
func (f *fakePair) SetMaintenance(_ context.Context, on bool) error {
	if on && f.st.Role != "standby" {
		return fmt.Errorf("%w: not a standby", appliance.ErrConflict)
	}
	f.st.Maintenance = on
	return nil
}

func (f *fakePair) SetRole(_ context.Context, role string, force bool) error {
	if role != "active" && role != "standby" {
		return fmt.Errorf("%w: role %q", appliance.ErrBadInput, role)
	}
	f.roles = append(f.roles, fmt.Sprint(role, force))
	return nil
}
func (f *fakePair) WitnessKey() (string, error) { return "00ff", nil }

type fakeNetwork struct {
	ports []appliance.NetworkPort
	links []appliance.NetworkLink
	trial *appliance.NetworkTrial
}

func (f *fakeNetwork) TryPorts(ctx context.Context, p []appliance.NetworkPort, window time.Duration, user string) error {
	if f.trial != nil && !f.trial.Reverted {
		return fmt.Errorf("%w: on probation", appliance.ErrConflict)
	}
	if err := f.SetPorts(ctx, p); err != nil {
		return err
	}
	f.trial = &appliance.NetworkTrial{By: user, Until: time.Now().Add(window)}
	return nil
}

func (f *fakeNetwork) ConfirmPorts(context.Context, string) error {
	if f.trial == nil || f.trial.Reverted {
		return fmt.Errorf("%w: nothing on probation", appliance.ErrConflict)
	}
	f.trial = nil
	return nil
}

func (f *fakeNetwork) Trial() *appliance.NetworkTrial { return f.trial }

func (f *fakeNetwork) Links() []appliance.NetworkLink { return f.links }

func (f *fakeNetwork) Ports() []appliance.NetworkPort { return f.ports }
func (f *fakeNetwork) Nameservers() []string {
	var out []string
	for _, p := range f.ports {
		out = append(out, p.DNS...)
	}
	return out
}
func (f *fakeNetwork) SetPorts(_ context.Context, p []appliance.NetworkPort) error {
	for _, port := range p {
		if len(port.Addresses) == 0 {
			return fmt.Errorf("%w: port %s: no address", appliance.ErrBadInput, port.Name)
		}
	}
	f.ports = p
	return nil
}

type fakeNotify struct {
	settings appliance.NotifySettings
	tests    int
	testErr  error
	acks     map[string]appliance.AlertAck
}

func (f *fakeNotify) AcknowledgeAlert(_ context.Context, key, user string, mute time.Duration) error {
	if f.acks == nil {
		f.acks = map[string]appliance.AlertAck{}
	}
	ack := appliance.AlertAck{By: user, At: time.Now()}
	if mute > 0 {
		until := ack.At.Add(mute)
		ack.Until = &until
	}
	f.acks[key] = ack
	return nil
}

func (f *fakeNotify) UnacknowledgeAlert(_ context.Context, key string) error {
	if _, ok := f.acks[key]; !ok {
		return fmt.Errorf("alert %q: %w", key, appliance.ErrNotFound)
	}
	delete(f.acks, key)
	return nil
}

func (f *fakeNotify) AlertAcks(context.Context) (map[string]appliance.AlertAck, error) {
	return maps.Clone(f.acks), nil
}

func (f *fakeNotify) Notifications(context.Context) (appliance.NotifyStatus, error) {
	st := appliance.NotifyStatus{Settings: f.settings, PasswordSet: f.settings.Password != ""}
	st.Settings.Password = ""
	return st, nil
}

func (f *fakeNotify) SetNotifications(_ context.Context, s appliance.NotifySettings) error {
	if s.SMTP != "" && len(s.To) == 0 {
		return fmt.Errorf("%w: give 1 to 20 recipients", appliance.ErrBadInput)
	}
	f.settings = s
	return nil
}

func (f *fakeNotify) TestNotification(context.Context) error {
	f.tests++
	return f.testErr
}

type fakeCerts struct {
	info appliance.CertInfo
	set  int
}

func (f *fakeCerts) Certificate(context.Context) (appliance.CertInfo, error) { return f.info, nil }

func (f *fakeCerts) SetCertificate(_ context.Context, cert, key string) error {
	if !strings.Contains(cert, "BEGIN CERTIFICATE") || key == "" {
		return fmt.Errorf("%w: certificate and key: no PEM data", appliance.ErrBadInput)
	}
	f.set++
	f.info.SelfSigned, f.info.Issuer = false, "CN=Office CA"
	return nil
}

func (f *fakeCerts) ResetCertificate(context.Context) error {
	f.info.SelfSigned = true
	return nil
}

// fakeFirmware takes a bundle whose body is "good vN" (N: its build; 20 runs), refuses anything else.
type fakeFirmware struct {
	mu        sync.Mutex
	received  int
	rollbacks []string
	last      *appliance.FirmwareRun
}

func (f *fakeFirmware) Firmware(context.Context) (appliance.FirmwareStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return appliance.FirmwareStatus{Version: "v20", Build: 20, Slots: []appliance.FirmwareSlot{{Version: "v20", State: "running", Partitions: []string{"/dev/vda1"}}},
		Update: f.last}, nil
}

func (f *fakeFirmware) Update(_ context.Context, r io.Reader, _ int64, allowDowngrade bool, user string) (appliance.FirmwareRun, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return appliance.FirmwareRun{}, err
	}
	f.mu.Lock()
	f.received = len(b)
	f.mu.Unlock()
	var build int
	if _, err := fmt.Sscanf(string(bytes.TrimRight(b, "x")), "good v%d", &build); err != nil {
		return appliance.FirmwareRun{}, fmt.Errorf("%w: not a valid update bundle", appliance.ErrBadInput)
	}
	if build < 20 && !allowDowngrade {
		return appliance.FirmwareRun{}, fmt.Errorf("%w: the bundle is older than the running firmware", appliance.ErrConflict)
	}
	return appliance.FirmwareRun{Version: fmt.Sprintf("v%d", build), From: "v20", By: user, State: appliance.FirmwareRestarting}, nil
}

func (f *fakeFirmware) Rollback(_ context.Context, user string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollbacks = append(f.rollbacks, user)
	return nil
}

// fakeClock is a clock keeper checked a minute ago; it keeps the servers it is given (the real one's
// checks of them are tested in appliance/clock).
type fakeClock struct {
	mu sync.Mutex
	st appliance.ClockStatus
}

func (f *fakeClock) Clock() appliance.ClockStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeClock) SetTimeServers(servers []string) error {
	for _, s := range servers {
		if strings.ContainsAny(s, ";/") {
			return fmt.Errorf("%w: time server %q: a host name or an address (and :port)", appliance.ErrBadInput, s)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Servers = servers
	return nil
}
