package qemutests

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

type diskHealth struct {
	Serial string `json:"serial"`
	Model  string `json:"model"`
	Device string `json:"device"`
	SMART  struct {
		Supported    bool   `json:"supported"`
		Reason       string `json:"reason"`
		Health       string `json:"health"`
		TemperatureC int    `json:"temperature_c"`
		PowerOnHours uint64 `json:"power_on_hours"`
		Attributes   []struct {
			ID        int    `json:"id"`
			Value     int    `json:"value"`
			Worst     int    `json:"worst"`
			Threshold int    `json:"threshold"`
			Raw       uint64 `json:"raw"`
		} `json:"attributes"`
		NVMe *struct {
			CriticalWarning int    `json:"critical_warning"`
			AvailableSpare  int    `json:"available_spare"`
			SpareThreshold  int    `json:"spare_threshold"`
			PercentUsed     int    `json:"percent_used"`
			MediaErrors     uint64 `json:"media_errors"`
		} `json:"nvme"`
		Findings []struct {
			Key          string `json:"key"`
			Level        string `json:"level"`
			Message      string `json:"message"`
			Acknowledged bool   `json:"acknowledged"`
		} `json:"findings"`
		LastPoll  time.Time `json:"last_poll"`
		PollMS    float64   `json:"poll_ms"`
		PollCPUMS float64   `json:"poll_cpu_ms"`
		SelfTest  struct {
			Status  string `json:"status"`
			Running bool   `json:"running"`
		} `json:"self_test"`
	} `json:"smart"`
}

func (u *unit) disks(tok string) map[string]diskHealth {
	u.t.Helper()
	var ds []diskHealth
	u.get("/api/v1/disks", tok, &ds)
	out := map[string]diskHealth{}
	for _, d := range ds {
		out[d.Serial] = d
	}
	return out
}

// smartctl runs smartctl --json -a in the guest (the outside oracle), decodes it into v and returns how
// many milliseconds it took.
func (u *unit) smartctl(dev string, v any) float64 {
	u.t.Helper()
	m := u.debug("smartctl "+dev, `debug: smartctl `+dev+` ([0-9.]+)ms (\{.*\})\r?\n`, time.Minute)
	if err := json.Unmarshal([]byte(m[2]), v); err != nil {
		u.t.Fatalf("smartctl %s: %v\n%s", dev, err, m[2])
	}
	ms, _ := strconv.ParseFloat(m[1], 64)
	return ms
}

