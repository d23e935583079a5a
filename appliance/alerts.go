package appliance

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"time"
)

// Snapshot is every part's status read at one moment; a part that could not be read is nil (its error
// is in Errors).
type Snapshot struct {
	Time     time.Time
	Storage  *StorageStatus
	Disks    []DiskHealth // nil when the disks' health could not be read
	Pair     PairStatus
	Database *DatabaseStatus
	Backups  *BackupStatus
	Links    []NetworkLink
	Firmware *FirmwareStatus
	Shares   *SharesStatus
	Clock    *ClockStatus
	Errors   map[string]error // part -> why it could not be read
}

// TakeSnapshot reads the parts that are there (nil interfaces are skipped).
func TakeSnapshot(ctx context.Context, st Storage, h Health, p Pair, db Database, b Backups, n Network, f Firmware, sh Shares, c Clock) Snapshot {
	snap := Snapshot{Time: time.Now(), Errors: map[string]error{}}
	if st != nil {
		if v, err := st.Storage(ctx); err == nil {
			snap.Storage = &v
		} else {
			snap.Errors["storage"] = err
		}
	}
	if h != nil {
		if v, err := h.Disks(ctx); err == nil {
			snap.Disks = v
			if v == nil {
				snap.Disks = []DiskHealth{}
			}
		} else {
			snap.Errors["disks"] = err
		}
	}
	if p != nil {
		snap.Pair = p.Pair()
	}
	if db != nil {
		if v, err := db.Database(ctx); err == nil {
			snap.Database = &v
		} else {
			snap.Errors["database"] = err
		}
	}
	if b != nil {
		if v, err := b.Backups(ctx); err == nil {
			snap.Backups = &v
		} else {
			snap.Errors["backups"] = err
		}
	}
	if n != nil {
		snap.Links = n.Links()
	}
	if f != nil {
		if v, err := f.Firmware(ctx); err == nil {
			snap.Firmware = &v
		} else {
			snap.Errors["firmware"] = err
		}
	}
	if sh != nil {
		v := sh.Shares(ctx)
		snap.Shares = &v
	}
	if c != nil {
		v := c.Clock()
		snap.Clock = &v
	}
	return snap
}

// Alerts are the problems an admin should look at, from every part, the critical ones first: the
// dashboard shows them, each linked to the page where it is dealt with; the notifications send them.
func (s Snapshot) Alerts() []Alert {
	var alerts []Alert
	add := func(page string, as ...Alert) {
		for _, a := range as {
			a.Page = page
			alerts = append(alerts, a)
		}
	}
	if s.Storage != nil {
		add("/storage", s.Storage.Alerts...)
	}
	for _, d := range s.Disks {
		for _, f := range d.SMART.Findings {
			if f.Acknowledged {
				continue
			}
			level := "warning"
			if f.Level == "replace" || f.Level == "failed" {
				level = "critical"
			}
			add("/disks/"+url.PathEscape(d.Serial), NewAlert(level, "disk %s: %s", d.Serial, f.Message))
		}
	}
	add("/pair", PairAlerts(s.Pair)...)
	if s.Database != nil {
		add("/database", DatabaseAlerts(*s.Database, s.Pair.Paired)...)
	}
	if s.Backups != nil {
		add("/backups", BackupAlerts(*s.Backups, s.Time)...)
	}
	add("/network", NetworkAlerts(s.Links)...)
	if s.Firmware != nil {
		add("/", FirmwareAlerts(*s.Firmware)...)
	}
	if s.Shares != nil && s.Shares.Replication != nil {
		add("/shares", ReplicationAlerts(*s.Shares.Replication)...)
	}
	if s.Clock != nil {
		add("/network", ClockAlerts(*s.Clock, s.Time)...)
	}
	slices.SortStableFunc(alerts, func(a, b Alert) int { return severity(b.Level) - severity(a.Level) })
	return alerts
}

func severity(level string) int {
	if level == "critical" {
		return 1
	}
	return 0
}

