package database

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/certs"
	"github.com/lawbox/appliance/appliance/state"
)

// fakePair is the pair as the test decides it.
type fakePair struct {
	roles    appliance.Feed[appliance.PairRole] // what the pair publishes
	mu       sync.Mutex
	role     string
	alone    bool   // the peer cannot be reached
	onActive func() // SetRole("active") hands over from the peer (a switchover)
}

func (p *fakePair) set(r string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.role = r
	p.roles.Set(appliance.PairRole(r))
}
func (p *fakePair) PeerAddrs() []string { return []string{"127.0.0.1"} }
func (p *fakePair) Secret(label string) []byte {
	return []byte("0123456789abcdef0123456789abcdef" + label)[:32]
}
func (p *fakePair) Pair() appliance.PairStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return appliance.PairStatus{Paired: true, Role: p.role, Peer: &appliance.PairPeer{Reachable: !p.alone}}
}
func (p *fakePair) SetRole(_ context.Context, role string, _ bool) error {
	p.mu.Lock()
	hand := p.onActive
	p.mu.Unlock()
	if role == "active" && hand != nil {
		hand()
	}
	p.set(role)
	return nil
}

func TestDesiredFollowsThePair(t *testing.T) {
	p := &fakePair{}
	m := &Manager{Pair: p, Roles: &p.roles, Port: 5432, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for role, want := range map[string]string{"active": production, "standby": mirror, "fenced": readOnly, "single": production} {
		p.set(role)
		if got := m.desired(); got.Kind != want {
			t.Errorf("pair %s: database %s, want %s", role, got.Kind, want)
		}
	}
	p.set("standby")
	up := m.desired().Up
	if up == nil || !up.Partner || up.User != replicaUser || up.Slot != replicaSlot || len(up.Password) != 48 {
		t.Fatalf("partner upstream %+v", up)
	}
	conf := replicationConf(up, nil)
	for _, want := range []string{"host=127.0.0.1 port=5432", "sslmode=require channel_binding=require", "target_session_attrs=read-write",
		"primary_slot_name = 'lawbox_mirror'", "recovery_target_timeline = 'latest'"} {
		if !strings.Contains(conf, want) {
			t.Errorf("replication.conf lacks %q:\n%s", want, conf)
		}
	}
	if conf := replicationConf(nil, nil); strings.Contains(conf, "primary_conninfo") {
		t.Errorf("a read-only server follows someone:\n%s", conf)
	}
}

// Two units on this machine with real PostgreSQL, the pair's role decided by the test: the standby copies the
// active unit over TLS with the pair's replication role and streams; synchronous mode makes a commit visible
// on the mirror when it returns and degrades when the mirror is gone; a switchover promotes the mirror and
// the old production follows it; a unit that wrote on its own (forced split brain) is wound back by
// pg_rewind when it rejoins.
func TestPartnerMirrorOnHost(t *testing.T) {
	portA, portB := freePort(t), freePort(t)
	a := startHostUnit(t, "a", portA, portB, "active")
	b := startHostUnit(t, "b", portB, portA, "standby")
	ctx := context.Background()

	a.waitStatus(t, "a production", func(s appliance.DatabaseStatus) bool { return s.Role == production })
	before := a.walPosition(t)
	nd, err := a.CreateDatabase(ctx, "practice", "practice_app")
	if err != nil {
		t.Fatal(err)
	}
	// The new database's pages are written by a checkpoint of its own, not left for the next switchover's.
	if redo := a.checkpointRedo(t); redo <= before {
		t.Errorf("the last checkpoint's redo position %X is not after the creation began (%X)", redo, before)
	}
	c, err := pgx.Connect(ctx, nd.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE TABLE matters (id int PRIMARY KEY); INSERT INTO matters SELECT generate_series(1, 100)"); err != nil {
		t.Fatal(err)
	}
	st := b.waitStatus(t, "b mirrors a", func(s appliance.DatabaseStatus) bool {
		return s.Role == mirror && s.State == "running" && strings.HasPrefix(s.Upstream, "partner unit")
	})
	t.Logf("mirror: %+v", st)
	waitFor(t, time.Minute, "rows on the mirror", func() error {
		if n, err := count(ctx, at(nd.URL, portB)); err != nil || n != 100 {
			return fmt.Errorf("%d rows (%v)", n, err)
		}
		return nil
	})
	if _, err := b.CreateDatabase(ctx, "other", "other_app"); err == nil {
		t.Error("a database was created on the mirror")
	}
	if err := b.SetPolicy(ctx, appliance.DatabasePolicy{Sync: true}); err == nil {
		t.Error("the policy was set on the mirror")
	}
	// A pair nobody configured is synchronous: an acknowledged commit is on the mirror.
	a.waitStatus(t, "synchronous by default", func(s appliance.DatabaseStatus) bool {
		return s.Policy.Sync && s.Sync == "sync" && strings.HasPrefix(s.Mirror, "streaming from")
	})

	synchronousCommits(t, ctx, a, b, c, nd.URL, portB)
	c.Close(ctx)

	// Switchover: b becomes production, a follows it.
	a.pair.set("standby")
	b.pair.set("active")
	a.Kick()
	b.Kick()
	st = b.waitStatus(t, "b promoted", func(s appliance.DatabaseStatus) bool { return s.Role == production && s.State == "running" })
	if st.LastPromotionS <= 0 {
		t.Errorf("promotion time not reported: %+v", st)
	}
	a.waitStatus(t, "a follows b", func(s appliance.DatabaseStatus) bool {
		return s.Role == mirror && s.State == "running" && s.Upstream != ""
	})
	cb, err := pgx.Connect(ctx, at(nd.URL, portB))
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	if _, err := cb.Exec(ctx, "INSERT INTO matters VALUES (112)"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "b's commit on a", func() error {
		if n, err := count(ctx, at(nd.URL, portA)); err != nil || n != 112 {
			return fmt.Errorf("%d rows (%v)", n, err)
		}
		return nil
	})

	splitBrainRewound(t, ctx, a, cb, nd.URL, portA)
	promoteOnlyStreaming(t, ctx, a, b, nd.URL, portA, portB)
}

// confirmed sets upstream u as an admin does: the first try names the certificate's fingerprint, which the
// admin confirms.
func confirmed(t *testing.T, u *hostUnit, up appliance.Upstream) error {
	t.Helper()
	err := u.SetUpstream(context.Background(), up)
	m := regexp.MustCompile(`fingerprint ([0-9A-F:]{95})`).FindStringSubmatch(fmt.Sprint(err))
	if !errors.Is(err, appliance.ErrBadInput) || m == nil {
		t.Fatalf("upstream without a fingerprint: %v, want its fingerprint", err)
	}
	up.Fingerprint = m[1]
	return u.SetUpstream(context.Background(), up)
}

// fakeServer answers every connection as a PostgreSQL server of the given version that accepts anyone.
func fakeServer(t *testing.T, version string) int {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	k, err := certs.NewKeeper(st, "fake", []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	cert := k.Current()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				be := pgproto3.NewBackend(c, c)
				msg, err := be.ReceiveStartupMessage()
				if _, ok := msg.(*pgproto3.SSLRequest); ok && err == nil {
					c.Write([]byte("S"))
					tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
					be = pgproto3.NewBackend(tc, tc)
					_, err = be.ReceiveStartupMessage()
				}
				if err != nil {
					return
				}
				be.Send(&pgproto3.AuthenticationOk{})
				be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: version})
				be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
				be.Flush()
				be.Receive()
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// An external upstream that cannot be mirrored is refused at once with what is wrong (a refused password,
// another major version), and a copy that does not fit on the array fails with "no space" and leaves the
// unit's own cluster as it was.
func TestExternalUpstreamBadInput(t *testing.T) {
	portA, portB := freePort(t), freePort(t)
	a := startHostUnit(t, "a", portA, 0, "single")
	b := startHostUnitOn(t, "b", portB, 0, "single", "96m")
	ctx := context.Background()
	a.waitStatus(t, "a production", func(s appliance.DatabaseStatus) bool { return s.Role == production })
	b.waitStatus(t, "b production", func(s appliance.DatabaseStatus) bool { return s.Role == production })
	c, err := a.connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE ROLE lawbox_replica REPLICATION LOGIN PASSWORD 'right-password'",
		"CREATE TABLE public.big AS SELECT g, repeat(md5(g::text), 30) AS filler FROM generate_series(1, 150000) g",
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	c.Close(ctx)

	err = confirmed(t, b, appliance.Upstream{Host: "127.0.0.1", Port: portA, User: replicaUser, Password: "wrong-password"})
	if !errors.Is(err, appliance.ErrBadInput) || !strings.Contains(err.Error(), "refused user lawbox_replica") {
		t.Errorf("wrong password: %v", err)
	}
	// A server that lets the unit in without proving it knows the password (SCRAM with channel binding):
	// an impostor, whatever version it claims.
	err = confirmed(t, b, appliance.Upstream{Host: "127.0.0.1", Port: fakeServer(t, "16.4"), User: replicaUser, Password: "x"})
	if err == nil || !strings.Contains(err.Error(), "channel binding") {
		t.Errorf("a server that skips authentication: %v", err)
	}
	err = b.SetUpstream(ctx, appliance.Upstream{Host: "127.0.0.1", Port: portA, User: replicaUser, Password: "right-password",
		Fingerprint: strings.Repeat("AB:", 31) + "AB"})
	if !errors.Is(err, appliance.ErrBadInput) || !strings.Contains(err.Error(), "presents the TLS certificate") {
		t.Errorf("another certificate than the one confirmed: %v", err)
	}
	if st, _ := b.Database(ctx); st.Role != production {
		t.Fatalf("a refused upstream changed the unit: %+v", st)
	}

	if err := confirmed(t, b, appliance.Upstream{Host: "127.0.0.1", Port: portA, User: replicaUser, Password: "right-password"}); err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, "the copy fails for lack of space", func(s appliance.DatabaseStatus) bool {
		return s.State == stateFailed && strings.Contains(s.Detail, "No space left on device") // the page's sentence, the tool's words apart
	})
	if _, err := os.Stat(filepath.Join(b.DataDir, "PG_VERSION")); err != nil {
		t.Errorf("the unit's own cluster is gone: %v", err)
	}
	if _, err := os.Stat(b.DataDir + ".clone"); !os.IsNotExist(err) {
		t.Errorf("the failed copy was left behind (%v)", err)
	}
}

