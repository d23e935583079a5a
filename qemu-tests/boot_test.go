package qemutests

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Boot with three disks of three kinds: the UI comes up over HTTPS with the console's certificate, first-boot
// setup refuses bad input and then works once, and the status API lists the three disks by serial.
func TestBootSetupLoginStatus(t *testing.T) {
	parallel(t)
	u := boot(t, Config{Disks: []Disk{
		{ID: "d1", Kind: Virtio, Serial: "VIRTIO-A1", SizeMiB: 64},
		{ID: "d2", Kind: NVMe, Serial: "NVME-B2", SizeMiB: 96},
		{ID: "d3", Kind: AHCI, Serial: "SATA-C3", SizeMiB: 128},
	}})
	if code, _ := u.call("GET", "/api/v1/status", "", ""); code != 401 {
		t.Errorf("status before login = %d, want 401", code)
	}
	for _, tc := range []struct {
		body string
		want int
		msg  string
	}{
		{`{"code":"AAAA-BBBB-CCCC-DDDD","password":"` + adminPW + `"}`, 403, "wrong setup code"},
		{`{"code":"` + u.code + `","password":"short"}`, 400, "at least 12 are needed"},
		{`{"code":"` + u.code + `",`, 400, "malformed request"},
		{`{"code":"` + u.code + `","password":"` + strings.Repeat("x", 70000) + `"}`, 413, "larger than"},
	} {
		code, body := u.call("POST", "/api/v1/setup", "", tc.body)
		if code != tc.want || !strings.Contains(body, tc.msg) {
			t.Errorf("setup %.50q = %d %s, want %d with %q", tc.body, code, body, tc.want, tc.msg)
		}
	}
	tok := u.setupAndLogin()
	if code, body := u.call("POST", "/api/v1/setup", "", `{"code":"`+u.code+`","password":"`+adminPW+`"}`); code != 409 {
		t.Errorf("second setup = %d %s, want 409", code, body)
	}
	if code, _ := u.call("POST", "/api/v1/login", "", `{"user":"admin","password":"not the password"}`); code != 401 {
		t.Errorf("wrong password = %d, want 401", code)
	}
	st := u.status(tok)
	want := map[string]int64{"VIRTIO-A1": 64 << 20, "NVME-B2": 96 << 20, "SATA-C3": 128 << 20}
	if got := serials(st); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("status disks = %v, want %v", got, want)
	}
	if !strings.HasPrefix(st.Hostname, "appliance-") || st.UptimeS <= 0 {
		t.Errorf("status hostname %q uptime %d", st.Hostname, st.UptimeS)
	}
	// The status page, through the browser's cookie path, shows the disks too.
	code, page := u.call("GET", "/", tok, "")
	if code != 200 || !strings.Contains(page, "SATA-C3") {
		t.Errorf("status page = %d, want 200 listing SATA-C3", code)
	}
}

// A service that crashes is restarted with its state intact, and PID 1 stays up.
func TestCrashedServiceRestarts(t *testing.T) {
	parallel(t)
	u := boot(t, Config{Disks: []Disk{{ID: "d1", Serial: "ONLY-ONE", SizeMiB: 32}}})
	tok := u.setupAndLogin()

	// A Go program that gets SIGSEGV dies with its stack and exit status 2; SIGKILL leaves no trace.
	for sig, exit := range map[string]string{"SEGV": "exit status 2", "KILL": "killed by signal SIGKILL"} {
		if err := u.Send("signal daemon " + sig); err != nil {
			t.Fatal(err)
		}
		if _, err := u.Expect(regexp.MustCompile(`service exited, restarting" service=daemon err="`+exit), time.Minute); err != nil {
			t.Fatalf("%v\n%s", err, tail(u.Console()))
		}
		if _, err := u.Expect(reReady, 2*time.Minute); err != nil {
			t.Fatalf("daemon did not come back after SIG%s: %v\n%s", sig, err, tail(u.Console()))
		}
	}
	// The state survived: the same password still logs in (no new setup code), and sessions survive too.
	if strings.Count(u.Console(), "setup code:") != 1 {
		t.Errorf("the restarted daemon printed a new setup code; the setup was lost")
	}
	st := u.status(tok)
	var daemon string
	for _, s := range st.Services {
		if s.Name == "daemon" {
			daemon = fmt.Sprintf("%s restarts=%d last=%s", s.State, s.Restarts, s.LastExit)
		}
	}
	if !strings.HasPrefix(daemon, "running restarts=2 last=") {
		t.Errorf("daemon service = %q, want running after 2 restarts", daemon)
	}
	u.login()
	// PID 1 still answers on the console.
	if err := u.Send("services"); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Expect(regexp.MustCompile(`debug: service netd running`), 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// Power off and reboot from the API: services stop, then the kernel powers off or restarts (QEMU runs with
// -no-reboot, so both end the process).
func TestPowerOffAndReboot(t *testing.T) {
	parallel(t)
	for action, line := range map[string]string{"poweroff": "power off", "reboot": "reboot"} {
		t.Run(action, func(t *testing.T) { powerAction(t, action, line) })
	}
}

func powerAction(t *testing.T, action, line string) {
	u := boot(t, Config{Disks: []Disk{{ID: "d1", Serial: "P1", SizeMiB: 32}}})
	tok := u.setupAndLogin()
	if code, body := u.call("POST", "/api/v1/system/"+action, tok, ""); code != 202 {
		t.Fatalf("%s = %d %s", action, code, body)
	}
	if _, err := u.Expect(regexp.MustCompile(`stopping services to `+line+`(?s:.*)service stopped" service=daemon how="exit status 0"(?s:.*)services stopped; `+line+` now`), time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, tail(u.Console()))
	}
	if err := u.Wait(time.Minute); err != nil {
		t.Fatal(err)
	}
}

// No disks at all: the unit still boots, and says so. It boots the production firmware, which has no
// test agent: appliance.debug=1 on its command line is ignored and the console takes no command.
func TestBootWithoutDisks(t *testing.T) {
	parallel(t)
	u := start(t, Config{Production: true})
	if _, err := u.Expect(regexp.MustCompile(`appliance.debug=1 ignored: production firmware has no test agent`), 3*time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, tail(u.Console()))
	}
	u.Send("services")
	u.ready()
	tok := u.setupAndLogin()
	if strings.Contains(u.Console(), "debug: service") {
		t.Errorf("the production firmware answered the test agent's command:\n%s", tail(u.Console()))
	}
	if st := u.status(tok); len(st.Disks) != 0 {
		t.Errorf("disks = %v, want none", st.Disks)
	}
	if code, page := u.call("GET", "/", tok, ""); code != 200 || !strings.Contains(page, "No disks found") {
		t.Errorf("status page = %d, want the no-disk warning", code)
	}
}
