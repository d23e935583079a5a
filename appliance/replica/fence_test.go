package replica

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/hw/drbd"
)

// What the fence-peer helper tells DRBD: the writes of the unit that serves go on once the partner marked
// its copy outdated, or once the partner cannot come back and serve it; a unit that stood down lets its
// held writes complete only once its file server can answer nobody.
func TestFenceStep(t *testing.T) {
	r, _ := newReplica(t, true)
	alone, quiet := false, false
	r.Alone = func() bool { return alone }
	r.Quiet = func() bool { return quiet }
	unreachable := errors.New("the other unit did not answer: no route to host")

	if code, why := r.fenceStep(nil); code != drbd.FenceOutdated {
		t.Errorf("the partner marked its copy outdated: %d (%s), want %d", code, why, drbd.FenceOutdated)
	}
	if code, why := r.fenceStep(unreachable); code != 0 || !strings.Contains(why, "no route to host") {
		t.Errorf("the partner unreachable, the witness has not raised the epoch: %d (%s), want 0: the writes wait", code, why)
	}
	alone = true
	if code, _ := r.fenceStep(unreachable); code != drbd.FencePeerDown {
		t.Errorf("this unit alone (the partner died): %d, want %d", code, drbd.FencePeerDown)
	}

	r.Roles.Set(appliance.PairFenced) // cut off from both, it stood down
	if code, _ := r.fenceStep(unreachable); code != 0 {
		t.Errorf("stood down, file server not killed yet: %d, want 0", code)
	}
	quiet = true
	if code, _ := r.fenceStep(unreachable); code != drbd.FencePeerDown {
		t.Errorf("stood down, file server killed: %d, want %d", code, drbd.FencePeerDown)
	}

	u, _ := newReplica(t, true)
	u.Secret = func() []byte { return nil }
	if code, _ := u.fenceStep(unreachable); code != drbd.FencePeerDown {
		t.Errorf("unpaired: %d, want %d", code, drbd.FencePeerDown)
	}
}

// The partner is asked over the pair link while the rest is looked at: a partner that refuses (it serves
// too) or does not answer holds the writes; this unit becoming alone meanwhile ends the wait without the
// partner's answer; a partner that marks its copy outdated ends it too.
func TestFenceAsksThePartner(t *testing.T) {
	r, _ := newReplica(t, true)
	var mu sync.Mutex
	var asked []string
	answer, alone := http.StatusConflict, false
	r.Call = func(_ context.Context, method, path string, _ io.Reader, _ int64) (*http.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, method+" "+path)
		return &http.Response{StatusCode: answer, Body: io.NopCloser(strings.NewReader("this unit serves the documents"))}, nil
	}
	r.Alone = func() bool { mu.Lock(); defer mu.Unlock(); return alone }
	set := func(f func()) { mu.Lock(); f(); mu.Unlock() }

	for _, c := range []struct {
		name   string
		change func()
		want   int
	}{
		{"the partner marks its copy outdated", func() { answer = http.StatusNoContent }, drbd.FenceOutdated},
		{"the witness raised this unit's epoch", func() { alone = true }, drbd.FencePeerDown},
	} {
		set(func() { answer, alone, asked = http.StatusConflict, false, nil })
		got := make(chan int, 1)
		go func() { got <- r.fence(context.Background()) }()
		select {
		case code := <-got:
			t.Fatalf("%s: answered %d while the partner refuses", c.name, code)
		case <-time.After(1500 * time.Millisecond):
		}
		set(c.change)
		select {
		case code := <-got:
			if code != c.want {
				t.Errorf("%s: %d, want %d", c.name, code, c.want)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%s: still held", c.name)
		}
		set(func() {
			if len(asked) < 2 || asked[0] != "POST "+OutdatePath {
				t.Errorf("%s: asked %q, want the partner asked again while it refused", c.name, asked)
			}
		})
	}
}

