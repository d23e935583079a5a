package dhcp

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestWiredPorts(t *testing.T) {
	root := t.TempDir()
	mk := func(name, typ string, device, wireless bool) {
		d := filepath.Join(root, "class/net", name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "type"), []byte(typ+"\n"), 0o644)
		if device {
			os.Mkdir(filepath.Join(d, "device"), 0o755)
		}
		if wireless {
			os.Mkdir(filepath.Join(d, "wireless"), 0o755)
		}
	}
	mk("lo", "772", false, false)
	mk("eth0", "1", true, false)
	mk("enp0s3", "1", true, false)
	mk("bond0", "1", false, false)
	mk("wlan0", "1", true, true)
	got, err := WiredPorts(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"enp0s3", "eth0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("WiredPorts = %v, want %v", got, want)
	}
}