// TestRoleChangeWhileStarting changes the role while postgres is still starting, the window in which a
// unit that paired during its first initdb once stayed "stopping" forever.
func TestRoleChangeWhileStarting(t *testing.T) {
	u := startHostUnit(t, "a", freePort(t), freePort(t), "active")
	u.waitStatus(t, "production", func(s appliance.DatabaseStatus) bool { return s.Role == production })
	state := func() string {
		u.mu.Lock()
		defer u.mu.Unlock()
		return u.state
	}
	for i := range 6 {
		u.pair.set("fenced") // restarts read-only
		u.Kick()
		waitFor(t, time.Minute, "starting read-only", func() error {
			if s := state(); s != "starting" {
				return fmt.Errorf("state %q", s)
			}
			return nil
		})
		u.pair.set("standby") // ... and must stop again before it answers (a mirror of a partner that is not there)
		u.Kick()
		waitFor(t, 40*time.Second, fmt.Sprintf("round %d: stopped", i), func() error {
			if s := state(); s == "starting" || s == "stopping" || s == "running" {
				return fmt.Errorf("state %q", s)
			}
			return nil
		})
	}
	u.pair.set("active")
	u.waitStatus(t, "production again", func(s appliance.DatabaseStatus) bool { return s.Role == production && s.State == "running" })
}

