package ui

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/language"

	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

//go:embed messages/*.json
var messageFiles embed.FS

// Languages the interface speaks; the first is the default.
var languages = []language.Tag{language.Dutch, language.English}

var langMatcher = language.NewMatcher(languages)

// catalogue maps a message key to its text, with fmt verbs for arguments.
type catalogue map[string]string

// loadCatalogues reads messages/<lang>.json for every language. The English catalogue takes the
// policy linter's messages (lint.CODE) from package policy, which writes them in English; the
// others translate them.
func loadCatalogues() (map[string]catalogue, error) {
	out := map[string]catalogue{}
	for _, tag := range languages {
		base, _ := tag.Base()
		name := "messages/" + base.String() + ".json"
		data, err := messageFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("ui: %w", err)
		}
		var c catalogue
		if err := json.Unmarshal(data, &c); err != nil {
			return nil, fmt.Errorf("ui: %s: %w", name, err)
		}
		if base.String() == "en" {
			for code, m := range policy.LintMessages {
				c["lint."+code] = m
			}
			for code, m := range policy.VerdictMessages {
				c["verdict."+code] = m
			}
		}
		out[base.String()] = c
	}
	return out, nil
}

// Lang is one language's catalogue, as templates see it: {{.L.T "picture.heading" .Crisis}}.
type Lang struct {
	// Code is the language's code, such as nl.
	Code string
	cat  catalogue
	// titles are the declared kinds' titles from their schemas (see kindTitles).
	titles map[string]string
}

// Kind is what people call a kind: the title its schema gives it, else the catalogue's
// (kind.NAME, for the kinds a node knows without a config: record.DemoKinds), else its name
// (road.closure).
func (l *Lang) Kind(name string) string {
	if t := l.titles[name]; t != "" {
		return t
	}
	if key := "kind." + name; l.Has(key) {
		return l.T(key)
	}
	return name
}

// Region is a region as people know it: the code and the safety region's name (VR09 Utrecht),
// the whole country in the page's language for NL, else the code as it is.
func (l *Lang) Region(code string) string {
	if code == "NL" {
		return l.T("region.nl")
	}
	if name := record.RegionName(code); name != "" {
		return code + " " + name
	}
	return code
}

// Class names a classification in the language (class.NAME: intern, departementaal
// vertrouwelijk).
func (l *Lang) Class(c pb.Classification) string {
	return l.T("class." + strings.ToLower(c.String()))
}

// KindDescription is what records of a kind hold, in the person's language where the catalogue
// says it (kinddesc.NAME), else as the kind declares it.
func (l *Lang) KindDescription(k *record.Kind) string {
	if key := "kinddesc." + k.Name; l.Has(key) {
		return l.T(key)
	}
	return k.Description
}

// kindTitles are the titles that kinds' schemas give them ("title" at the top), by kind name.
func kindTitles(kinds *record.Kinds) map[string]string {
	out := map[string]string{}
	for _, n := range kinds.Names() {
		if t := schemaDoc(kinds.Get(n)).Title; t != "" {
			out[n] = t
		}
	}
	return out
}

// T returns the text of key with args filled in. A key missing from the catalogue shows as
// itself in brackets, so that it is seen and fixed; the catalogue test catches it first.
func (l *Lang) T(key string, args ...any) string {
	s, ok := l.cat[key]
	if !ok {
		return "[" + key + "]"
	}
	if len(args) == 0 {
		return s
	}
	return fmt.Sprintf(s, args...)
}

// AuditAction is an audit log action in people's words (Beleid goedgekeurd for policy.approve),
// or "" for one the catalogue does not name; a prefix ending in a dot (policy.) names them all.
func (l *Lang) AuditAction(code string) string {
	if key := "audit.action." + code; l.Has(key) {
		return l.T(key)
	}
	return ""
}

// Value is a field's value from a fixed list in people's words (value.FIELD.VALUE: gemiddeld
// for a severity of medium), else as it is: the form's choices, the record and its versions say
// it alike.
func (l *Lang) Value(field, v string) string {
	if key := "value." + field + "." + v; l.Has(key) {
		return l.T(key)
	}
	return v
}

