package sysinit

import (
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
