package firmware

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// pairSim is two units' roles and links, decided by the test.
type pairSim struct {
	roles map[string]string
	rigs  map[string]*updateRig
	down  map[string]bool // the unit does not answer (restarting)
	whole error
	dir   string
}

type simPair struct {
	sim       *pairSim
	me, other string
}

func (p simPair) Pair() appliance.PairStatus {
	return appliance.PairStatus{Paired: true, Name: p.me, Role: p.sim.roles[p.me],
		Peer: &appliance.PairPeer{Name: p.other, Reachable: !p.sim.down[p.other], Role: p.sim.roles[p.other]}}
}

func (p simPair) SetRole(_ context.Context, role string, _ bool) error {
	other := map[string]string{"active": "standby", "standby": "active"}[role]
	p.sim.roles[p.me], p.sim.roles[p.other] = role, other
	return nil
}

func (p simPair) Call(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Response, error) {
	if p.sim.down[p.other] {
		return nil, errors.New("connection refused")
	}
	req := httptest.NewRequestWithContext(ctx, method, path, body)
	req.ContentLength = size
	rec := httptest.NewRecorder()
	p.sim.rigs[p.other].u.LinkHandler().ServeHTTP(rec, req)
	return rec.Result(), nil
}

// newPairSim: unit-a active and unit-b standby, both running v2 (build 20).
func newPairSim(t *testing.T) *pairSim {
	s := &pairSim{roles: map[string]string{"unit-a": "active", "unit-b": "standby"}, rigs: map[string]*updateRig{}, down: map[string]bool{}, dir: t.TempDir()}
	s.rigs["unit-a"], s.rigs["unit-b"] = newRig(t), newRig(t)
	s.rigs["unit-b"].key = s.rigs["unit-a"].key // one vendor key
	for name := range s.rigs {
		s.boot(t, name, "v2", 20, false)
	}
	return s
}

