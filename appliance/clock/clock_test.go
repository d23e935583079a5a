package clock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/state"
)

// chrony starts Debian's chronyd as a time server on 127.0.0.1 (its own clock left alone: -x) and
// returns its address.
func chrony(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chronyd")
	if err != nil {
		t.Fatal("chronyd not installed (make deps installs chrony)")
	}
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "chrony.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "port %d\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 3\npidfile %s/chronyd.pid\ncmdport 0\n", port, dir), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-x", "-d", "-f", conf}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	cmd := exec.Command(bin, args...)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := Query(t.Context(), addr, time.Now); err == nil {
			return addr
		} else if time.Now().After(deadline) {
			t.Fatalf("chronyd does not answer: %v\n%s", err, log.String())
		}
	}
}

func TestQueryChrony(t *testing.T) {
	addr := chrony(t)
	s, err := Query(t.Context(), addr, time.Now)
	if err != nil || s.Offset.Abs() > 50*time.Millisecond || s.Stratum != 3 || s.RTT <= 0 {
		t.Errorf("same clock: %+v %v", s, err)
	}
	behind := func() time.Time { return time.Now().Add(-7 * time.Second) }
	if s, err := Query(t.Context(), addr, behind); err != nil || (s.Offset-7*time.Second).Abs() > 50*time.Millisecond {
		t.Errorf("a clock 7 s behind: %+v %v, want an offset of +7 s", s, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := Query(ctx, "127.0.0.1:9", time.Now); err == nil {
		t.Error("an answer from a port where no server listens")
	}
}

func newKeeper(t *testing.T, now func() time.Time) (*Keeper, *[]time.Time) {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var set []time.Time
	return &Keeper{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: st, Now: now, Query: Query,
		Set: func(at time.Time) error { set = append(set, at); return nil }}, &set
}

// A clock found 7 s behind is set to the servers' time; one a few milliseconds off is left alone; with
// no server answering the status says why.
func TestKeeperSetsTheClock(t *testing.T) {
	addr := chrony(t)
	k, set := newKeeper(t, func() time.Time { return time.Now().Add(-7 * time.Second) })
	if err := k.SetTimeServers([]string{addr}); err != nil {
		t.Fatal(err)
	}
	if !k.check(t.Context()) || len(*set) != 1 || time.Until((*set)[0]).Abs() > 100*time.Millisecond {
		t.Fatalf("a clock 7 s behind: set to %v (now %v), status %+v", *set, time.Now(), k.Clock())
	}
	if st := k.Clock(); st.Stepped.IsZero() || st.Server != addr || st.Checked.IsZero() {
		t.Errorf("status after setting: %+v", st)
	}
	k.Now = time.Now
	if !k.check(t.Context()) || len(*set) != 1 {
		t.Errorf("a right clock was set again: %v", *set)
	}
	if err := k.SetTimeServers([]string{"127.0.0.1:9"}); err != nil {
		t.Fatal(err)
	}
	if k.check(t.Context()) || k.Clock().Error == "" {
		t.Errorf("no server answering: %+v", k.Clock())
	}
}

func TestTimeServersChecked(t *testing.T) {
	k, _ := newKeeper(t, time.Now)
	for _, bad := range [][]string{{"pool ntp org"}, {"a;b"}, {"-x"}, {"ntp.example:port"}, {"a", "b", "c", "d", "e"}} {
		if err := k.SetTimeServers(bad); !errors.Is(err, appliance.ErrBadInput) {
			t.Errorf("%q: %v, want ErrBadInput", bad, err)
		}
	}
	if got := k.Clock().Servers; len(got) != 1 || got[0] != DefaultServers[0] {
		t.Errorf("before any is set: %v", got)
	}
	if err := k.SetTimeServers([]string{" ntp1.office.example ", "192.0.2.1", "[2001:db8::1]:123"}); err != nil {
		t.Fatal(err)
	}
	again := &Keeper{Store: k.Store}
	if got := again.servers(); strings.Join(got, " ") != "ntp1.office.example 192.0.2.1 [2001:db8::1]:123" {
		t.Errorf("kept: %v", got)
	}
}
