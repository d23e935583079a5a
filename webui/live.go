package webui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// Live dashboard timing: the dashboard is re-read every liveEvery and sent when it changed; a comment
// keeps idle connections open through proxies every liveKeepalive.
const (
	liveEvery     = 2 * time.Second
	liveKeepalive = 15 * time.Second
)

// apiEvents streams the dashboard to the status page, or another page's live section (livePart)
// (server-sent events): an "live" event carrying the rendered section (JSON string of HTML, escaped by the templates) whenever it changes, and an
// "end" event when the session ends, after which the page reloads into the login form.
func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	rc := http.NewResponseController(w)
	// The server's timeouts are for ordinary answers (its read timeout would end the stream's context).
	_ = rc.SetWriteDeadline(time.Time{})
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(liveEvery)
	defer tick.Stop()
	var last []byte
	lastWrite := time.Now()
	for {
		if _, err := s.auth.Current(token(r)); err != nil {
			fmt.Fprint(w, "event: end\ndata: {}\n\n")
			_ = rc.Flush()
			return
		}
		var buf bytes.Buffer
		page, part, data := s.livePart(r)
		if err := s.pages[lang(r)][page].ExecuteTemplate(&buf, part, data); err != nil {
			s.log.Error("live dashboard", "err", err)
			return
		}
		shown := labelCells(buf.Bytes())
		switch {
		case !bytes.Equal(shown, last):
			data, _ := json.Marshal(string(shown))
			if _, err := fmt.Fprintf(w, "event: live\ndata: %s\n\n", data); err != nil {
				return
			}
			last, lastWrite = shown, time.Now()
		case time.Since(lastWrite) >= liveKeepalive:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			lastWrite = time.Now()
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		case <-tick.C:
		}
	}
}

// livePart is the page, template and data of the section a stream sends: ?part=jobs the Jobs page's list,
// ?part=storage the storage page's arrays (their rebuilds moving on), otherwise the dashboard.
func (s *Server) livePart(r *http.Request) (page, part string, data any) {
	switch r.URL.Query().Get("part") {
	case "jobs":
		return "jobs", "jobs-live", s.jobs.snapshot()
	case "storage":
		st, err := s.disks.Storage(r.Context())
		if err != nil {
			s.log.Warn("live storage", "err", err)
		}
		return "storage", "arrays", st.Arrays
	}
	return "status", "live", s.dashboard(r.Context())
}
