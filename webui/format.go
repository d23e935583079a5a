package webui

import (
	"fmt"
	"strings"
)

// Numbers, sizes and durations as each language writes them: "1.1 GB", "80.0", "2 h 5 min" in English;
// "1,1 Go", "80,0", "2 h 5 min" in French (decimal comma, octets, "jours").

// decimal writes v with one decimal in lang.
func decimal(lang string, v float64) string {
	s := fmt.Sprintf("%.1f", v)
	if lang == "fr" {
		s = strings.Replace(s, ".", ",", 1)
	}
	return s
}

// sizeIn is n bytes in decimal units, in lang.
func sizeIn(lang string, n int64) string {
	unit := "B"
	if lang == "fr" {
		unit = "o" // octets
	}
	if n < 1000 {
		return fmt.Sprintf("%d %s", n, unit)
	}
	div, exp := int64(1000), 0
	for m := n / 1000; m >= 1000; m /= 1000 {
		div *= 1000
		exp++
	}
	prefix := string("kMGTPE"[exp])
	if lang == "fr" && prefix == "k" {
		prefix = "K" // "Ko"
	}
	return decimal(lang, float64(n)/float64(div)) + " " + prefix + unit
}

// durationIn is sec seconds in words a person reads, the two largest units: "3 days 4 h", "2 h 5 min",
// "1 min 30 s", "45 s".
func durationIn(lang string, sec int64) string {
	if sec < 0 {
		sec = 0
	}
	days, h, m, s := sec/86400, sec/3600%24, sec/60%60, sec%60
	day := func(n int64) string {
		switch {
		case lang == "fr" && n == 1:
			return "1 jour"
		case lang == "fr":
			return fmt.Sprintf("%d jours", n)
		case n == 1:
			return "1 day"
		}
		return fmt.Sprintf("%d days", n)
	}
	switch {
	case days > 0 && h > 0:
		return fmt.Sprintf("%s %d h", day(days), h)
	case days > 0:
		return day(days)
	case h > 0 && m > 0:
		return fmt.Sprintf("%d h %d min", h, m)
	case h > 0:
		return fmt.Sprintf("%d h", h)
	case m > 0 && s > 0:
		return fmt.Sprintf("%d min %d s", m, s)
	case m > 0:
		return fmt.Sprintf("%d min", m)
	}
	return fmt.Sprintf("%d s", s)
}
