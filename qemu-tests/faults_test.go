package qemutests

import (
	"fmt"
	"net"
	"regexp"
	"testing"
	"time"
)

// Every fault helper acts on the guest: a pulled disk leaves the status, an inserted one joins it, an
// injected I/O error fails a direct read, a cut link takes the UI away and back, the NVMe SMART warning is
// set, and the hub carries and drops the guest's frames.
func TestFaultHelpers(t *testing.T) {
	parallel(t)
	hub := NewHub(t.TempDir())
	t.Cleanup(hub.Close)
	u := boot(t, Config{Hubs: []*Hub{hub}, Disks: []Disk{
		{ID: "v1", Kind: Virtio, Serial: "PULL-ME", SizeMiB: 32},
		{ID: "v2", Kind: Virtio, Serial: "FAULTY", SizeMiB: 32, Faulty: true},
		{ID: "n1", Kind: NVMe, Serial: "NVME-W", SizeMiB: 32},
	}})
	tok := u.setupAndLogin()

	if err := u.PullDisk("v1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "pulled disk leaves the status", func() error {
		if _, ok := serials(u.status(tok))["PULL-ME"]; ok {
			return fmt.Errorf("PULL-ME still listed")
		}
		return nil
	})
	if err := u.InsertDisk(Disk{ID: "v9", Kind: Virtio, Serial: "NEW-ONE", SizeMiB: 48}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "inserted disk joins the status", func() error {
		if got := serials(u.status(tok))["NEW-ONE"]; got != 48<<20 {
			return fmt.Errorf("NEW-ONE size %d", got)
		}
		return nil
	})

	// I/O errors: the disk reads fine, then fails with EIO once injected.
	name := diskName(t, u, tok, "FAULTY")
	u.Send("read " + name)
	if _, err := u.Expect(regexp.MustCompile(`debug: read /dev/`+name+`: <nil>`), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := u.InjectIOError("v2"); err != nil {
		t.Fatal(err)
	}
	u.Send("read " + name)
	if _, err := u.Expect(regexp.MustCompile(`debug: read /dev/`+name+`: input/output error`), 30*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, tail(u.Console()))
	}

	if err := u.SetNVMeCriticalWarning("n1", 5); err != nil {
		t.Fatal(err)
	}
	if v, err := u.NVMeCriticalWarning("n1"); err != nil || v != 5 {
		t.Errorf("critical warning = %d, %v, want 5", v, err)
	}

	// Link cut: the UI stops answering, then answers again.
	if err := u.SetLink("mgmt", false); err != nil {
		t.Fatal(err)
	}
	u.http.Timeout = 3 * time.Second
	if _, err := u.http.Get(u.URL("/login")); err == nil {
		t.Error("web UI answered with its link cut")
	}
	if err := u.SetLink("mgmt", true); err != nil {
		t.Fatal(err)
	}
	u.http.Timeout = 30 * time.Second
	eventually(t, time.Minute, "UI back after the link returns", func() error {
		_, err := u.http.Get(u.URL("/login"))
		return err
	})

	// The hub: the guest's DHCP client sends on its LAN port; a cut port drops what it sends.
	eventually(t, time.Minute, "frames from the guest on the hub", func() error {
		if n, _ := hub.Counters(u.HubPorts[0]); n == 0 {
			return fmt.Errorf("no frames")
		}
		return nil
	})
	hub.SetCut(u.HubPorts[0], true)
	eventually(t, 2*time.Minute, "frames dropped on the cut port", func() error {
		if _, d := hub.Counters(u.HubPorts[0]); d == 0 {
			return fmt.Errorf("nothing dropped")
		}
		return nil
	})

	// kill -9: the process is gone and its forwarded port closes.
	if err := u.Kill9(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", u.HTTPS, time.Second); err == nil {
		c.Close()
		t.Error("web UI port still open after kill -9")
	}
}

func diskName(t testing.TB, u *unit, tok, serial string) string {
	t.Helper()
	for _, d := range u.status(tok).Disks {
		if d.Serial == serial {
			return d.Name
		}
	}
	t.Fatalf("no disk with serial %s", serial)
	return ""
}