// TestUnfitClusterNeverStarts: a cluster whose rewind or copy from the partner was cut short is not
// started, neither as production nor read-only; the pair is told (Fit) so it does not make the unit active.
func TestUnfitClusterNeverStarts(t *testing.T) {
	u := startHostUnit(t, "a", freePort(t), freePort(t), "active")
	u.waitStatus(t, "production", func(s appliance.DatabaseStatus) bool { return s.Role == production && s.State == "running" })
	if !u.Fit() {
		t.Fatal("a fresh production cluster is not fit")
	}
	u.halt()
	if err := u.setFit(false); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"active", "fenced"} {
		u.pair.set(role)
		u.run(t)
		st := u.waitStatus(t, role+": refused", func(s appliance.DatabaseStatus) bool { return strings.Contains(s.State, "incomplete") })
		if st.Role != "none" {
			t.Errorf("%s: an unfit cluster runs: %+v", role, st)
		}
		u.halt()
	}
	if u.Fit() {
		t.Error("Fit after an interrupted rewind")
	}
	if err := u.StartAfresh(context.Background()); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("start afresh while paired: %v", err)
	}

	// Unpaired, the cluster is stranded: the admin sets it aside and an empty database starts; the old
	// cluster is kept and listed.
	u.pair.set("single")
	u.run(t)
	st := u.waitStatus(t, "stranded", func(s appliance.DatabaseStatus) bool {
		return s.Stranded && strings.Contains(s.State, "no longer paired")
	})
	if len(st.SetAside) != 0 || st.Role != "none" {
		t.Fatalf("stranded: %+v", st)
	}
	if err := u.StartAfresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	st = u.waitStatus(t, "an empty production database", func(s appliance.DatabaseStatus) bool { return s.Role == production && s.State == "running" })
	if st.Stranded || len(st.SetAside) != 1 || !u.Fit() {
		t.Errorf("after starting afresh: %+v, fit %v", st, u.Fit())
	}
	if err := u.StartAfresh(context.Background()); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("start afresh with a sound cluster: %v", err)
	}
}

