package health

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/hw/smart"
)

// History keeps every sample of the last recentWindow, then one sample per day (the day's first), so a
// disk's history grows by about one small record a day however often it is polled.
const recentWindow = 48 * time.Hour

func historyKey(serial string, t time.Time) string {
	return serial + "/" + string(binary.BigEndian.AppendUint64(nil, uint64(t.Unix())))
}

// counters picks the values worth a graph: the failure-predicting ATA counters, NVMe wear and errors.
func counters(r smart.Reading) map[string]uint64 {
	c := map[string]uint64{}
	for _, a := range r.Attributes {
		if _, ok := ataRules[a.ID]; ok || a.ID == 199 {
			c[fmt.Sprintf("ata-%d", a.ID)] = a.Raw
		}
	}
	if n := r.NVMe; n != nil {
		c["nvme-used"] = uint64(n.PercentUsed)
		c["nvme-spare"] = uint64(n.AvailableSpare)
		c["nvme-media"] = n.MediaErrors
	}
	return c
}

// record stores a sample and thins out the old ones.
func (m *Monitor) record(serial string, now time.Time, r smart.Reading, _ []appliance.Finding) error {
	p := appliance.HistoryPoint{Time: now.UTC().Truncate(time.Second), TemperatureC: r.TemperatureC, Counters: counters(r)}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := m.Store.Put(bucketHistory, historyKey(serial, now), b); err != nil {
		return err
	}
	return m.prune(serial, now)
}

// prune keeps one sample per UTC day before the recent window.
func (m *Monitor) prune(serial string, now time.Time) error {
	cut := now.Add(-recentWindow).Unix()
	var drop []string
	lastDay := int64(-1)
	err := m.Store.ForEach(bucketHistory, func(k string, _ []byte) error {
		s, ts, ok := splitKey(k)
		if !ok || s != serial || ts >= cut {
			return nil
		}
		if day := ts / 86400; day == lastDay {
			drop = append(drop, k)
		} else {
			lastDay = day
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := m.Store.Delete(bucketHistory, k); err != nil {
			return err
		}
	}
	return nil
}

func splitKey(k string) (string, int64, bool) {
	i := strings.LastIndexByte(k[:max(len(k)-8, 0)], '/')
	if i < 0 || len(k)-i-1 != 8 {
		return "", 0, false
	}
	return k[:i], int64(binary.BigEndian.Uint64([]byte(k[i+1:]))), true
}

// History returns a disk's samples, oldest first.
func (m *Monitor) History(_ context.Context, serial string) ([]appliance.HistoryPoint, error) {
	out := []appliance.HistoryPoint{}
	err := m.Store.ForEach(bucketHistory, func(k string, v []byte) error {
		if s, _, ok := splitKey(k); ok && s == serial {
			var p appliance.HistoryPoint
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("decode history of %s: %w", serial, err)
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}
