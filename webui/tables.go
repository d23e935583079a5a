package webui

import (
	"bytes"
	"html"
	"strings"

	xhtml "golang.org/x/net/html"
)

// labelCells names each data cell of the rendered tables after its column: a table's first row of column
// headers (th without scope="row") gives each later td a data-label, and those headers a data-head. On a
// phone, where the cells stack, the style sheet writes the label before each value and hides the header
// row. Everything else is written back byte for byte.
func labelCells(page []byte) []byte {
	if !bytes.Contains(page, []byte("<table")) {
		return page
	}
	type table struct {
		heads []string
		rows  int  // rows begun
		col   int  // the cell's column in the current row
		head  bool // in a column header of the first row
		text  strings.Builder
	}
	var out bytes.Buffer
	var tables []*table
	z := xhtml.NewTokenizer(bytes.NewReader(page))
	for {
		tt := z.Next()
		if tt == xhtml.ErrorToken {
			return out.Bytes() // io.EOF: the page was read to its end
		}
		raw := bytes.Clone(z.Raw()) // Token may reuse it
		tok := z.Token()
		var t *table
		if len(tables) > 0 {
			t = tables[len(tables)-1]
		}
		switch {
		case tt == xhtml.StartTagToken && tok.Data == "table":
			tables = append(tables, &table{})
		case tt == xhtml.EndTagToken && tok.Data == "table" && t != nil:
			tables = tables[:len(tables)-1]
		case t == nil:
		case tt == xhtml.StartTagToken && tok.Data == "tr":
			t.rows++
			t.col = 0
		case tt == xhtml.StartTagToken && tok.Data == "th":
			if t.rows == 1 && attr(tok, "scope") != "row" {
				t.head = true
				t.text.Reset()
				raw = withAttr(raw, "data-head", "")
			}
			t.col++
		case tt == xhtml.EndTagToken && tok.Data == "th" && t.head:
			t.head = false
			t.heads = append(t.heads, strings.Join(strings.Fields(t.text.String()), " "))
		case tt == xhtml.TextToken && t.head:
			t.text.WriteString(tok.Data)
		case tt == xhtml.StartTagToken && tok.Data == "td":
			if t.rows > 1 && t.col < len(t.heads) && t.heads[t.col] != "" && attr(tok, "data-label") == "" {
				raw = withAttr(raw, "data-label", t.heads[t.col])
			}
			t.col++
		}
		out.Write(raw)
	}
}

func attr(t xhtml.Token, key string) string {
	for _, a := range t.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// withAttr writes a start tag again with one more attribute.
func withAttr(raw []byte, key, val string) []byte {
	end := bytes.LastIndexByte(raw, '>')
	if end < 0 {
		return raw
	}
	add := " " + key
	if val != "" {
		add += `="` + html.EscapeString(val) + `"`
	}
	return append(append(bytes.Clone(raw[:end]), add...), raw[end:]...)
}