// ReplicationAlerts say when the documents are not on both units of the pair, or not served here when
// they should be.
func ReplicationAlerts(r Replication) []Alert {
	var out []Alert
	if r.Problem != "" {
		out = append(out, NewAlert("critical", "documents: %s", r.Problem))
	}
	if !r.Paired || r.State == "" {
		return out
	}
	switch {
	case r.Synced != nil && (r.Disk == "Inconsistent" || r.PeerDisk == "Inconsistent"):
		out = append(out, NewAlert("warning", "documents: the copy on the other unit is being brought up to date (%s done): until it is, a failover cannot serve them", fmt.Sprintf("%.1f %%", *r.Synced)))
	case r.Disk != "UpToDate" || r.PeerDisk != "UpToDate":
		out = append(out, NewAlert("critical", "documents: they are not replicated to the other unit right now: a failover cannot serve them until both copies are in sync"))
	}
	return out
}

// FirmwareAlerts says when the last firmware update did not take (until an admin acknowledges it, or the
// next update).
func FirmwareAlerts(f FirmwareStatus) []Alert {
	if u := f.Update; u != nil {
		switch u.State {
		case FirmwareRolledBack, FirmwareInterrupted, FirmwareFailed:
			return []Alert{NewAlert("warning", "the firmware update to %s did not take: %s", u.Version, u.Reason)}
		}
	}
	return nil
}

// PairAlerts are the pair's problems as the dashboard states them.
func PairAlerts(p PairStatus) []Alert {
	var out []Alert
	if !p.Paired {
		return nil
	}
	if p.Maintenance {
		out = append(out, NewAlert("critical", "maintenance mode: the office's applications can only read; promote this unit or bring the other one back"))
	}
	if p.Role == "fenced" {
		out = append(out, NewAlert("critical", "this unit lost the other unit and the witness while active and stopped serving"))
	}
	if p.Peer != nil && !p.Peer.Reachable {
		out = append(out, NewAlert("critical", "the other unit (%s) cannot be reached: no failover is possible", p.Peer.Name))
	} else if p.Peer != nil {
		for _, path := range p.Peer.Paths {
			if !path.Reachable {
				out = append(out, NewAlert("warning", "no heartbeats from the other unit over %s", path.Address))
			}
		}
	}
	if p.Witness != nil && p.Witness.Stale {
		out = append(out, NewAlert("critical", "this unit's copy of the data is older than the other unit's: it will not serve until the other unit is back (or an admin forces it)"))
	}
	if p.Witness != nil && !p.Witness.Reachable {
		out = append(out, NewAlert("warning", "the witness at %s does not answer: automatic failover is off until it does", p.Witness.Address))
	}
	return out
}

// LagAlertS is how far behind a mirror may fall before the dashboard says so.
const LagAlertS = 60 // seconds

// DatabaseAlerts are the database's problems as the dashboard states them.
func DatabaseAlerts(db DatabaseStatus, paired bool) []Alert {
	if db.Role == "none" {
		return []Alert{NewAlert("warning", "the database is %s", db.State)}
	}
	var out []Alert
	if db.Role == "production" && paired && db.Mirror == "" {
		out = append(out, NewAlert("warning", "the other unit is not mirroring the database: a failure of this unit now would stop the office's application"))
	}
	if db.Sync == "degraded" && db.Role == "production" {
		out = append(out, NewAlert("warning", "synchronous mode is suspended while the mirror is missing: recent commits exist on this unit only"))
	}
	if db.Sync == "catching up" && db.Role == "production" {
		out = append(out, NewAlert("warning", "the mirror is back and catching up: commits saved while it was away are not all on it yet"))
	}
	for _, sl := range db.Slots {
		switch sl.WALStatus {
		case "unreserved":
			out = append(out, NewAlert("warning", "the mirror has been away so long that the WAL kept for it is about to be dropped: it will then copy the whole database again"))
		case "lost":
			out = append(out, NewAlert("warning", "the WAL kept for the mirror was dropped (it was away too long, the disk space is capped): it copies the whole database again"))
		}
	}
	if db.LagSeconds != nil && *db.LagSeconds > LagAlertS {
		out = append(out, NewAlert("warning", "the database mirror is %.0f s behind", *db.LagSeconds))
	}
	return out
}

