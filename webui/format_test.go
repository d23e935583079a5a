package webui

import "testing"

func TestFormatsByLanguage(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{sizeIn("en", 1_100_000_000), "1.1 GB"}, {sizeIn("fr", 1_100_000_000), "1,1 Go"},
		{sizeIn("en", 999), "999 B"}, {sizeIn("fr", 2_500), "2,5 Ko"}, {sizeIn("en", 2_500), "2.5 kB"},
		{decimal("en", 80), "80.0"}, {decimal("fr", 37.5), "37,5"},
		{durationIn("en", 1034*3600+17*60+3), "43 days 2 h"}, {durationIn("fr", 1034*3600+17*60+3), "43 jours 2 h"},
		{durationIn("fr", 86400), "1 jour"}, {durationIn("en", 2*3600+5*60+9), "2 h 5 min"},
		{durationIn("en", 90), "1 min 30 s"}, {durationIn("fr", 45), "45 s"}, {durationIn("en", 3600), "1 h"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