// promoteOnlyStreaming: a planned switchover to a mirror that does not stream (its production restarting) is
// refused: it would be promoted without what production committed meanwhile. Once it streams, it goes ahead
// and nothing committed on b is missing on a.
func promoteOnlyStreaming(t *testing.T, ctx context.Context, a, b *hostUnit, url string, portA, portB int) {
	a.streamWait = 3 * time.Second
	b.halt()
	if _, err := a.Promote(ctx); !errors.Is(err, appliance.ErrConflict) || !strings.Contains(err.Error(), "not streaming") {
		t.Errorf("promote a mirror that does not stream: %v", err)
	}
	if r := a.pair.roles.Get(); r != appliance.PairStandby {
		t.Errorf("the refused promotion changed the pair role to %s", r)
	}
	b.run(t)
	b.waitStatus(t, "b production again", func(s appliance.DatabaseStatus) bool { return s.Role == production && s.State == "running" })
	cb, err := pgx.Connect(ctx, at(url, portB))
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	if _, err := cb.Exec(ctx, "INSERT INTO matters SELECT generate_series(2000, 2999)"); err != nil {
		t.Fatal(err)
	}
	a.streamWait = time.Minute
	a.pair.mu.Lock()
	a.pair.onActive = func() { b.pair.set("standby"); b.Kick() }
	a.pair.mu.Unlock()
	if _, err := a.Promote(ctx); err != nil {
		t.Fatalf("promote a streaming mirror: %v", err)
	}
	if n, err := count(ctx, at(url, portA)); err != nil || n != 1113 {
		t.Errorf("after the switchover a has %d rows (%v), want 1113", n, err)
	}
}

