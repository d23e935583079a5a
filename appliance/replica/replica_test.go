package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/hw/drbd"
)

// fake records the tools' argv; the decisions are tested here, the tools on a real kernel in QEMU
// (TestFileShares, TestPairFailover).
type fake struct{ calls []string }

func (f *fake) run(_ context.Context, argv ...string) ([]byte, error) {
	f.calls = append(f.calls, strings.Join(argv, " "))
	return nil, nil
}

func (f *fake) saw(sub string) int {
	n := 0
	for _, c := range f.calls {
		if strings.Contains(c, sub) {
			n++
		}
	}
	return n
}

func newReplica(t *testing.T, leads bool) (*Replica, *fake) {
	f := &fake{}
	key := []byte("0123456789abcdef0123456789abcdef")
	r := &Replica{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Dir: t.TempDir(),
		DRBD:   &drbd.DRBD{Setup: "drbdsetup", Meta: "drbdmeta", Resource: "documents", Run: f.run, Proc: t.TempDir() + "/none"},
		Device: func() string { return "/dev/lawbox/documents" }, Roles: &appliance.Feed[appliance.PairRole]{}, PartnerLeads: func() bool { return !leads },
		Peers: func() []string { return []string{"127.0.0.1"} }, Secret: func() []byte { return key }}
	r.Roles.Set(appliance.PairStandby)
	if leads {
		r.Roles.Set(appliance.PairActive)
	}
	return r, f
}

var peer = drbd.Peer{Local: "127.0.0.1:7789", Remote: "127.0.0.1:7789", Secret: "s"}

func TestFirstConnectIsPlain(t *testing.T) {
	r, f := newReplica(t, false)
	r.connect(context.Background(), peer, config{})
	if f.saw("connect documents") != 1 || f.saw("discard") != 0 || f.saw("create-md") != 0 {
		t.Errorf("calls %q", f.calls)
	}
}

func TestActiveNeverDropsItsCopy(t *testing.T) {
	for _, c := range []config{{}, {Used: true}, {Pair: "x"}} {
		r, f := newReplica(t, true)
		c.Pair = strings.ReplaceAll(c.Pair, "x", r.pairID())
		r.connecting = true // refused: the partner said no
		for range 5 {
			r.connect(context.Background(), peer, c)
		}
		if f.saw("discard") != 0 || f.saw("create-md") != 0 || f.saw("down") != 0 || f.saw("connect documents") != 5 {
			t.Errorf("active unit, %+v: calls %q", c, f.calls)
		}
	}
}

func TestStandbyOfThePairDropsItsChangesSinceTheSplit(t *testing.T) {
	r, f := newReplica(t, false)
	c := config{Pair: r.pairID(), Used: true}
	r.connecting = true
	for range 5 {
		r.connect(context.Background(), peer, c)
	}
	if f.saw("--discard-my-data") != 3 || f.saw("create-md") != 0 {
		t.Errorf("calls %q: want 3 reconnections dropping this side's changes, then none", f.calls)
	}
	if r.Status().Problem == "" {
		t.Error("no problem told after the copies could not be reconciled")
	}
}

func TestStandbyNeverInThePair(t *testing.T) {
	// It holds no file: its volume is made afresh and filled from the partner.
	r, f := newReplica(t, false)
	r.connecting = true
	r.connect(context.Background(), peer, config{Pair: "another pair"})
	if f.saw("down documents") != 1 || f.saw("create-md") != 1 || f.saw("discard") != 0 || r.connecting {
		t.Errorf("calls %q", f.calls)
	}
	// Neither unit is active (manual mode, before an admin chose): nothing is replaced.
	r, f = newReplica(t, false)
	r.PartnerLeads = func() bool { return false }
	r.connecting = true
	r.connect(context.Background(), peer, config{})
	if f.saw("create-md") != 0 || f.saw("down") != 0 {
		t.Errorf("calls %q with no active partner", f.calls)
	}
	// It holds files: they are never dropped; the admin is told.
	r, f = newReplica(t, false)
	r.connecting = true
	r.connect(context.Background(), peer, config{Used: true})
	if len(f.calls) != 0 || !strings.Contains(r.Status().Problem, "Nothing was discarded") {
		t.Errorf("calls %q, problem %q", f.calls, r.Status().Problem)
	}
}

func TestUnpairedHasNoPairID(t *testing.T) {
	r, _ := newReplica(t, true)
	r.Secret = func() []byte { return nil }
	if r.pairID() != "" {
		t.Error("a pair id without a pair key")
	}
	if _, ok := r.peer(); ok {
		t.Error("a peer without a pair key")
	}
}

