package qemutests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
)

var (
	reLoadFailing = regexp.MustCompile(`debug: pgload failing at (\d+)`)
	reLoadBack    = regexp.MustCompile(`debug: pgload resumed at (\d+)`)
	reLoadSlow    = regexp.MustCompile(`debug: pgload slow commit at \d+: (\d+) ms`)
)

// outages are the load's outages in the PC's console output: from a failure to the next commit, and every
// commit that hung over a second (waiting for a mirror that went away, say).
func outages(console string) []time.Duration {
	var out []time.Duration
	fails := reLoadFailing.FindAllStringSubmatchIndex(console, -1)
	for _, f := range fails {
		at, _ := strconv.Atoi(console[f[2]:f[3]])
		if m := reLoadBack.FindStringSubmatch(console[f[1]:]); m != nil {
			back, _ := strconv.Atoi(m[1])
			out = append(out, time.Duration(back-at)*time.Millisecond)
		}
	}
	for _, m := range reLoadSlow.FindAllStringSubmatch(console, -1) {
		ms, _ := strconv.Atoi(m[1])
		out = append(out, time.Duration(ms)*time.Millisecond)
	}
	return out
}

// sqlErrors are the answers other than a lost connection (classes 57 and 08) the client got.
func sqlErrors(console string) []string {
	var out []string
	for _, m := range reLoadSQLError.FindAllStringSubmatch(console, -1) {
		if class := m[1][:2]; class != "57" && class != "08" {
			out = append(out, m[1]+" "+m[2])
		}
	}
	return out
}

// rolling is what a rolling update under a client load did.
type rolling struct {
	switchover  time.Duration   // the client's outage in a plain switchover just before
	outages     []time.Duration // the client's outages during the rolling update
	acked, lost int
	errors      []string // SQL errors other than a lost connection
	took        time.Duration
}

// rollingUpdate: a pair of installed units, the office PC committing through the service address. A plain
// switchover (A to B) under the load is measured; then the bundle (version v) is uploaded to the active
// unit and the pair updates itself: A (the standby now) first, then a switchover, then B. It returns when
// both run v, blessed.
func rollingUpdate(t testing.TB, l *dbLab, bundle []byte, v string) rolling {
	for _, u := range []*pairUnit{l.a, l.b} {
		if _, err := u.Expect(regexp.MustCompile(`firmware installed: the unit boots from this disk`), 3*time.Minute); err != nil {
			t.Fatalf("%s: %v\n%s", u.Name(), err, tail(u.Console()))
		}
	}
	var r rolling
	l.startLoad(t)
	from := len(l.pc.Console())
	if code, body := l.b.call("POST", "/api/v1/database/promote", l.b.tok, ""); code != 200 {
		t.Fatalf("promote B = %d %s", code, body)
	}
	waitRoles(t, "after the switchover to B", time.Minute, l.a, l.b, "standby", "active")
	l.waitCommits(t, 0)
	if o := outages(l.pc.Console()[from:]); len(o) > 0 {
		r.switchover = slices.Max(o)
	}
	l.a.waitDB(t, "A mirrors B", 5*time.Minute, mirrorsPartner)
	l.b.waitDB(t, "B streams to A", 2*time.Minute, func(s dbStatus) bool { return s.Sync == "sync" })

	from = len(l.pc.Console())
	start := time.Now()
	if code, body := l.b.upload(l.b.tok, bundle, ""); code != 202 {
		t.Fatalf("rolling update uploaded to B = %d %s", code, body)
	}
	l.a.tok = l.a.booted(v, 10*time.Minute)
	l.b.tok = l.b.booted(v, 25*time.Minute)
	var ro *appliance.FirmwareRollout
	eventually(t, 10*time.Minute, "the rolling update done", func() error {
		st := l.b.firmware(l.b.tok)
		if ro = st.Rollout; ro == nil || ro.State != appliance.RolloutDone || st.Trial {
			return fmt.Errorf("%+v", ro)
		}
		return nil
	})
	r.took = time.Since(start)
	l.waitCommits(t, 0)
	console := l.pc.Console()[from:]
	r.outages, r.errors = outages(console), sqlErrors(console)
	r.acked, r.lost = l.stopLoad(t, l.a)
	return r
}

// A pair of boxes installed from the install disk, the office PC committing through the service address
// (synchronous mode). The bundle uploaded to the active unit goes to the standby over the pair link; the
// standby updates first, comes back blessed and mirroring, takes over, then the other unit updates. Both
// end on the new firmware, blessed; never both active; no acknowledged commit lost; the client meets
// dropped connections only, each outage measured. A long soak (two installs, four firmware boots):
// make soak; make bench measures the same run.
func TestPairRollingUpdate(t *testing.T) {
	soak(t)
	alone(t)
	im := image(t)
	next, err := os.ReadFile(filepath.Join(im.root, im.TestBundles["next"]))
	if err != nil {
		t.Fatal(err)
	}
	vNext := im.Version + "-next"
	l := newDBLabOn(t, newLab(t, labConfig{timeoutMS: 800, installed: true}), true)
	chk := startChecker(t, l.a, l.b)
	defer chk.finish()
	r := rollingUpdate(t, l, next, vNext)
	t.Logf("rolling update: %v upload to both blessed; client outages %v (a plain switchover: %v); %d commits acknowledged, %d lost",
		r.took.Round(time.Second), r.outages, r.switchover, r.acked, r.lost)
	if r.lost != 0 || r.acked == 0 {
		t.Errorf("%d of %d acknowledged commits lost", r.lost, r.acked)
	}
	for _, e := range r.errors {
		t.Errorf("the client got an SQL error through the service address: %s", e)
	}
	for _, u := range []*pairUnit{l.a, l.b} {
		if st := u.firmware(u.tok); st.Version != vNext || slots(st) != vNext+":running "+im.Version+":previous" {
			t.Errorf("%s after the rolling update: %s %s %+v", u.Name(), st.Version, slots(st), st.Update)
		}
	}
	waitRoles(t, "after the rolling update", time.Minute, l.a, l.b, "active", "standby")
	if code, body := l.b.call("GET", "/pair", l.b.tok, ""); code != 200 || !regexp.MustCompile(`(?s)id="rollout".*done`).MatchString(body) {
		t.Errorf("the pair page does not show the rolling update: %d\n%s", code, body)
	}
}

// BenchmarkPairRollingUpdate: the rolling update of a pair under a client load, its longest client outage
// beside a plain switchover's in the same lab, and the commits lost (goal: none).
func BenchmarkPairRollingUpdate(b *testing.B) {
	im := image(b)
	next, err := os.ReadFile(filepath.Join(im.root, im.TestBundles["next"]))
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		l := newDBLabOn(b, newLab(b, labConfig{timeoutMS: 800, installed: true}), true)
		r := rollingUpdate(b, l, next, im.Version+"-next")
		l.close()
		longest := slices.Max(append(r.outages, 0))
		b.ReportMetric(longest.Seconds(), "s/longest-outage")
		b.ReportMetric(r.switchover.Seconds(), "s/plain-switchover")
		b.ReportMetric(float64(r.lost), "commits-lost")
		b.Logf("rolling update of a pair: %v upload to both blessed; longest client outage %v beside a plain switchover %v (%.2fx; goal: no worse); "+
			"%d outages %v; %d commits acknowledged, %d lost (goal 0); SQL errors other than a dropped connection: %d",
			r.took.Round(time.Second), longest, r.switchover, float64(longest)/float64(max(r.switchover, time.Millisecond)), len(r.outages), r.outages, r.acked, r.lost, len(r.errors))
	}
}