// splitBrainRewound: a is made production too and takes a write b never sees (a forced split brain); then a
// stands down and rejoins: its own write is wound back, it follows b again.
func splitBrainRewound(t *testing.T, ctx context.Context, a *hostUnit, cb *pgx.Conn, url string, portA int) {
	a.pair.mu.Lock()
	a.pair.alone = true
	a.pair.mu.Unlock()
	a.pair.set("active")
	a.Kick()
	a.waitStatus(t, "a production on its own", func(s appliance.DatabaseStatus) bool { return s.Role == production && s.State == "running" })
	ca, err := pgx.Connect(ctx, at(url, portA))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Exec(ctx, "INSERT INTO matters SELECT generate_series(1000, 1999)"); err != nil {
		t.Fatal(err)
	}
	ca.Close(ctx)
	if _, err := cb.Exec(ctx, "INSERT INTO matters VALUES (113)"); err != nil {
		t.Fatal(err)
	}
	a.pair.mu.Lock()
	a.pair.alone = false
	a.pair.mu.Unlock()
	a.pair.set("standby")
	a.Kick()
	a.waitStatus(t, "a rejoined", func(s appliance.DatabaseStatus) bool {
		return s.Role == mirror && s.State == "running" && s.Upstream != ""
	})
	waitFor(t, time.Minute, "a has b's history", func() error {
		if n, err := count(ctx, at(url, portA)); err != nil || n != 113 {
			return fmt.Errorf("%d rows (%v)", n, err)
		}
		return nil
	})
}

// synchronousCommits: once on, a commit that returned is already applied on the mirror; when the mirror goes
// away, commits wait at most the degrade timeout; a mirror released before a planned restart makes nobody wait.
func synchronousCommits(t *testing.T, ctx context.Context, a, b *hostUnit, c *pgx.Conn, url string, portB int) {
	if err := a.SetPolicy(ctx, appliance.DatabasePolicy{Sync: true, DegradeAfterS: 2}); err != nil {
		t.Fatal(err)
	}
	st := a.waitStatus(t, "sync on", func(s appliance.DatabaseStatus) bool {
		return s.Sync == "sync" && strings.HasPrefix(s.Mirror, "streaming from")
	})
	if len(st.Slots) != 1 || st.Slots[0].Name != replicaSlot || !st.Slots[0].Active || st.Slots[0].WALStatus != "reserved" || st.Slots[0].SafeBytes == nil {
		t.Errorf("production's slots: %+v", st.Slots)
	}
	for i := 101; i <= 110; i++ {
		if _, err := c.Exec(ctx, "INSERT INTO matters VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
		if n, err := count(ctx, at(url, portB)); err != nil || n != i {
			t.Fatalf("after commit %d the mirror has %d rows (%v)", i, n, err)
		}
	}
	b.waitStatus(t, "the mirror reports the policy", func(s appliance.DatabaseStatus) bool { return s.Sync == "sync" })

	// The mirror goes away: commits wait at most the degrade timeout, then go on; the status says so.
	b.halt()
	start := time.Now()
	if _, err := c.Exec(ctx, "INSERT INTO matters VALUES (111)"); err != nil {
		t.Fatal(err)
	}
	t.Logf("commit with the mirror gone returned after %v (degrade after 2 s)", time.Since(start))
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("a commit waited %v for a missing mirror with degrade_after_s 2", d)
	}
	a.waitStatus(t, "degraded", func(s appliance.DatabaseStatus) bool { return s.Sync == "degraded" })
	b.run(t)
	a.waitStatus(t, "sync again once the mirror is back", func(s appliance.DatabaseStatus) bool { return s.Sync == "sync" })

	// A mirror that restarts on purpose (a firmware update) is released first: no commit waits for it, even
	// with a long degrade timeout; once it is back and caught up, commits wait for it again.
	if err := a.SetPolicy(ctx, appliance.DatabasePolicy{Sync: true, DegradeAfterS: 600}); err != nil {
		t.Fatal(err)
	}
	a.ReleaseMirror()
	a.waitStatus(t, "released", func(s appliance.DatabaseStatus) bool { return s.Sync == "degraded" })
	b.halt()
	start = time.Now()
	if _, err := c.Exec(ctx, "INSERT INTO matters VALUES (1112)"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a commit waited %v for a mirror released before its restart", d)
	}
	b.run(t)
	a.waitStatus(t, "sync again once the released mirror is back", func(s appliance.DatabaseStatus) bool { return s.Sync == "sync" })
	if _, err := c.Exec(ctx, "DELETE FROM matters WHERE id = 1112"); err != nil {
		t.Fatal(err)
	}
	if err := a.SetPolicy(ctx, appliance.DatabasePolicy{Sync: true, DegradeAfterS: 2}); err != nil {
		t.Fatal(err)
	}
}
