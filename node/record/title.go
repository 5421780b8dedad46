package record

import (
	"slices"
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
// (Title), then its other top-level numbers ("beds_free 14"), then its booleans and short texts,
// each in their order in the body, so that a cut at the width loses texts before figures. Long
// texts, objects and arrays are left out. A body without a title is led by its first text,
// however long. A width of 0 cuts nothing.
func Summary(body []byte, width int) string {
	return summary(body, width, nil, "", true)
}

// RowSummary is Summary for a row about the body's fields lead (a kind's aggregate figures,
// "beds_free 3 · beds_total 150") in a table that names the record by key in a column of its own
// (a picture's, the municipality): the fields lead, in that order, and a title that is the key is
// left out rather than said twice.
func RowSummary(body []byte, width int, lead []string, key string) string {
	return summary(body, width, lead, key, false)
}

// summary is Summary (figuresFirst) and RowSummary.
func summary(body []byte, width int, lead []string, key string, figuresFirst bool) string {
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
	for _, k := range lead {
		if v := gjson.GetBytes(body, gjson.Escape(k)); v.Exists() {
			parts = append(parts, field(k, v)...)
		}
	}
	// The key as the picture makes it: the municipality with its spaces made single.
	if title != "" && (key == "" || strings.Join(strings.Fields(title), " ") != key) {
		parts = append(parts, title)
	}
	rest := func(figures bool) {
		gjson.ParseBytes(body).ForEach(func(k, v gjson.Result) bool {
			if v.Type == gjson.String && v.Str == title || slices.Contains(lead, k.Str) ||
				figuresFirst && (v.Type == gjson.Number) != figures {
				return true
			}
			parts = append(parts, field(k.Str, v)...)
			return true
		})
	}
	rest(true)
	if figuresFirst {
		rest(false)
	}
	s := OneLine(strings.Join(parts, " · "))
	if r := []rune(s); width > 0 && len(r) > width {
		s = string(r[:max(width-1, 0)]) + "…"
	}
	return s
}

// field is a body's field as a summary shows it, "beds_free 14": nothing for an empty or long
// text, an object or an array.
func field(k string, v gjson.Result) []string {
	switch {
	case v.Type == gjson.String && (v.Str == "" || len(v.Str) > 40):
	case v.Type == gjson.String:
		return []string{k + " " + v.Str}
	case v.Type == gjson.Number:
		return []string{k + " " + strconv.FormatFloat(v.Num, 'f', -1, 64)}
	case v.Type == gjson.True, v.Type == gjson.False:
		return []string{k + " " + v.Raw}
	}
	return nil
}
