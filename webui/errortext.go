package webui

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// errorPattern is one format of errorsFR made into a pattern of the text it writes.
type errorPattern struct {
	format  string
	re      *regexp.Regexp
	recurse []bool // per value: whether it is itself a sentence to state (%w, %v, %s), not a quoted or counted value
	literal int    // how much of the format is text: the more, the more specific
}

// verb is a formatting verb of a format string.
var verb = regexp.MustCompile(`%(\[\d+\])?[-+# 0]*\d*(\.\d+)?[a-zA-Z%]`)

// errorPatterns are errorsFR's formats, the most specific first (so that "%w: %s" is tried last).
var errorPatterns = compileErrorPatterns(errorsFR)

func compileErrorPatterns(catalog map[string]string) []errorPattern {
	var out []errorPattern
	for format := range catalog {
		p := errorPattern{format: format}
		var b strings.Builder
		b.WriteString("^")
		last := 0
		for _, m := range verb.FindAllStringIndex(format, -1) {
			b.WriteString(regexp.QuoteMeta(format[last:m[0]]))
			p.literal += m[0] - last
			switch v := format[m[0]:m[1]]; v[len(v)-1] {
			case '%':
				b.WriteString("%")
			case 'q':
				b.WriteString(`("(?:[^"\\]|\\.)*")`)
				p.recurse = append(p.recurse, false)
			case 'd':
				b.WriteString(`(-?\d+)`)
				p.recurse = append(p.recurse, false)
			default:
				b.WriteString(`(.+?)`)
				p.recurse = append(p.recurse, true)
			}
			last = m[1]
		}
		b.WriteString(regexp.QuoteMeta(format[last:]))
		p.literal += len(format) - last
		b.WriteString("$")
		p.re = regexp.MustCompile(b.String())
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].literal != out[j].literal {
			return out[i].literal > out[j].literal
		}
		return out[i].format < out[j].format
	})
	return out
}

// errorText states an error of the unit's parts in a language: its text is matched against the formats
// the parts write (errorsFR) and written again in French with the same values, the sentences among them
// (a wrapped error, a reason) stated in their turn. A text no format matches stays as it is: the words of a
// tool, or a value. English texts are the parts' own.
func errorText(lang, msg string) string {
	if lang != "fr" {
		return msg
	}
	return sayError(msg, 4)
}

func sayError(msg string, depth int) string {
	if depth == 0 || msg == "" {
		return msg
	}
	for _, p := range errorPatterns {
		m := p.re.FindStringSubmatch(msg)
		if m == nil {
			continue
		}
		// A bare "kind: detail" is only a kind of error with its detail when the kind is one.
		if p.literal <= 2 && len(m) > 1 {
			if _, ok := errorsFR[m[1]]; !ok {
				continue
			}
		}
		args := make([]any, len(m)-1)
		for i, v := range m[1:] {
			if p.recurse[i] {
				v = sayError(v, depth-1)
			}
			args[i] = v
		}
		return fmt.Sprintf(errorsFR[p.format], args...)
	}
	return msg
}