// BackupAlerts: no backups set up, the last backup failed, an offsite copy failing, no restore verified in
// two days.
func BackupAlerts(b BackupStatus, now time.Time) []Alert {
	if !b.SetUp {
		return []Alert{NewAlert("warning", "backups are not set up: nothing is kept away from this office")}
	}
	var out []Alert
	if b.LastProblem != "" {
		out = append(out, NewAlert("warning", "the last backup failed: %s", b.LastProblem))
	}
	for _, t := range b.Targets {
		if !t.OK {
			out = append(out, NewAlert("warning", "copying backups to %s fails (retried every 5 minutes): %s", t.Name, t.Error))
		}
	}
	if b.LastVerified == nil || now.Sub(b.LastVerified.Time) > 48*time.Hour {
		out = append(out, NewAlert("warning", "no backup has been restored successfully in the last two days"))
	}
	return out
}

// Alert is something an admin should look at.
type Alert struct {
	Level   string `json:"level"` // "warning" or "critical"
	Message string `json:"message"`
	// Key names the alert across rounds (its numbers left out: "61 s behind" and "75 s behind" are one
	// alert); acknowledgements refer to it.
	Key          string    `json:"key"`
	Acknowledged *AlertAck `json:"acknowledged,omitempty"`
	// Text is Message's English pattern with each value as %s, and Args those values, for the pages to
	// translate (empty: Message is shown as it is).
	Text string   `json:"text,omitempty"`
	Args []string `json:"args,omitempty"`
	// Page is the web UI's page where the alert is dealt with ("/storage", "/disks/SN-1").
	Page string `json:"page,omitempty"`
}

var verb = regexp.MustCompile(`%[-+# 0]*[0-9]*(\.[0-9]+)?[a-zA-Z]`)

// NewAlert makes an alert from a format and its values; the values are kept apart (formatted as the format
// asks) so that the pages can state the alert in another language.
func NewAlert(level, format string, args ...any) Alert {
	a := Alert{Level: level, Message: fmt.Sprintf(format, args...), Text: format}
	if len(args) > 0 {
		i := 0
		a.Text = verb.ReplaceAllStringFunc(format, func(v string) string {
			if i < len(args) {
				a.Args = append(a.Args, fmt.Sprintf(v, args[i]))
			}
			i++
			return "%s"
		})
	}
	a.Key = alertKey(a)
	return a
}

var alertNumbers = regexp.MustCompile(`[0-9]+(\.[0-9]+)?`)

// alertKey is a's identity across rounds.
func alertKey(a Alert) string { return a.Level + " " + alertNumbers.ReplaceAllString(a.Message, "#") }

// AlertAck is an admin's "seen, being handled": an acknowledged alert is not notified again and an
// acknowledged warning no longer colours the dashboard (a critical one still does: data is at risk until
// it is fixed). It lasts until the alert clears, or until Until when the admin muted it for a while.
type AlertAck struct {
	By    string     `json:"by"`
	At    time.Time  `json:"at"`
	Until *time.Time `json:"until,omitempty"`
}

// Active says whether the acknowledgement still holds at now.
func (a AlertAck) Active(now time.Time) bool { return a.Until == nil || now.Before(*a.Until) }

// MaxMute is the longest an alert can be muted: a forgotten mute must not hide a problem for good.
const MaxMute = 30 * 24 * time.Hour

// MarkAlerts returns alerts with their acknowledgements still in force at now (a copy; alerts is not changed).
func MarkAlerts(alerts []Alert, acks map[string]AlertAck, now time.Time) []Alert {
	out := make([]Alert, len(alerts))
	for i, a := range alerts {
		a.Acknowledged = nil
		if ack, ok := acks[a.Key]; ok && ack.Active(now) {
			a.Acknowledged = &ack
		}
		out[i] = a
	}
	return out
}
