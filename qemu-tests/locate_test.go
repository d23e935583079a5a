package qemutests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// The locate light of a disk in a real hot-plug slot: the NVMe disk's root port drives its attention
// indicator natively (pciehp), so the unit offers its light; "Locate" makes the slot's indicator blink as
// QEMU's copy of the port's Slot Control register shows, and turns it off again. The virtio disk's slot
// stays dark.
func TestLocateLight(t *testing.T) {
	parallel(t)
	u := boot(t, Config{NativeHotplug: true, Disks: []Disk{
		{ID: "d1", Kind: Virtio, Serial: "VIRTIO-A1", SizeMiB: 1024},
		{ID: "d2", Kind: NVMe, Serial: "NVME-B2", SizeMiB: 1024},
	}})
	tok := u.setupAndLogin()
	light := func(serial string) (string, error) {
		var st appliance.StorageStatus
		u.get("/api/v1/storage", tok, &st)
		for _, d := range st.Disks {
			if d.Serial == serial {
				return d.Locate, nil
			}
		}
		return "", fmt.Errorf("%s not in the storage status", serial)
	}
	eventually(t, 2*time.Minute, "both disks listed, each with its slot's light off", func() error {
		for _, s := range []string{"VIRTIO-A1", "NVME-B2"} {
			if l, err := light(s); err != nil || l != "off" {
				return fmt.Errorf("%s: light %q %v", s, l, err)
			}
		}
		return nil
	})
	slots := func(want2, want1 string) {
		t.Helper()
		for id, want := range map[string]string{"d2": want2, "d1": want1} {
			if got, err := u.SlotAttention(id); err != nil || got != want {
				t.Errorf("the attention indicator of %s's slot: %q %v, want %q", id, got, err, want)
			}
		}
	}
	slots("off", "off")
	if code, body := u.call("POST", "/api/v1/storage/disks/NVME-B2/locate", tok, `{"on":true}`); code != 204 {
		t.Fatalf("locate NVME-B2 = %d %s", code, body)
	}
	slots("blink", "off")
	if l, _ := light("NVME-B2"); l != "on" {
		t.Errorf("NVME-B2's light after Locate: %q", l)
	}
	if code, page := u.call("GET", "/storage", tok, ""); code != 200 || !strings.Contains(page, `id="locating-NVME-B2"`) || !strings.Contains(page, "Stop the light") {
		t.Errorf("the storage page does not say NVME-B2's light blinks (%d)", code)
	}
	if code, body := u.call("POST", "/api/v1/storage/disks/NVME-B2/locate", tok, `{"on":false}`); code != 204 {
		t.Fatalf("stop locating NVME-B2 = %d %s", code, body)
	}
	slots("off", "off")
}