// The partner's request: a standby still connected disconnects first (DRBD outdates only a copy that is
// not), then marks its copy outdated, and its next pass connects plainly (never dropping its data as after
// a split); the unit that serves, or the source of a resynchronisation, refuses.
func TestOutdateForThePartner(t *testing.T) {
	ctx := context.Background()
	r, f := newReplica(t, false)
	proc := filepath.Join(t.TempDir(), "drbd")
	r.DRBD.Proc = proc
	state := func(cs, ro, ds string) {
		if err := os.WriteFile(proc, []byte(" 0: cs:"+cs+" ro:"+ro+" ds:"+ds+" C r-----\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	state("WFConnection", "Secondary/Unknown", "UpToDate/DUnknown")
	if err := r.outdate(ctx); err != nil || len(f.calls) != 0 {
		t.Errorf("a copy made before the pairing (never connected to the partner): %v, calls %q; want it left as it is", err, f.calls)
	}
	r.cfg, r.loaded = config{Pair: r.pairID()}, true
	r.current, r.connecting = peer, true
	state("Connected", "Secondary/Primary", "UpToDate/UpToDate")
	if err := r.outdate(ctx); err != nil {
		t.Fatal(err)
	}
	if want := "drbdsetup disconnect ipv4:127.0.0.1:7789 ipv4:127.0.0.1:7789,drbdsetup outdate 0"; strings.Join(f.calls, ",") != want {
		t.Errorf("calls %q, want %q", f.calls, want)
	}
	if r.connecting {
		t.Error("still counted as connecting: the next pass would take the partner's answer for a refusal")
	}

	f.calls = nil
	state("WFConnection", "Secondary/Unknown", "UpToDate/DUnknown")
	if err := r.outdate(ctx); err != nil || strings.Join(f.calls, ",") != "drbdsetup outdate 0" {
		t.Errorf("not connected: %v, calls %q", err, f.calls)
	}
	f.calls = nil
	state("WFConnection", "Secondary/Unknown", "Outdated/DUnknown")
	if err := r.outdate(ctx); err != nil || len(f.calls) != 0 {
		t.Errorf("outdated already: %v, calls %q", err, f.calls)
	}
	state("SyncSource", "Secondary/Primary", "UpToDate/Inconsistent")
	if err := r.outdate(ctx); err == nil || len(f.calls) != 0 {
		t.Errorf("the partner is synchronised from this copy: %v, calls %q", err, f.calls)
	}
	r.Roles.Set(appliance.PairActive)
	state("WFConnection", "Primary/Unknown", "UpToDate/DUnknown")
	if err := r.outdate(ctx); err == nil || len(f.calls) != 0 {
		t.Errorf("on the unit that serves: %v, calls %q", err, f.calls)
	}
}

// The pair link's handler hands the request to the volume's goroutine and says what came of it.
func TestOutdateHandler(t *testing.T) {
	r, _ := newReplica(t, false)
	go func() {
		for _, err := range []error{nil, errors.New("drbdsetup outdate: exit status 17")} {
			done := <-r.requests()
			done <- err
		}
	}()
	for _, want := range []int{http.StatusNoContent, http.StatusConflict} {
		w := httptest.NewRecorder()
		r.OutdateHandler().ServeHTTP(w, httptest.NewRequest("POST", OutdatePath, nil))
		if w.Code != want {
			t.Errorf("%d %s, want %d", w.Code, w.Body, want)
		}
	}
}

// The helper's question over the socket: answered once the writes may go on; a daemon stopping answers
// nothing (the helper asks again).
func TestFenceSocket(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	sock := filepath.Join(t.TempDir(), "fence.sock")
	r, _ := newReplica(t, true)
	r.Call = func(context.Context, string, string, io.Reader, int64) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusNoContent, Body: io.NopCloser(strings.NewReader(""))}, nil
	}
	served := make(chan error, 1)
	go func() { served <- r.serveFence(ctx, sock) }()
	var code int
	var err error
	for range 100 {
		if code, err = AskFence(sock, "documents"); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || code != drbd.FenceOutdated {
		t.Fatalf("answer %d %v, want %d", code, err, drbd.FenceOutdated)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v %v", fi.Mode(), err)
	}

	r.Call = func(context.Context, string, string, io.Reader, int64) (*http.Response, error) {
		return nil, errors.New("unreachable")
	}
	asked := make(chan error, 1)
	go func() { _, err := AskFence(sock, "documents"); asked <- err }()
	select {
	case err := <-asked:
		t.Fatalf("answered while the writes must wait: %v", err)
	case <-time.After(2500 * time.Millisecond):
	}
	cancel()
	if err := <-asked; err == nil {
		t.Error("the daemon stopped, and the helper got an answer")
	}
	if err := <-served; err != nil {
		t.Error(err)
	}
}

// A takeover after the partner died: DRBD still sees the partner primary until its next ping. While this
// unit is not alone (a switchover: the partner releases it) it waits; alone, it drops the connection and
// promotes at once.
func TestPromoteDropsADeadPartner(t *testing.T) {
	r, f := newReplica(t, true)
	refuse := 0
	r.DRBD.Run = func(ctx context.Context, argv ...string) ([]byte, error) {
		f.run(ctx, argv...)
		if argv[1] == "primary" && refuse > 0 {
			refuse--
			return nil, errors.New("State change failed: (-1) Multiple primaries not allowed by config")
		}
		return nil, nil
	}
	alone := false
	r.Alone = func() bool { return alone }
	r.current = peer
	st := drbd.State{Connection: "Connected", Role: "Secondary", PeerRole: "Primary", Disk: "UpToDate", PeerDisk: "UpToDate"}

	refuse = 1
	if err := r.promote(context.Background(), st, false); !errors.Is(err, errPartnerPrimary) || f.saw("disconnect") != 0 {
		t.Errorf("a switchover, the partner not released yet: %v, calls %q; want errPartnerPrimary and no disconnect", err, f.calls)
	}
	refuse, alone, f.calls = 1, true, nil
	if err := r.promote(context.Background(), st, false); err != nil ||
		strings.Join(f.calls, ",") != "drbdsetup primary 0,drbdsetup disconnect ipv4:127.0.0.1:7789 ipv4:127.0.0.1:7789,drbdsetup primary 0" {
		t.Errorf("the partner dead, this unit alone: %v, calls %q", err, f.calls)
	}
}
