package qemutests

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

type storageStatus struct {
	Arrays []struct {
		Name            string   `json:"name"`
		Level           string   `json:"level"`
		State           string   `json:"state"`
		SizeBytes       int64    `json:"size_bytes"`
		RebuildProgress *float64 `json:"rebuild_progress"`
		MismatchSectors int64    `json:"mismatch_sectors"`
		Members         []struct {
			Serial string `json:"serial"`
			State  string `json:"state"`
		} `json:"members"`
	} `json:"arrays"`
	Disks []struct {
		Serial string `json:"serial"`
		Role   string `json:"role"`
		State  string `json:"state"`
		Reason string `json:"reason"`
	} `json:"disks"`
	Persistent bool `json:"persistent"`
	Alerts     []struct {
		Level   string `json:"level"`
		Message string `json:"message"`
	} `json:"alerts"`
}

func (u *unit) storage(tok string) storageStatus {
	u.t.Helper()
	code, body := u.call("GET", "/api/v1/storage", tok, "")
	var st storageStatus
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		u.t.Fatalf("storage = %d %s", code, body)
	}
	return st
}

// arrayStates is "system=clean data=rebuilding".
func (st storageStatus) arrayStates() string {
	var out []string
	for _, a := range st.Arrays {
		out = append(out, a.Name+"="+a.State)
	}
	return strings.Join(out, " ")
}

func (st storageStatus) disk(serial string) (role, state, reason string) {
	for _, d := range st.Disks {
		if d.Serial == serial {
			return d.Role, d.State, d.Reason
		}
	}
	return "", "absent", ""
}

// waitStates waits until the arrays are in the given states ("system=clean data=clean").
func (u *unit) waitStates(tok, want string, timeout time.Duration) storageStatus {
	u.t.Helper()
	var st storageStatus
	eventually(u.t, timeout, "arrays "+want, func() error {
		st = u.storage(tok)
		if got := st.arrayStates(); got != want {
			return fmt.Errorf("arrays %q", got)
		}
		return nil
	})
	return st
}

// debug runs a debug console command and returns the submatches of re in its answer.
func (u *unit) debug(cmd string, re string, timeout time.Duration) []string {
	u.t.Helper()
	if err := u.Send(cmd); err != nil {
		u.t.Fatal(err)
	}
	m, err := u.Expect(regexp.MustCompile(re), timeout)
	if err != nil {
		u.t.Fatalf("%s: %v\n%s", cmd, err, tail(u.Console()))
	}
	return m
}

var reDebugSum = `debug: (?:fill|sum) \S+: ([0-9a-f]{64}) <nil>`

func TestStorageExplore(t *testing.T) {
	u := boot(t, Config{Disks: []Disk{
		{ID: "d1", Kind: Virtio, Serial: "DISK-A", SizeMiB: 1024},
		{ID: "d2", Kind: Virtio, Serial: "DISK-B", SizeMiB: 1024},
	}})
	tok := u.setupAndLogin()
	st := u.waitStates(tok, "system=clean data=clean", 3*time.Minute)
	t.Logf("%+v", st)
	sum := u.debug("fill /data/a 64 1", reDebugSum, time.Minute)[1]
	if got := u.debug("sum /data/a", reDebugSum, time.Minute)[1]; got != sum {
		t.Errorf("sum %s != %s", got, sum)
	}
	t.Log(tail(u.Console()))
}