// A copy may serve as the pair's only when complete and, if it is the standby's, not behind: not connected
// while the active partner was heard, it may lack what the partner stored alone, until it is connected and
// complete again.
func TestJudge(t *testing.T) {
	up := drbd.State{Role: "Secondary", Disk: "UpToDate", Connection: "Connected"}
	apart := drbd.State{Role: "Secondary", Disk: "UpToDate", Connection: "WFConnection"}
	syncing := drbd.State{Role: "Secondary", Disk: "Inconsistent", Connection: "SyncTarget"}
	primary := drbd.State{Role: "Primary", Disk: "UpToDate", Connection: "WFConnection"}
	for _, c := range []struct {
		name                       string
		st                         drbd.State
		paired, partnerLeads, was  bool
		wantUnfit, wantStillBehind bool
	}{
		{"connected and complete", up, true, true, false, false, false},
		{"connected again after being behind", up, true, true, true, false, false},
		{"being synchronised", syncing, true, true, true, true, true},
		{"the link broke, the active partner heard", apart, true, true, false, true, true},
		{"the partner died with the link: not behind", apart, true, false, false, false, false},
		{"behind, then the partner died: still behind", apart, true, false, true, true, true},
		{"the primary is never behind", primary, true, true, false, false, false},
		{"an unpaired unit's own copy", apart, false, true, true, false, false},
	} {
		unfit, behind := judge(c.st, c.paired, c.partnerLeads, c.was)
		if unfit != c.wantUnfit || behind != c.wantStillBehind {
			t.Errorf("%s: unfit %v, behind %v; want %v, %v", c.name, unfit, behind, c.wantUnfit, c.wantStillBehind)
		}
	}
}

// fakeLink stands for the pair link: inside tells whether the partner runs it.
type fakeLink struct {
	inside bool
	via    []string
	closed int
}

func (l *fakeLink) Via(addr string) (string, string, bool, error) {
	l.via = append(l.via, addr)
	return "198.19.255.1", "198.19.255.2", l.inside, nil
}

func (l *fakeLink) Close() error { l.closed++; return nil }