func TestSMART(t *testing.T) {
	parallel(t)
	u := boot(t, Config{Disks: []Disk{
		{ID: "s1", Kind: AHCI, Serial: "SATA-ONE", SizeMiB: 64},
		{ID: "n1", Kind: NVMe, Serial: "NVME-ONE", SizeMiB: 64},
		{ID: "v1", Kind: Virtio, Serial: "VIRT-ONE", SizeMiB: 64},
	}})
	tok := u.setupAndLogin()
	var ds map[string]diskHealth
	eventually(t, time.Minute, "every disk polled", func() error {
		ds = u.disks(tok)
		for _, s := range []string{"SATA-ONE", "NVME-ONE", "VIRT-ONE"} {
			if ds[s].Device == "" || (ds[s].SMART.LastPoll.IsZero() && ds[s].SMART.Reason == "") {
				return fmt.Errorf("%s not polled: %+v", s, ds[s])
			}
		}
		return nil
	})
	if v := ds["VIRT-ONE"].SMART; v.Supported || v.Health != "" || !strings.Contains(v.Reason, "virtual") {
		t.Errorf("virtio disk: %+v", v)
	}

	ataAsSmartctlReadsIt(t, u, ds["SATA-ONE"])

	nvmeAsSmartctlReadsIt(t, u, ds["NVME-ONE"])

	// A critical warning: health leaves ok at the next refresh, an alert shows, acknowledging it sticks.
	if err := u.SetNVMeCriticalWarning("n1", 5); err != nil {
		t.Fatal(err)
	}
	if code, body := u.call("POST", "/api/v1/disks/NVME-ONE/smart/refresh", tok, ""); code != 204 {
		t.Fatalf("refresh = %d %s", code, body)
	}
	nv := u.disks(tok)["NVME-ONE"]
	if nv.SMART.Health != "replace" || len(nv.SMART.Findings) != 2 || nv.SMART.Findings[0].Acknowledged {
		t.Fatalf("after the warning: %+v", nv.SMART)
	}
	key := nv.SMART.Findings[0].Key
	if code, body := u.call("POST", "/api/v1/disks/NVME-ONE/alerts/"+key+"/ack", tok, ""); code != 204 {
		t.Fatalf("acknowledge = %d %s", code, body)
	}
	u.call("POST", "/api/v1/disks/NVME-ONE/smart/refresh", tok, "")
	nv = u.disks(tok)["NVME-ONE"]
	if !nv.SMART.Findings[0].Acknowledged || nv.SMART.Findings[1].Acknowledged || nv.SMART.Health != "replace" {
		t.Errorf("after acknowledging %s: %+v", key, nv.SMART.Findings)
	}
	if code, body := u.call("GET", "/storage", tok, ""); code != 200 || !strings.Contains(body, "replace this disk") {
		t.Errorf("storage page = %d, without the disk to replace:\n%s", code, body)
	}
	if code, body := u.call("GET", "/disks/NVME-ONE", tok, ""); code != 200 || !strings.Contains(body, "degraded reliability") || !strings.Contains(body, "(acknowledged)") {
		t.Errorf("disk page = %d, without the alert and its acknowledgement:\n%s", code, body)
	}
	if _, err := u.Expect(regexpQuote("disk NVME-ONE health: replace (was ok)"), 10*time.Second); err != nil {
		t.Errorf("no event: %v", err)
	}
	if code, body := u.call("POST", "/api/v1/disks/VIRT-ONE/smart/selftest", tok, `{"kind":"short"}`); code != 409 {
		t.Errorf("self-test on a virtio disk = %d %s, want 409", code, body)
	}
	// Self-tests: QEMU's ATA disk runs them (and logs "passed"); its NVMe disk (QEMU 7.2) has no Device
	// Self-test command, which must come back as a clear refusal.
	if code, body := u.call("POST", "/api/v1/disks/SATA-ONE/smart/selftest", tok, `{"kind":"short"}`); code != 202 {
		t.Errorf("self-test on the SATA disk = %d %s", code, body)
	}
	eventually(t, time.Minute, "self-test result", func() error {
		u.call("POST", "/api/v1/disks/SATA-ONE/smart/refresh", tok, "")
		if st := u.disks(tok)["SATA-ONE"].SMART.SelfTest; st.Status != "passed" {
			return fmt.Errorf("self-test %+v", st)
		}
		return nil
	})
	if code, body := u.call("POST", "/api/v1/disks/NVME-ONE/smart/selftest", tok, `{"kind":"long"}`); code != 409 || !strings.Contains(body, "does not run self-tests") {
		t.Errorf("self-test on QEMU's NVMe disk = %d %s, want 409", code, body)
	}
}

func regexpQuote(s string) *regexp.Regexp { return regexp.MustCompile(regexp.QuoteMeta(s)) }

// An NVMe member turns "replace" (critical warning) while a spare waits: the storage copies it onto the
// spare before it fails (md's want_replacement), takes it out, and the data reads back intact.
func TestProactiveReplace(t *testing.T) {
	parallel(t)
	u := boot(t, Config{Disks: []Disk{
		{ID: "n1", Kind: NVMe, Serial: "WEARING", SizeMiB: 1024},
		{ID: "v1", Kind: Virtio, Serial: "STEADY", SizeMiB: 1024},
	}})
	tok := u.setupAndLogin()
	u.waitStates(tok, "system=clean data=clean", 3*time.Minute)
	sets := map[string]string{"docs": u.fill("docs", 48, 7)}
	u.keepSpares(tok)
	if err := u.InsertDisk(Disk{ID: "v2", Kind: Virtio, Serial: "SPARE", SizeMiB: 1024}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "SPARE a hot spare", func() error {
		if st := u.storage(tok); st.member("data", "SPARE") != "spare" || st.member("system", "SPARE") != "spare" {
			return fmt.Errorf("SPARE: data %s system %s", st.member("data", "SPARE"), st.member("system", "SPARE"))
		}
		return nil
	})
	if err := u.SetNVMeCriticalWarning("n1", 4); err != nil {
		t.Fatal(err)
	}
	if code, body := u.call("POST", "/api/v1/disks/WEARING/smart/refresh", tok, ""); code != 204 {
		t.Fatalf("refresh = %d %s", code, body)
	}
	if _, err := u.Expect(regexpQuote("disk WEARING is failing (SMART: replace): copying"), time.Minute); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "WEARING replaced by SPARE", func() error {
		st := u.storage(tok)
		for _, a := range []string{"system", "data"} {
			if st.member(a, "SPARE") != "in_sync" || st.member(a, "WEARING") != "faulty" {
				return fmt.Errorf("%s: SPARE %s, WEARING %s (%s)", a, st.member(a, "SPARE"), st.member(a, "WEARING"), st.arrayStates())
			}
		}
		return nil
	})
	u.checkData(sets)
}