// When is a moment as people read it, 5 december 2026, 20:28 (month names in the page's
// language), in the interface's zone. The exact time with its zone stays at hand: in the time
// element's datetime for machines and its title on pointing.
func (l *Lang) When(t time.Time) template.HTML {
	t = local(t)
	return template.HTML(`<time datetime="` + t.Format(time.RFC3339) + `" title="` + template.HTMLEscapeString(t.Format("2006-01-02 15:04:05 MST")) + `">` +
		template.HTMLEscapeString(l.WhenText(t)) + `</time>`)
}

// WhenText is When's text alone, for a value the page escapes itself (an alert's fields).
func (l *Lang) WhenText(t time.Time) string {
	t = local(t)
	months := strings.Fields(l.T("date.months"))
	month := t.Format("January")
	if len(months) == 12 {
		month = months[t.Month()-1]
	}
	return l.T("date.format", t.Day(), month, t.Year(), t.Format("15:04"))
}

// Ago is an age (zojuist, 7 min geleden) with the time it stands for: in the time element's
// title for the mouse, and after it as text out of sight, which a screen reader reads and which
// keyboard and touch users, who cannot open a title, thus get too (review AB, AB6); paper prints
// it beside the age, which holds only when the page was made. An age without a time is the age.
func (l *Lang) Ago(age string, t time.Time) template.HTML {
	if t.IsZero() {
		return template.HTML(template.HTMLEscapeString(age))
	}
	t = local(t)
	exact := template.HTMLEscapeString(l.WhenText(t))
	return template.HTML(`<time datetime="` + t.Format(time.RFC3339) + `" title="` + exact + `">` + template.HTMLEscapeString(age) + `</time>` +
		`<span class="kp-visually-hidden kp-print-inline">, ` + exact + `</span>`)
}

// WhenAgo is When with how long ago it was, (3 uur geleden), where a page has room for both.
func (l *Lang) WhenAgo(t, now time.Time) template.HTML {
	return l.When(t) + template.HTML(" ("+template.HTMLEscapeString(age(l, int64(now.Sub(t)/time.Second)))+")")
}

// Figure is Number of a figure kept as text, as a table's cells keep it for a CSV file; text that
// is no number (an empty cell) stays as it is.
func (l *Lang) Figure(s string) string {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return l.Number(f)
}

// Number writes a figure as people of the page's language read it: 1.100 and 0,6 in Dutch,
// 1,100 and 0.6 in English. Figures meant for a machine (a CSV, a form's value) keep their own.
func (l *Lang) Number(f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	group, point := ",", "."
	if l.Code == "nl" {
		group, point = ".", ","
	}
	var b strings.Builder
	for i, d := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteString(group)
		}
		b.WriteRune(d)
	}
	if frac != "" {
		b.WriteString(point + frac)
	}
	return sign + b.String()
}

// Has reports whether the catalogue has key, for text that is optional, such as the label of a
// declared kind's field.
func (l *Lang) Has(key string) bool {
	_, ok := l.cat[key]
	return ok
}

// langCookie holds the language the person chose with the menu's link.
const langCookie = "knooppunt_taal"

// pickLang chooses the language of a request: the person's choice, else Dutch. The browser's
// Accept-Language is not asked: a government laptop's browser says en-US, and its Dutch staff
// would get English they never chose.
func (s *Server) pickLang(r *http.Request) *Lang {
	code := "nl"
	if c, err := r.Cookie(langCookie); err == nil {
		if t, err := language.Parse(c.Value); err == nil {
			tag, _, _ := langMatcher.Match(t)
			base, _ := tag.Base()
			code = base.String()
		}
	}
	if _, ok := s.cats[code]; !ok {
		code = "nl"
	}
	return s.lang(code)
}

// lang is the language of code, which must be one of the catalogues.
func (s *Server) lang(code string) *Lang {
	return &Lang{Code: code, cat: s.cats[code], titles: s.titles}
}

// keys lists a catalogue's keys, sorted.
func (c catalogue) keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