// The replication connects between the link's inner addresses when the partner runs the link, on the LAN
// when it does not; when that changes while not connected (the partner restarted on another firmware), the
// old connection is dropped and the new one made; unpaired, the link is removed.
func TestReplicationInsideThePairLink(t *testing.T) {
	r, f := newReplica(t, false)
	link := &fakeLink{inside: true}
	r.Link = link
	proc := filepath.Join(t.TempDir(), "drbd")
	r.DRBD.Proc = proc
	state := func(cs string) {
		if err := os.WriteFile(proc, []byte(" 0: cs:"+cs+" ro:Secondary/Unknown ds:UpToDate/DUnknown C r-----\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// passAs runs a pass of the replica with DRBD in connection state cs.
	passAs := func(cs string) {
		state(cs)
		f.calls = nil
		r.pass(context.Background())
	}
	passAs("StandAlone")
	if f.saw("connect documents ipv4:198.19.255.1:7789 ipv4:198.19.255.2:7789") != 1 || len(link.via) == 0 || link.via[0] != "127.0.0.1" {
		t.Fatalf("inside the link: calls %q, link asked for %q", f.calls, link.via)
	}
	if !r.Status().Encrypted {
		t.Error("status: replication not said to be encrypted")
	}

	// The partner comes back on a firmware without the link: connecting inside it never meets it.
	link.inside = false
	passAs("WFConnection")
	if f.saw("disconnect ipv4:198.19.255.1:7789 ipv4:198.19.255.2:7789") != 1 {
		t.Fatalf("moving out of the link: calls %q", f.calls)
	}
	passAs("StandAlone")
	if f.saw("connect documents ipv4:127.0.0.1:7789 ipv4:127.0.0.1:7789") != 1 || f.saw("discard") != 0 || f.saw("create-md") != 0 {
		t.Fatalf("on the LAN: calls %q", f.calls)
	}
	if r.Status().Encrypted {
		t.Error("status: replication on the LAN said to be encrypted")
	}

	// Connected, a change of the partner's view does not break the connection.
	link.inside = true
	passAs("Connected")
	if f.saw("disconnect") != 0 {
		t.Errorf("connected: calls %q", f.calls)
	}

	// Unpaired: the replication stops and the link goes.
	r.Peers = func() []string { return nil }
	r.pass(context.Background())
	if link.closed != 1 || f.saw("down documents") != 1 {
		t.Errorf("unpaired: link closed %d times, calls %q", link.closed, f.calls)
	}
}

// Growing the documents: only on the unit that serves them; in a pair only while the partner's copy is
// connected and complete, the partner's volume first (to the same size), and nothing here when it refuses.
func TestGrowPartnerFirst(t *testing.T) {
	r, f := newReplica(t, true)
	proc := filepath.Join(t.TempDir(), "drbd")
	r.DRBD.Proc = proc
	state := func(cs, ds string) {
		if err := os.WriteFile(proc, []byte(" 0: cs:"+cs+" ro:Primary/Secondary ds:"+ds+" C r-----\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var steps []string
	size := int64(1 << 30)
	r.Extend = func(_ context.Context, to int64) (int64, error) {
		if to > size {
			steps = append(steps, fmt.Sprintf("extend %d", to))
			size = to
		}
		return size, nil
	}
	partnerAnswer := http.StatusNoContent
	r.Call = func(_ context.Context, method, path string, body io.Reader, _ int64) (*http.Response, error) {
		b, _ := io.ReadAll(body)
		steps = append(steps, fmt.Sprintf("partner %s %s %s", method, path, b))
		return &http.Response{StatusCode: partnerAnswer, Body: io.NopCloser(strings.NewReader("no room"))}, nil
	}
	r.set(func(s *appliance.Replication) { s.Mounted = true })

	state("WFConnection", "UpToDate/DUnknown")
	if err := r.Grow(context.Background(), 64<<20); !errors.Is(err, appliance.ErrConflict) || len(steps) != 0 {
		t.Fatalf("partner not connected: %v, steps %q", err, steps)
	}
	state("Connected", "UpToDate/UpToDate")
	partnerAnswer = http.StatusConflict
	if err := r.Grow(context.Background(), 64<<20); !errors.Is(err, appliance.ErrConflict) || !strings.Contains(err.Error(), "no room") ||
		len(steps) != 1 || f.saw("resize") != 0 {
		t.Fatalf("partner refuses: %v, steps %q, calls %q", err, steps, f.calls)
	}
	steps, partnerAnswer = nil, http.StatusNoContent
	err := r.Grow(context.Background(), 64<<20) // fs.Grow fails on this host (no DRBD device): the steps before it are done
	want := []string{`partner POST /link/v1/documents/grow {"size_bytes":1140850688}`, "extend 1140850688"}
	if fmt.Sprint(steps) != fmt.Sprint(want) || f.saw("drbdsetup resize 0 --assume-clean") != 1 || err == nil {
		t.Fatalf("grow: %v, steps %q, calls %q; want steps %q", err, steps, f.calls, want)
	}

	r.Roles.Set(appliance.PairStandby)
	if err := r.Grow(context.Background(), 64<<20); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("on the standby: %v", err)
	}
}

// While the partner's copy is not connected, the unit that serves the documents has the partner's volume
// made as large as its own (DRBD refuses a smaller partner): asked once every sizeEvery, not again while
// connected; a partner that cannot grow is said on the page, one that does not answer yet is asked later.
func TestPartnerVolumeMatchesOurs(t *testing.T) {
	r, _ := newReplica(t, true)
	r.Extend = func(_ context.Context, to int64) (int64, error) { return 5 << 30, nil }
	var asked []string
	answer, reachable := http.StatusNoContent, true
	r.Call = func(_ context.Context, method, path string, body io.Reader, _ int64) (*http.Response, error) {
		if !reachable {
			return nil, errors.New("dial tcp 198.19.255.2:443: connect: no route to host")
		}
		b, _ := io.ReadAll(body)
		asked = append(asked, fmt.Sprintf("%s %s %s", method, path, b))
		return &http.Response{StatusCode: answer, Body: io.NopCloser(strings.NewReader("the documents can grow by 0 B at most"))}, nil
	}
	ctx := context.Background()
	r.matchPartnerSize(ctx, true)
	r.matchPartnerSize(ctx, true)
	if want := []string{`POST /link/v1/documents/grow {"size_bytes":5368709120}`}; fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Fatalf("asked %q, want %q once", asked, want)
	}
	if p := r.Status().Problem; p != "" {
		t.Errorf("a partner that grew: problem %q", p)
	}
	r.matchPartnerSize(ctx, false) // connected: nothing asked, and asked again at the next disconnection
	answer = http.StatusConflict
	r.matchPartnerSize(ctx, true)
	if len(asked) != 2 || r.Status().Problem != sizeProblem {
		t.Errorf("a partner without room: asked %d times, problem %q", len(asked), r.Status().Problem)
	}
	r.matchPartnerSize(ctx, false)
	reachable = false
	r.matchPartnerSize(ctx, true)
	if p := r.Status().Problem; p == sizeProblem || r.sizeFailed {
		t.Errorf("a partner that does not answer yet is no size problem: %q", p)
	}
}
