package webui

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/lawbox/appliance/appliance"
)

// metrics answers the unit's state in Prometheus' text format, from the same once-a-second reading as the
// dashboard. Prometheus logs in with a viewer account (basic auth on this route only).
func (s *Server) metrics(w http.ResponseWriter, r *http.Request, _ appliance.Session) {
	sum := s.dashboard(r.Context())
	var b strings.Builder
	metric := func(name, help string, samples ...sample) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		for _, x := range samples {
			fmt.Fprintf(&b, "%s%s %s\n", name, x.labels, strconv.FormatFloat(x.v, 'g', -1, 64))
		}
	}
	counts := map[string]float64{"critical": 0, "warning": 0}
	for _, a := range sum.Alerts {
		counts[a.Level]++
	}
	metric("lawbox_alerts", "Open alerts by level.", sample{labels("level", "critical"), counts["critical"]}, sample{labels("level", "warning"), counts["warning"]})
	if st := sum.Storage; st != nil {
		var state, progress []sample
		for _, a := range st.Arrays {
			state = append(state, sample{labels("array", a.Name, "level", a.Level, "state", a.State), 1})
			if a.RebuildProgress != nil {
				progress = append(progress, sample{labels("array", a.Name), *a.RebuildProgress})
			}
		}
		metric("lawbox_array_state", "Each array's state (1 for the current one).", state...)
		metric("lawbox_array_sync_progress", "Progress of a rebuild, resync or check, 0 to 1.", progress...)
		var size, used, free, parts []sample
		for _, sp := range st.Space {
			l := labels("filesystem", sp.Name)
			size, used, free = append(size, sample{l, float64(sp.SizeBytes)}), append(used, sample{l, float64(sp.UsedBytes)}), append(free, sample{l, float64(sp.FreeBytes)})
			for _, p := range sp.Parts {
				parts = append(parts, sample{labels("filesystem", sp.Name, "volume", p.Name), float64(p.UsedBytes)})
			}
		}
		metric("lawbox_filesystem_size_bytes", "Size of each array's filesystem.", size...)
		metric("lawbox_filesystem_used_bytes", "Space used on each array's filesystem.", used...)
		metric("lawbox_filesystem_free_bytes", "Space new files may still take on each array's filesystem.", free...)
		metric("lawbox_volume_used_bytes", "Space each volume (database, WAL archive, backups) takes.", parts...)
	}
	var health, temp []sample
	for _, d := range sum.Disks {
		if d.SMART.Health != "" {
			health = append(health, sample{labels("serial", d.Serial, "health", d.SMART.Health), 1})
			temp = append(temp, sample{labels("serial", d.Serial), float64(d.SMART.TemperatureC)})
		}
	}
	metric("lawbox_disk_health", "SMART health of each disk (1 for the current level: ok, watch, replace, failed).", health...)
	metric("lawbox_disk_temperature_celsius", "Disk temperature.", temp...)
	if sum.Pair.Paired {
		reach := 0.0
		if sum.Pair.Peer != nil && sum.Pair.Peer.Reachable {
			reach = 1
		}
		metric("lawbox_pair_role", "This unit's pair role (1 for the current one).", sample{labels("role", sum.Pair.Role), 1})
		metric("lawbox_pair_peer_reachable", "Whether the other unit answers heartbeats.", sample{"", reach})
	}
	if db := sum.DB; db != nil {
		metric("lawbox_database_role", "The database's role (1 for the current one).", sample{labels("role", db.Role, "state", db.State), 1})
		metric("lawbox_database_connections", "Client connections.", sample{"", float64(db.Connections)})
		if db.LagSeconds != nil {
			metric("lawbox_database_mirror_lag_seconds", "How far the mirror's replay is behind.", sample{"", *db.LagSeconds})
		}
		if db.LagBytes != nil {
			metric("lawbox_database_mirror_lag_bytes", "WAL bytes the mirror has not replayed.", sample{"", float64(*db.LagBytes)})
		}
		var sizes []sample
		for _, d := range db.Databases {
			sizes = append(sizes, sample{labels("database", d.Name), float64(d.SizeBytes)})
		}
		metric("lawbox_database_size_bytes", "Size of each database.", sizes...)
	}
	if bk := sum.Backups; bk != nil {
		if sum.LastBackup != nil {
			metric("lawbox_backup_last_timestamp_seconds", "When the last backup was taken.", sample{"", float64(sum.LastBackup.Created.Unix())})
		}
		if bk.LastVerified != nil {
			metric("lawbox_backup_last_verified_timestamp_seconds", "When a backup was last restored successfully.", sample{"", float64(bk.LastVerified.Time.Unix())})
		}
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

type sample struct {
	labels string
	v      float64
}

// labels formats name/value pairs as {a="x",b="y"}, values escaped as the format wants.
func labels(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		v := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(kv[i+1])
		parts = append(parts, kv[i]+`="`+v+`"`)
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}
