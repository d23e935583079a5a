package unit

import "testing"

func TestParseUptime(t *testing.T) {
	for in, want := range map[string]int64{"350735.47 234388.90\n": 350735, "3.99 1.0": 3, "garbage": 0, "": 0} {
		if got := ParseUptime(in); got != want {
			t.Errorf("ParseUptime(%q) = %d, want %d", in, got, want)
		}
	}
}
