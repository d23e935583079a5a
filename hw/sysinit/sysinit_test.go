package sysinit

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{"console=ttyS0,115200 panic=-1 quiet\n", map[string]string{"console": "ttyS0,115200", "panic": "-1", "quiet": ""}},
		{`appliance.hostname="front desk" x=a=b`, map[string]string{"appliance.hostname": "front desk", "x": "a=b"}},
		{"", map[string]string{}},
	} {
		if got := ParseCmdline(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCmdline(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// efivarfs's bytes for LoaderBootCountPath as systemd-boot sets it: attributes, then UTF-16LE with a NUL.
func TestLoaderVar(t *testing.T) {
	dir := t.TempDir()
	if v, err := LoaderVar(dir, "LoaderBootCountPath"); v != "" || err != nil {
		t.Errorf("unset: %q, %v", v, err)
	}
	raw := []byte{0x06, 0, 0, 0}
	for _, c := range `\EFI\Linux\lawbox-v2+2-1.efi` {
		raw = append(raw, byte(c), 0)
	}
	raw = append(raw, 0, 0)
	os.WriteFile(filepath.Join(dir, "LoaderBootCountPath-"+LoaderGUID), raw, 0o600)
	if v, err := LoaderVar(dir, "LoaderBootCountPath"); v != `\EFI\Linux\lawbox-v2+2-1.efi` || err != nil {
		t.Errorf("set: %q, %v", v, err)
	}
	os.WriteFile(filepath.Join(dir, "LoaderBootCountPath-"+LoaderGUID), raw[:5], 0o600)
	if _, err := LoaderVar(dir, "LoaderBootCountPath"); err == nil {
		t.Error("an odd-sized variable read as a string")
	}
}