// nvmeAsSmartctlReadsIt: NVMe: the health log as smartctl reads it.
func nvmeAsSmartctlReadsIt(t *testing.T, u *unit, nv diskHealth) {
	var nvme struct {
		Log struct {
			CriticalWarning int    `json:"critical_warning"`
			Temperature     int    `json:"temperature"`
			AvailableSpare  int    `json:"available_spare"`
			SpareThreshold  int    `json:"available_spare_threshold"`
			PercentageUsed  int    `json:"percentage_used"`
			MediaErrors     uint64 `json:"media_errors"`
			PowerOnHours    uint64 `json:"power_on_hours"`
		} `json:"nvme_smart_health_information_log"`
	}
	u.smartctl(nv.Device, &nvme)
	l, n := nvme.Log, nv.SMART.NVMe
	if !nv.SMART.Supported || nv.SMART.Health != "ok" || n == nil || n.CriticalWarning != l.CriticalWarning || nv.SMART.TemperatureC != l.Temperature ||
		n.AvailableSpare != l.AvailableSpare || n.SpareThreshold != l.SpareThreshold || n.PercentUsed != l.PercentageUsed ||
		n.MediaErrors != l.MediaErrors || nv.SMART.PowerOnHours != l.PowerOnHours {
		t.Errorf("NVMe: ours %+v %+v, smartctl %+v", nv.SMART, n, l)
	}
}

// ataAsSmartctlReadsIt: ATA: every attribute as smartctl reads it.
func ataAsSmartctlReadsIt(t *testing.T, u *unit, sata diskHealth) {
	var ata struct {
		SerialNumber string `json:"serial_number"`
		Temperature  struct{ Current int }
		PowerOnTime  struct{ Hours uint64 } `json:"power_on_time"`
		SmartStatus  struct{ Passed bool }  `json:"smart_status"`
		Attrs        struct {
			Table []struct {
				ID     int `json:"id"`
				Value  int `json:"value"`
				Worst  int `json:"worst"`
				Thresh int `json:"thresh"`
				Raw    struct{ Value uint64 }
			}
		} `json:"ata_smart_attributes"`
	}
	u.smartctl(sata.Device, &ata)
	if !sata.SMART.Supported || sata.SMART.Health != "ok" || !ata.SmartStatus.Passed || ata.SerialNumber != "SATA-ONE" {
		t.Errorf("SATA disk: %+v; smartctl passed=%v serial=%q", sata.SMART, ata.SmartStatus.Passed, ata.SerialNumber)
	}
	if sata.SMART.TemperatureC != ata.Temperature.Current || sata.SMART.PowerOnHours != ata.PowerOnTime.Hours {
		t.Errorf("SATA temperature %d / hours %d, smartctl %d / %d", sata.SMART.TemperatureC, sata.SMART.PowerOnHours, ata.Temperature.Current, ata.PowerOnTime.Hours)
	}
	ours := map[int]string{}
	for _, a := range sata.SMART.Attributes {
		ours[a.ID] = fmt.Sprint(a.Value, a.Worst, a.Threshold, a.Raw)
	}
	if len(ata.Attrs.Table) == 0 || len(ours) != len(ata.Attrs.Table) {
		t.Errorf("attributes: ours %v, smartctl %+v", ours, ata.Attrs.Table)
	}
	for _, a := range ata.Attrs.Table {
		if want := fmt.Sprint(a.Value, a.Worst, a.Thresh, a.Raw.Value); ours[a.ID] != want {
			t.Errorf("attribute %d: ours %q, smartctl %q", a.ID, ours[a.ID], want)
		}
	}
}
