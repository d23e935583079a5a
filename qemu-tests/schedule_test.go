package qemutests

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The QEMU tests share this machine's few cores: -parallel N lets N VM tests run at a time, as go test's
// flag does, but in an order of our own (go test's is random: a long test released last ran alone at the
// end). A pair lab runs alone (alone): its heartbeats and PostgreSQL streams starve when other tests' VMs
// compete under TCG, and a starved unit fences itself. The labs go first, one after another; then the
// other tests, longest first by the durations on record below (seconds, from a fresh-clone run on a 2-core
// TCG machine; a test not listed is short).
var recorded = map[string]int{
	"TestFirmwareUpdate":             700,
	"TestFileShares":                 290,
	"TestBackupToS3":                 280,
	"TestSMART":                      270,
	"TestInstallAndBootFromDisks":    250,
	"TestStorageGrows":               250,
	"TestRAID5PowerCutWhileDegraded": 170,
	"TestEncryptedAtRest":            150,
	"TestTPMKeepsTheKey":             150,
	"TestRAID5FourDisksFailReplace":  180,
	"TestDatabaseProduction":         160,
	"TestDatabaseMirrorOfExternal":   150,
	"TestRAID5RefuseAdoptSpareCrash": 150,
	"TestRAID1FailPullRebootReplace": 130,
	"TestScrubResumesAfterReboot":    110,
	"TestFirstBootWaitsForAdopt":     100,
}

// queue hands out the -parallel slots.
type queue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	size    int
	free    int
	settle  time.Time       // the parallel tests are released together: the first waits this long for the others
	waiting map[string]bool // the waiting tests: true for those that run alone
	alone   map[*testing.T]bool
}

var queued *queue

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.parallel"); f != nil {
		n, err := strconv.Atoi(f.Value.String())
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "-parallel %s: want a number of tests\n", f.Value)
			os.Exit(2)
		}
		queued = &queue{size: n, free: n, waiting: map[string]bool{}, alone: map[*testing.T]bool{}}
		queued.cond = sync.NewCond(&queued.mu)
		f.Value.Set("1000") // go test releases them all; the queue lets n run
	}
	code := m.Run()
	removeFixtures()
	os.Exit(code)
}

// parallel marks t parallel and waits for a slot.
func parallel(t *testing.T) {
	t.Parallel()
	queued.take(t, false)
}

// alone marks t parallel and waits until it can run alone: a pair lab.
func alone(t *testing.T) {
	t.Parallel()
	queued.take(t, true)
}

func (q *queue) take(t *testing.T, alone bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.settle.IsZero() {
		q.settle = time.Now().Add(time.Second)
	}
	name, need := t.Name(), 1
	if alone {
		need = q.size
	}
	q.waiting[name] = alone
	for {
		if wait := time.Until(q.settle); wait > 0 {
			q.mu.Unlock()
			time.Sleep(wait)
			q.mu.Lock()
			continue
		}
		if q.free >= need && q.first() == name {
			break
		}
		q.cond.Wait()
	}
	delete(q.waiting, name)
	q.alone[t] = alone
	q.free -= need
	q.cond.Broadcast() // the next in line may take another free slot
	t.Cleanup(func() {
		q.mu.Lock()
		q.free += need
		q.mu.Unlock()
		q.cond.Broadcast()
	})
}

// runsAlone says whether t took every slot.
func (q *queue) runsAlone(t *testing.T) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.alone[t]
}

// first is the waiting test to start next: those that run alone, then the longest on record (by name
// among equals).
func (q *queue) first() string {
	best := ""
	for name, alone := range q.waiting {
		if best == "" || q.before(name, alone, best) {
			best = name
		}
	}
	return best
}

func (q *queue) before(a string, aAlone bool, b string) bool {
	if bAlone := q.waiting[b]; aAlone != bAlone {
		return aAlone
	}
	if recorded[a] != recorded[b] {
		return recorded[a] > recorded[b]
	}
	return a < b
}

// soak skips t unless the long soaks were asked for (make soak).
func soak(t *testing.T) {
	if os.Getenv("QEMU_SOAK") == "" {
		t.Skip("a long soak: make soak runs it")
	}
}
