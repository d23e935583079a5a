package webui

import (
	"errors"
	"fmt"
	"html"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
)

func (s *Server) apiDisks(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	ds, err := s.health.Disks(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ds)
}

func (s *Server) apiRefresh(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	if err := s.health.Refresh(r.Context(), r.PathValue("serial")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiSelfTest(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var body struct {
		Kind string `json:"kind"`
	}
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("self-test requested", "disk", r.PathValue("serial"), "kind", body.Kind, "user", sess.User, "remote", remote(r))
	if err := s.health.SelfTest(r.Context(), r.PathValue("serial"), body.Kind); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) apiAck(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.log.Info("alert acknowledged", "disk", r.PathValue("serial"), "key", r.PathValue("key"), "user", sess.User, "remote", remote(r))
	if err := s.health.Acknowledge(r.Context(), r.PathValue("serial"), r.PathValue("key")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiHealthPolicy(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	var p struct {
		PollMinutes int `json:"poll_minutes"`
	}
	if err := decode(r, &p); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("SMART policy changed", "poll_minutes", p.PollMinutes, "user", sess.User, "remote", remote(r))
	if err := s.health.SetPollMinutes(r.Context(), p.PollMinutes); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiHistory(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	h, err := s.health.History(r.Context(), r.PathValue("serial"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// diskPage is what the disk page shows.
type diskPage struct {
	Disk  appliance.DiskHealth
	Graph template.HTML // SVG of the temperature history
	// Counters: the history of each SMART counter that ever was not zero (reallocated sectors, media
	// errors, ...), by its key
	Counters []counterGraph
	Range    string // the graphs' range: "day", "week", or "" (everything kept)
}

type counterGraph struct {
	Key   string
	Graph template.HTML
}

func (s *Server) pageDisk(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.renderDisk(w, r, sess, "", nil)
}

func (s *Server) renderDisk(w http.ResponseWriter, r *http.Request, sess appliance.Session, notice string, actionErr error) {
	serial := r.PathValue("serial")
	ds, err := s.health.Disks(r.Context())
	d := pageData{Session: sess, Notice: notice}
	if err == nil {
		err = fmt.Errorf("disk %s: %w", serial, appliance.ErrNotFound)
		for _, x := range ds {
			if x.Serial == serial {
				d.Disk.Disk, err = x, actionErr
			}
		}
	}
	if err != nil {
		code, msg := statusOf(err)
		d.Error, d.Notice = msg, ""
		if errors.Is(err, appliance.ErrNotFound) {
			s.render(w, r, code, "disk", d)
			return
		}
	}
	if h, err := s.health.History(r.Context(), serial); err == nil {
		d.Disk.Range = r.URL.Query().Get("range")
		if span, ok := historyRanges[d.Disk.Range]; ok && span > 0 {
			from := time.Now().Add(-span)
			h = slices.DeleteFunc(slices.Clone(h), func(p appliance.HistoryPoint) bool { return p.Time.Before(from) })
		} else if !ok {
			d.Disk.Range = ""
		}
		d.Disk.Graph = temperatureSVG(translator(lang(r)), h, s.sys.TimeZone(), d.Disk.Disk.SMART.HotC)
		d.Disk.Counters = counterSVGs(translator(lang(r)), h, s.sys.TimeZone())
	}
	s.render(w, r, http.StatusOK, "disk", d)
}

func (s *Server) formRefresh(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.renderDisk(w, r, sess, "SMART data read again.", s.health.Refresh(r.Context(), r.PathValue("serial")))
}

func (s *Server) formSelfTest(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	kind := r.PostFormValue("kind")
	s.log.Info("self-test requested", "disk", r.PathValue("serial"), "kind", kind, "user", sess.User, "remote", remote(r))
	s.renderDisk(w, r, sess, "The "+kind+" self-test has started; its result appears here when the disk is done.",
		s.health.SelfTest(r.Context(), r.PathValue("serial"), kind))
}

func (s *Server) formAck(w http.ResponseWriter, r *http.Request, sess appliance.Session) {
	s.log.Info("alert acknowledged", "disk", r.PathValue("serial"), "key", r.PathValue("key"), "user", sess.User, "remote", remote(r))
	s.renderDisk(w, r, sess, "Alert acknowledged: it comes back if the value changes.",
		s.health.Acknowledge(r.Context(), r.PathValue("serial"), r.PathValue("key")))
}

// historyRanges are the disk page's graph ranges (?range=): the last day, week, or everything kept
// (every sample of 48 hours, one a day before).
var historyRanges = map[string]time.Duration{"": 0, "day": 24 * time.Hour, "week": 7 * 24 * time.Hour}

// temperatureSVG draws the temperature history, its times in zone, with the disk's limit (°C; 0: none)
// as a dashed line.
func temperatureSVG(T translate, h []appliance.HistoryPoint, zone *time.Location, limit int) template.HTML {
	ts, vs := make([]time.Time, len(h)), make([]float64, len(h))
	for i, p := range h {
		ts[i], vs[i] = p.Time.In(zone), float64(p.TemperatureC)
	}
	if limit > 0 {
		return lineSVG(T, T("temperature history"), "%.0f °C", 2, ts, vs, float64(limit))
	}
	return lineSVG(T, T("temperature history"), "%.0f °C", 2, ts, vs)
}

// counterSVGs draws the history of each counter that was not always zero: a counter that grows (pending
// sectors, media errors) is what says a disk is going before its health does.
func counterSVGs(T translate, h []appliance.HistoryPoint, zone *time.Location) []counterGraph {
	keys := map[string]bool{}
	for _, p := range h {
		for k, v := range p.Counters {
			if v != 0 {
				keys[k] = true
			}
		}
	}
	var out []counterGraph
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		var ts []time.Time
		var vs []float64
		for _, p := range h {
			if v, ok := p.Counters[k]; ok {
				ts, vs = append(ts, p.Time.In(zone)), append(vs, float64(v))
			}
		}
		if g := lineSVG(T, T("history of %s", k), "%.0f", 1, ts, vs); g != "" {
			out = append(out, counterGraph{Key: k, Graph: g})
		}
	}
	return out
}

// spaceSVG draws a filesystem's use over its daily history, in GB, its days in zone.
func spaceSVG(T translate, h []appliance.SpacePoint, zone *time.Location) template.HTML {
	ts, vs := make([]time.Time, len(h)), make([]float64, len(h))
	for i, p := range h {
		ts[i], vs[i] = p.Day.In(zone), float64(p.UsedBytes)/1e9
	}
	return lineSVG(T, T("space used over the last days"), "%.1f GB", 0.1, ts, vs)
}

// lineSVG draws values over time as an inline SVG line (no script, no external asset), the value axis
// labelled with format (written the language's way by T) and padded by margin; a limit, if given, is a dashed
// red line labelled with its value. label is the graph's name for a screen reader, in the page's language.
func lineSVG(T translate, label, format string, margin float64, ts []time.Time, vs []float64, limit ...float64) template.HTML {
	if len(ts) < 2 {
		return ""
	}
	const W, H, pad = 600.0, 160.0, 24.0
	t0, t1 := ts[0], ts[len(ts)-1]
	span := t1.Sub(t0).Seconds()
	lo, hi := slices.Min(vs)-margin, slices.Max(vs)+margin
	if lo < 0 && slices.Min(vs) >= 0 {
		lo = 0
	}
	for _, l := range limit {
		hi = max(hi, l+margin)
	}
	var pts strings.Builder
	for i, v := range vs {
		x := pad + (W-2*pad)*ts[i].Sub(t0).Seconds()/max(span, 1)
		y := H - pad - (H-2*pad)*(v-lo)/max(hi-lo, 1e-9)
		fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
	}
	var lines strings.Builder
	for _, l := range limit {
		y := H - pad - (H-2*pad)*(l-lo)/max(hi-lo, 1e-9)
		fmt.Fprintf(&lines, `<line class="limit" x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#b71c1c" stroke-dasharray="6 4"/><text x="%.0f" y="%.1f" text-anchor="end" fill="#b71c1c">%s</text>`,
			pad, W-pad, y, y, W-pad, y-3, html.EscapeString(T(format, l)))
	}
	svg := fmt.Sprintf(`<svg class="graph" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`+
		`<text x="2" y="14">%s</text><text x="2" y="%.0f">%s</text>`+
		`<text x="%.0f" y="%.0f">%s</text><text x="%.0f" y="%.0f" text-anchor="end">%s</text>`+
		`%s<polyline fill="none" stroke="#1565c0" stroke-width="2" points="%s"/></svg>`,
		W, H, html.EscapeString(label), html.EscapeString(T(format, hi)), H-pad+4, html.EscapeString(T(format, lo)), pad, H-4, t0.Format("2006-01-02 15:04"), W-pad, H-4, t1.Format("2006-01-02 15:04"), lines.String(), pts.String())
	return template.HTML(svg) // numbers and fixed text, the texts escaped
}
