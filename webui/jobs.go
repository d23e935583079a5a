package webui

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// A long action asked from a page (back up now, verify, restore, promote, adopt) runs as a job: the form
// answers at once with a redirect to the Jobs page, which shows each job's progress and result (in the
// colour of its outcome) as they come; a reload or another page never stops or repeats it. Jobs live in
// the web UI's memory: the last keptJobs, newest first.

const keptJobs = 50

// Job is one long action: what it does, who asked, and how it ended.
type Job struct {
	ID       int       `json:"id"`
	Kind     string    `json:"kind"`         // one of jobTitles' keys
	Of       string    `json:"of,omitempty"` // what it acts on: a backup, a disk
	By       string    `json:"by"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	State    string    `json:"state"`            // "running", "done", "failed"
	Result   string    `json:"result,omitempty"` // what happened, in a sentence
}

// jobTitles name each kind of job on the pages (with Of, when the title has a %s).
var jobTitles = map[string]string{
	"backup":         "Back up now",
	"verify":         "Verify backup %s",
	"restore":        "Restore from backup %s",
	"point-in-time":  "Restore to %s",
	"config-restore": "Restore the settings of backup %s",
	"promote":        "Promote this unit's database",
	"adopt":          "Take disk %s in",
}

// Running says whether the job goes on.
func (j Job) Running() bool { return j.State == jobRunning }

const (
	jobRunning = "running"
	jobDone    = "done"
	jobFailed  = "failed"
)

type jobs struct {
	mu   sync.Mutex
	next int
	list []*Job // newest first
}

// snapshot copies the jobs, newest first.
func (js *jobs) snapshot() []Job {
	js.mu.Lock()
	defer js.mu.Unlock()
	out := make([]Job, len(js.list))
	for i, j := range js.list {
		out[i] = *j
	}
	return out
}

// startJob runs do in the background for sess as a job of that kind. do says what
// happened: a sentence for a success, an error otherwise (its detail goes to the log, the page says
// what statusOf makes of it).
func (s *Server) startJob(sess appliance.Session, kind, of string, do func(context.Context) (string, error)) {
	js := &s.jobs
	js.mu.Lock()
	js.next++
	j := &Job{ID: js.next, Kind: kind, Of: of, By: sess.User, Started: time.Now(), State: jobRunning}
	js.list = slices.Insert(js.list, 0, j)
	if len(js.list) > keptJobs {
		js.list = js.list[:keptJobs]
	}
	js.mu.Unlock()
	s.log.Info("job started", "job", j.ID, "kind", kind, "of", of, "user", sess.User)
	go func() {
		result, err := do(s.jobCtx)
		js.mu.Lock()
		defer js.mu.Unlock()
		j.Finished = time.Now()
		if err != nil {
			j.State = jobFailed
			var f failed
			if _, j.Result = statusOf(err); errors.As(err, &f) {
				j.Result = string(f)
			}
			s.log.Warn("job failed", "job", j.ID, "kind", kind, "of", of, "user", sess.User, "err", err)
			return
		}
		j.State, j.Result = jobDone, result
		s.log.Info("job done", "job", j.ID, "kind", kind, "of", of, "user", sess.User, "result", result)
	}()
}

// failed ends a job that ran but did not succeed (a verification that found a difference): its sentence
// is the page's as it is, where an error's is what statusOf makes of it.
type failed string

func (f failed) Error() string { return string(f) }

// formJob starts a job from a form and answers with the Jobs page, the job's start as its notice.
func (s *Server) formJob(w http.ResponseWriter, r *http.Request, sess appliance.Session, kind, of string, do func(context.Context) (string, error)) {
	s.startJob(sess, kind, of, do)
	s.render(w, r, http.StatusOK, "jobs", pageData{Session: sess, Jobs: s.jobs.snapshot(), Notice: "Started. It runs on the unit: its result appears here; you may leave this page."})
}

func (s *Server) pageJobs(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.render(w, r, http.StatusOK, "jobs", pageData{Session: sess, Jobs: s.jobs.snapshot()})
}

func (s *Server) apiJobs(w http.ResponseWriter, _ *http.Request, _ appliance.Session) {
	writeJSON(w, http.StatusOK, map[string][]Job{"jobs": s.jobs.snapshot()})
}