// boot starts unit name on version: on trial (the new slot), blessed once healthy; or not, where a unit
// that came back tells how its update ended.
func (s *pairSim) boot(t *testing.T, name, version string, build int, trial bool) {
	r := s.rigs[name]
	r.u = r.updater(version, build)
	other := "unit-b"
	if name == other {
		other = "unit-a"
	}
	r.u.Pair, r.u.Whole, r.u.RolloutDir = simPair{s, name, other}, func(context.Context) error { return s.whole }, s.dir+"/"+name
	r.count = ""
	if trial {
		r.count = `\EFI\Linux\` + trying(version)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.u.Run(ctx) }()
	if trial {
		for run := r.record(t); run.State != appliance.FirmwareBlessed; run = r.record(t) {
			time.Sleep(time.Millisecond)
		}
	}
	cancel()
	<-done
	s.down[name] = false
}

// restarted waits for unit name to ask for its restart (into its new slot) and marks it down.
func (s *pairSim) restarted(t *testing.T, name string, n int32) {
	for s.rigs[name].restarts.Load() < n {
		time.Sleep(10 * time.Millisecond)
	}
	s.down[name] = true
}

// step runs one step of the rollout on unit name and returns the record.
func (s *pairSim) step(t *testing.T, name string) appliance.FirmwareRollout {
	t.Helper()
	u := s.rigs[name].u
	ro, ok := u.rollout()
	if !ok {
		t.Fatal("no rollout")
	}
	u.advance(context.Background(), ro)
	ro, _ = u.rollout()
	return ro
}

func steps(ro appliance.FirmwareRollout) string {
	var out []string
	for _, s := range ro.Steps {
		out = append(out, s.Action+" "+s.Unit+":"+s.State)
	}
	return strings.Join(out, ", ")
}

// A rolling update uploaded to the active unit: the standby first, blessed and whole again; then the
// switchover; then the unit itself, across its restart. Never both units restarting at once.
func TestRolloutStandbyFirst(t *testing.T) {
	s := newPairSim(t)
	a := s.rigs["unit-a"]
	b := a.bundle(t, "v3", 30)
	s.whole = errors.New("the mirror is copying")
	if _, err := a.u.Update(context.Background(), bytes.NewReader(b), 0, false, "admin"); !errors.Is(err, appliance.ErrConflict) {
		t.Errorf("a pair not whole: %v, want a conflict", err)
	}
	s.whole = nil
	run, err := a.u.Update(context.Background(), bytes.NewReader(b), int64(len(b)), false, "admin")
	if err != nil || run.State != "rolling update" || a.restarts.Load() != 0 {
		t.Fatalf("Update = %+v, %v", run, err)
	}
	if _, err := s.rigs["unit-b"].u.Update(context.Background(), bytes.NewReader(b), 0, false, "admin"); !errors.Is(err, appliance.ErrConflict) || !strings.Contains(err.Error(), "started on unit-a") {
		t.Errorf("an upload on the other unit meanwhile: %v", err)
	}
	if ro := s.step(t, "unit-a"); steps(ro) != "update unit-b:running, switchover unit-b:waiting, update unit-a:waiting" {
		t.Fatalf("after the first step: %s (%s)", steps(ro), ro.Reason)
	}
	s.restarted(t, "unit-b", 1)
	if ro := s.step(t, "unit-a"); !strings.Contains(ro.Reason, "unit-b restarts") {
		t.Errorf("while B restarts: %q", ro.Reason)
	}
	s.boot(t, "unit-b", "v3", 30, true)
	if ro := s.step(t, "unit-a"); !strings.HasPrefix(steps(ro), "update unit-b:done") || a.restarts.Load() != 0 {
		t.Fatalf("B blessed: %s (%s)", steps(ro), ro.Reason)
	}
	s.step(t, "unit-a") // the switchover asked for
	if ro := s.step(t, "unit-a"); s.roles["unit-b"] != "active" || !strings.Contains(steps(ro), "switchover unit-b:done") {
		t.Fatalf("switchover: roles %v, %s (%s)", s.roles, steps(ro), ro.Reason)
	}
	s.step(t, "unit-a")
	s.restarted(t, "unit-a", 1)
	s.boot(t, "unit-a", "v3", 30, true)
	ro := s.step(t, "unit-a")
	if ro = s.step(t, "unit-a"); ro.State != appliance.RolloutDone || steps(ro) != "update unit-b:done, switchover unit-b:done, update unit-a:done" {
		t.Fatalf("the end: %s %s (%s)", ro.State, steps(ro), ro.Reason)
	}
	if _, err := os.Stat(a.u.bundlePath()); !os.IsNotExist(err) {
		t.Errorf("the kept bundle is still there: %v", err)
	}
	for name, r := range s.rigs {
		if st, _ := r.u.Firmware(context.Background()); st.Version != "v3" || slots2(st) != "v3:running v2:previous" {
			t.Errorf("%s at the end: %s %s", name, st.Version, slots2(st))
		}
	}
}

func slots2(st appliance.FirmwareStatus) string {
	var out []string
	for _, s := range st.Slots {
		out = append(out, s.Version+":"+s.State)
	}
	return strings.Join(out, " ")
}

// Uploaded to the standby, which updates itself first. Its update does not take (the boot loader went back
// to the old slot): the rollout stops, the active unit untouched.
func TestRolloutStopsWhenTheStandbyComesBack(t *testing.T) {
	s := newPairSim(t)
	a, sb := s.rigs["unit-a"], s.rigs["unit-b"]
	before := map[string]map[string]string{}
	for p, files := range a.fat.parts {
		before[p] = maps.Clone(files)
	}
	b := a.bundle(t, "v3", 30)
	if _, err := sb.u.Update(context.Background(), bytes.NewReader(b), 0, false, "admin"); err != nil {
		t.Fatal(err)
	}
	if ro := s.step(t, "unit-b"); !strings.HasPrefix(steps(ro), "update unit-b:running") {
		t.Fatalf("B updates itself first: %s (%s)", steps(ro), ro.Reason)
	}
	s.restarted(t, "unit-b", 1)
	s.boot(t, "unit-b", "v2", 20, false) // back on v2 after its tries
	ro := s.step(t, "unit-b")
	if ro.State != appliance.RolloutStopped || !strings.Contains(ro.Reason, "did not take (rolled back") || !strings.HasPrefix(steps(ro), "update unit-b:failed") {
		t.Errorf("after B came back: %s %s (%s)", ro.State, steps(ro), ro.Reason)
	}
	if s.roles["unit-a"] != "active" || a.restarts.Load() != 0 || !maps.EqualFunc(a.fat.parts, before, maps.Equal) {
		t.Errorf("the active unit was touched: roles %v, %d restarts, %v", s.roles, a.restarts.Load(), a.fat.parts)
	}
}
