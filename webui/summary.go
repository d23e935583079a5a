package webui

import (
	"context"
	"fmt"

	"github.com/lawbox/appliance/appliance"
)

// summary is the dashboard's one sentence: green when nothing needs doing, amber when something should be
// looked at, red when data is at risk; and the alerts behind it.
type summary struct {
	Level    string // "green", "amber", "red"
	Sentence string
	Alerts   []appliance.Alert
}

func (s *Server) summarize(ctx context.Context) summary {
	var alerts []appliance.Alert
	if st, err := s.disks.Storage(ctx); err == nil {
		alerts = append(alerts, st.Alerts...)
	}
	if ds, err := s.health.Disks(ctx); err == nil {
		for _, d := range ds {
			for _, f := range d.SMART.Findings {
				if f.Acknowledged {
					continue
				}
				level := "warning"
				if f.Level == "replace" || f.Level == "failed" {
					level = "critical"
				}
				alerts = append(alerts, appliance.Alert{Level: level, Message: fmt.Sprintf("disk %s: %s", d.Serial, f.Message)})
			}
		}
	}
	if db, err := s.db.Database(ctx); err == nil && db.State != "running" {
		alerts = append(alerts, appliance.Alert{Level: "warning", Message: "the database is " + db.State})
	}
	sum := summary{Level: "green", Sentence: "Everything is working: the disks are mirrored and healthy.", Alerts: alerts}
	for _, a := range alerts {
		if a.Level == "critical" {
			sum.Level, sum.Sentence = "red", "Attention needed: office data is at risk until the problems below are fixed."
			return sum
		}
		sum.Level, sum.Sentence = "amber", "Working, with something to look at below."
	}
	return sum
}
