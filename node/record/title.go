package record

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// titleFields are the body's fields that name a record in lists, the first that holds a text:
// the last is a CAP alert's headline.
var titleFields = []string{"title", "question", "municipality", "name", "summary", "info.0.headline"}

// Title is the body's title or question, for lists: the first of title, question, municipality,
// name, summary and an alert's headline that holds a text; "" when none does. It looks the fields up in the body
// (gjson) rather than decoding it whole: a search holds hundreds of hits, a Q&A's or a
// guidance's text runs to kilobytes, and BenchmarkTitle puts a whole decode at 6–10× the cost.
func Title(body []byte) string {
	for _, k := range titleFields {
		if v := gjson.GetBytes(body, k); v.Type == gjson.String && v.Str != "" {
			return v.Str
		}
	}
	return ""
}

// OneLine is s on one line, for one cell of a table: a newline, carriage return or tab is a
// space, so that a row cannot become two (a newline in a partner's title could otherwise print a
// row of its own making under another source's name).
func OneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s)
}

// Summary is a body in one line of at most width characters, for a terminal's table: its title
// (Title), then its other top-level numbers, booleans and short texts
// in their order in the body, "beds_free 14". Long texts, objects and arrays are left out. A body
// without a title is led by its first text, however long.
func Summary(body []byte, width int) string {
	title := Title(body)
	if title == "" {
		// A body without a title (an assessment: long texts) is led by its first text.
		gjson.ParseBytes(body).ForEach(func(_, v gjson.Result) bool {
			if v.Type == gjson.String && strings.TrimSpace(v.Str) != "" {
				title = v.Str
				return false
			}
			return true
		})
	}
	parts := []string{}
	if title != "" {
		parts = append(parts, title)
	}
	gjson.ParseBytes(body).ForEach(func(k, v gjson.Result) bool {
		switch {
		case v.Type == gjson.String && (v.Str == title || v.Str == "" || len(v.Str) > 40):
		case v.Type == gjson.String:
			parts = append(parts, k.Str+" "+v.Str)
		case v.Type == gjson.Number:
			parts = append(parts, k.Str+" "+strconv.FormatFloat(v.Num, 'f', -1, 64))
		case v.Type == gjson.True, v.Type == gjson.False:
			parts = append(parts, k.Str+" "+v.Raw)
		}
		return true
	})
	s := OneLine(strings.Join(parts, " · "))
	if r := []rune(s); len(r) > width {
		s = string(r[:max(width-1, 0)]) + "…"
	}
	return s
}
