package warn_test

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/warn"
)

// base is the start of every random history; every time in it is a whole minute after base.
var base = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func minute(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }

// TestDryRunMatchesReferenceModel checks rule evaluation against a plain model, on random
// histories: the model recomputes every sum and count from all the versions at every minute, and
// steps a state machine of its own for `for:` and the clear condition. The rules cover a sum with
// and without hysteresis, a delta window, a count window and conditions on a record's fields (any
// record, and how many, with a value), with random thresholds, windows,
// `for:` durations and a retention start that cuts windows short.
func TestDryRunMatchesReferenceModel(t *testing.T) {
	const iterations = 300
	shared := 0
	for it := range iterations {
		rng := rand.New(rand.NewPCG(uint64(it), 18))
		vs := randomHistory(rng)
		since := time.Time{}
		if rng.IntN(3) == 0 {
			since = minute(rng.IntN(200))
		}
		r := randomRule(rng)
		m := model{vs: vs, since: since, crisis: r.crisis}
		rule, err := warn.Lint([]byte(r.src), nil)
		if err != nil {
			t.Fatalf("iteration %d: rule does not lint: %v\n%s", it, err, r.src)
		}
		from, to := minute(0), minute(720)
		got, errs, err := rule.DryRun(context.Background(), warn.NewHistory(vs, since), from, to, time.Minute)
		if err != nil {
			t.Fatalf("iteration %d: dry run: %v", it, err)
		}
		for _, e := range errs {
			// The one failure a random history makes: a sum where no record carries the field.
			if !strings.Contains(e.Error(), "has no value") {
				t.Fatalf("iteration %d: dry run: %v", it, e)
			}
		}
		if !since.IsZero() {
			from = since
		}
		var want []string
		for _, region := range []string{"VR01", "VR02"} {
			want = append(want, m.episodes(r, region, from, to)...)
		}
		var have []string
		for _, e := range got {
			have = append(have, episodeString(e.Region, e.Start, e.End))
		}
		if !slices.Equal(have, want) {
			t.Fatalf("iteration %d: rule\n%s\nsince %v\n got episodes %v\nwant episodes %v", it, r.src, since, have, want)
		}
		if m.shared() {
			shared++
		}
	}
	// Records of several sources share a slot in enough histories that the slots are tested.
	if shared < iterations/4 {
		t.Errorf("records shared a slot in %d histories of %d", shared, iterations)
	}
}

func episodeString(region string, start, end time.Time) string {
	s := fmt.Sprintf("%s %d-", region, int(start.Sub(base)/time.Minute))
	if !end.IsZero() {
		s += fmt.Sprint(int(end.Sub(base) / time.Minute))
	}
	return s
}

// municipalities are what a random shelter record reports: Bunnik written three ways (one slot),
// Goes, white space alone and nothing (each record a slot of its own).
var municipalities = []string{"Bunnik", "bunnik", " BUNNIK ", "Goes", "  ", ""}

// randomHistory makes versions of shelter records of three sources (which update, move between
// regions, municipalities and crises, and are deleted; several report one municipality) and
// signals, in two regions, at whole minutes.
func randomHistory(rng *rand.Rand) []warn.Version {
	var vs []warn.Version
	regions := []string{"VR01", "VR02"}
	shared := map[string]bool{}
	for i := range 2 + rng.IntN(5) {
		at := rng.IntN(300)
		region := regions[rng.IntN(2)]
		origin := []string{"", "p.test", "q.test"}[rng.IntN(3)]
		id := fmt.Sprintf("s%d", i)
		if rng.IntN(4) == 0 && !shared[origin] {
			id, shared[origin] = "s", true // two sources' records of one id
		}
		municipality, crisis := municipalities[rng.IntN(len(municipalities))], "c"
		for v := int64(1); at <= 720; v++ {
			ver := warn.Version{Origin: origin, ID: id, Version: v, Kind: "shelter.capacity",
				Crisis: crisis, Region: region, At: minute(at), Fields: map[string]float64{"beds_free": float64(rng.IntN(100)), "beds_total": 100},
				Values: map[string]any{"location": "l"}}
			if municipality != "" {
				ver.Values["municipality"] = municipality
			}
			if rng.IntN(4) == 0 {
				delete(ver.Fields, "beds_free") // a body without the field adds nothing
			}
			if rng.IntN(20) == 0 {
				ver.Fields["beds_free"] = -1.7e308 // over record.MaxAggregate: left out, as if absent
			}
			if rng.IntN(12) == 0 {
				ver.Tombstone, ver.Fields, ver.Values = true, map[string]float64{}, nil
				vs = append(vs, ver)
				break
			}
			vs = append(vs, ver)
			if rng.IntN(6) == 0 {
				region = regions[rng.IntN(2)]
			}
			if rng.IntN(8) == 0 {
				municipality = municipalities[rng.IntN(len(municipalities))]
			}
			if rng.IntN(12) == 0 {
				crisis = []string{"c", "d"}[rng.IntN(2)]
			}
			at += 1 + rng.IntN(90)
		}
	}
	// Sitreps whose severity changes, that move, lose the field, and are deleted.
	for i := range rng.IntN(5) {
		at, region := rng.IntN(400), regions[rng.IntN(2)]
		for v := int64(1); at <= 720; v++ {
			ver := warn.Version{Origin: []string{"", "p.test"}[rng.IntN(2)], ID: fmt.Sprintf("r%d", i), Version: v, Kind: "sitrep", Crisis: "c",
				Region: region, At: minute(at), Values: map[string]any{"title": "t", "severity": severities[rng.IntN(len(severities))]}}
			if rng.IntN(5) == 0 {
				delete(ver.Values, "severity") // reads as ""
			}
			if rng.IntN(10) == 0 {
				ver.Tombstone = true // keeps its values: a delete counts for nothing all the same
				vs = append(vs, ver)
				break
			}
			vs = append(vs, ver)
			if rng.IntN(6) == 0 {
				region = regions[rng.IntN(2)]
			}
			at += 1 + rng.IntN(60)
		}
	}
	for i := range rng.IntN(12) {
		vs = append(vs, warn.Version{ID: fmt.Sprintf("g%d", i), Version: 1, Kind: "signal", Crisis: "c", Region: regions[rng.IntN(2)], At: minute(rng.IntN(720)), Fields: map[string]float64{}})
	}
	rng.Shuffle(len(vs), func(i, j int) { vs[i], vs[j] = vs[j], vs[i] })
	return vs
}

// refRule is a rule's text and the model's own reading of its conditions.
// when and clear return whether the condition holds, and whether it can be evaluated.
type refRule struct {
	src    string
	crisis string // "": every crisis
	for_   int    // minutes
	when   func(m model, region string, t int) (holds, ok bool)
	clear  func(m model, region string, t int) (holds, ok bool)
}

// always is a condition that can always be evaluated.
func always(b bool) (bool, bool) { return b, true }

var severities = []string{"low", "medium", "high", "critical"}

func randomRule(rng *rand.Rand) refRule {
	r := refRule{for_: []int{0, 0, 1, 5, 30, 90}[rng.IntN(6)]}
	var when, clear string
	switch rng.IntN(6) {
	case 4: // any record with a field's value
		sev := severities[rng.IntN(len(severities))]
		when = fmt.Sprintf(`records("sitrep").exists(r, r.severity == "%s")`, sev)
		r.when = func(m model, region string, t int) (bool, bool) { return always(m.sitreps(region, t, sev) > 0) }
	case 5: // how many records have a field's value, with hysteresis
		sev := severities[rng.IntN(len(severities))]
		n := 1 + rng.IntN(3)
		k := rng.IntN(n + 1)
		when = fmt.Sprintf(`records("sitrep").filter(r, r.severity == "%s").size() >= %d`, sev, n)
		clear = fmt.Sprintf(`records("sitrep").filter(r, r.severity == "%s").size() < %d`, sev, k)
		r.when = func(m model, region string, t int) (bool, bool) { return always(m.sitreps(region, t, sev) >= n) }
		r.clear = func(m model, region string, t int) (bool, bool) { return always(m.sitreps(region, t, sev) < k) }
	case 0: // a sum, with hysteresis; or with a clear that can hold with when at once
		a := float64(50 + rng.IntN(150))
		b := a + float64(rng.IntN(120)-60)
		when = fmt.Sprintf(`sum("shelter.capacity", "beds_free") < %.1f`, a)
		clear = fmt.Sprintf(`sum("shelter.capacity", "beds_free") > %.1f`, b)
		r.when = func(m model, region string, t int) (bool, bool) { s, ok := m.sum(region, t); return s < a, ok }
		r.clear = func(m model, region string, t int) (bool, bool) { s, ok := m.sum(region, t); return s > b, ok }
	case 1: // a sum, clearing when it no longer holds
		a := float64(rng.IntN(200))
		when = fmt.Sprintf(`sum("shelter.capacity", "beds_free") >= %.1f`, a)
		r.when = func(m model, region string, t int) (bool, bool) { s, ok := m.sum(region, t); return s >= a, ok }
	case 2: // a delta window
		d := 1 + rng.IntN(120)
		c := float64(rng.IntN(80))
		when = fmt.Sprintf(`delta(sum("shelter.capacity", "beds_free"), duration("%dm")) < -%.1f`, d, c)
		r.when = func(m model, region string, t int) (bool, bool) {
			now, ok1 := m.sum(region, t)
			then, ok2 := m.sum(region, t-d)
			return now-then < -c, ok1 && ok2
		}
	default: // a count window, with hysteresis
		w := 1 + rng.IntN(240)
		n := 1 + rng.IntN(3)
		k := rng.IntN(n + 1)
		when = fmt.Sprintf(`count("signal", duration("%dm")) >= %d`, w, n)
		clear = fmt.Sprintf(`count("signal", duration("%dm")) < %d`, w, k)
		r.when = func(m model, region string, t int) (bool, bool) { return always(m.count(region, t, w) >= n) }
		r.clear = func(m model, region string, t int) (bool, bool) { return always(m.count(region, t, w) < k) }
	}
	if r.clear == nil {
		w := r.when
		r.clear = func(m model, region string, t int) (bool, bool) { h, ok := w(m, region, t); return !h, ok }
	}
	r.src = fmt.Sprintf("name: r\nseverity: minor\nregions: [VR01, VR02]\nwhen: '%s'\nfor: %dm\n", when, r.for_)
	if rng.IntN(2) == 0 {
		r.crisis = "c"
		r.src += "crisis: c\n"
	}
	if clear != "" {
		r.src += fmt.Sprintf("clear: '%s'\n", clear)
	}
	return r
}

// model answers from all the versions, by brute force.
type model struct {
	vs     []warn.Version
	since  time.Time
	crisis string // the rule's; "" for every crisis
}

func (m model) minutes(t time.Time) int { return int(t.Sub(base) / time.Minute) }

// latest is every record's latest version of the kind at or before minute t. Minutes before the
// retention start read it.
func (m model) latest(kind string, t int) map[string]warn.Version {
	if !m.since.IsZero() && t < m.minutes(m.since) {
		t = m.minutes(m.since)
	}
	latest := map[string]warn.Version{}
	for _, v := range m.vs {
		if v.Kind != kind || m.minutes(v.At) > t {
			continue
		}
		k := v.Origin + "/" + v.ID
		if cur, ok := latest[k]; !ok || v.Version > cur.Version {
			latest[k] = v
		}
	}
	return latest
}

// counts says whether a record's latest version counts: it is not a delete, and is of the rule's
// crisis, if it has one.
func (m model) counts(v warn.Version) bool {
	return !v.Tombstone && (m.crisis == "" || v.Crisis == m.crisis)
}

// slots are the records that count in the region at minute t (their latest version at or before
// it) in the picture's slots, each slot's latest first. A slot is the crisis, the region and the
// municipality as record.SlotKey folds it, whoever reports it, or, without a municipality (none,
// or white space), the origin and id. The latest is the one updated later, then the higher
// version, then the origin, then the id, that sorts first. Minutes before the retention start
// read it.
func (m model) slots(region string, t int) map[string][]warn.Version {
	out := map[string][]warn.Version{}
	for _, v := range m.latest("shelter.capacity", t) {
		if !m.counts(v) || v.Region != region {
			continue
		}
		slot := v.Crisis + "/" + v.Region + "/id/" + v.Origin + "/" + v.ID
		if mun, _ := v.Values["municipality"].(string); strings.TrimSpace(mun) != "" {
			slot = v.Crisis + "/" + v.Region + "/municipality/" + record.SlotKey(mun)
		}
		out[slot] = append(out[slot], v)
	}
	for _, vs := range out {
		slices.SortFunc(vs, func(a, b warn.Version) int {
			return cmp.Or(b.At.Compare(a.At), cmp.Compare(b.Version, a.Version), cmp.Compare(a.Origin, b.Origin), cmp.Compare(a.ID, b.ID))
		})
	}
	return out
}

// sum adds what the picture shows in the region at minute t: the field of each slot's latest
// record, where it carries it within record.MaxAggregate. ok is false where none does.
func (m model) sum(region string, t int) (total float64, ok bool) {
	for _, vs := range m.slots(region, t) {
		if f, has := vs[0].Fields["beds_free"]; has && math.Abs(f) <= record.MaxAggregate {
			total += f
			ok = true
		}
	}
	return total, ok
}

// shared says whether two records or more share a slot in a region at some minute: whether the
// history tests the slots at all. What counts changes only at a version's minute.
func (m model) shared() bool {
	for _, v := range m.vs {
		t := m.minutes(v.At)
		for _, region := range []string{"VR01", "VR02"} {
			for _, vs := range m.slots(region, t) {
				if len(vs) > 1 {
					return true
				}
			}
		}
	}
	return false
}

// sitreps counts the sitreps whose latest version at or before minute t is in the region, is not a
// delete, and has the severity. Minutes before the retention start read it.
func (m model) sitreps(region string, t int, severity string) int {
	n := 0
	for _, v := range m.latest("sitrep", t) {
		if m.counts(v) && v.Region == region && v.Values["severity"] == severity {
			n++
		}
	}
	return n
}

// count is the signals whose first version is in the region, within (t-w, t], and not before the
// retention start.
func (m model) count(region string, t, w int) int {
	n := 0
	for _, v := range m.vs {
		at := m.minutes(v.At)
		if v.Kind == "signal" && v.Region == region && (m.crisis == "" || v.Crisis == m.crisis) && at > t-w && at <= t && (m.since.IsZero() || !v.At.Before(m.since)) {
			n++
		}
	}
	return n
}

// episodes steps the rule minute by minute from from to to.
func (m model) episodes(r refRule, region string, from, to time.Time) []string {
	var out []string
	firing, run := false, -1
	var start int
	for t := m.minutes(from); t <= m.minutes(to); t++ {
		if firing {
			// A clear that cannot be evaluated keeps the rule firing.
			if c, ok := r.clear(m, region, t); ok && c {
				out = append(out, episodeString(region, minute(start), minute(t)))
				firing = false
			}
			continue
		}
		if w, ok := r.when(m, region, t); !ok || !w {
			run = -1
			continue
		}
		if run < 0 {
			run = t
		}
		if t-run >= r.for_ {
			firing, start, run = true, t, -1
		}
	}
	if firing {
		out = append(out, episodeString(region, minute(start), time.Time{}))
	}
	return out
}

// TestDryRunIsBoundedWithoutRegions: a dry run of a rule that names no regions, over a history
// with no records of its kinds, is bounded as any other: its instants are made whether a region
// has records or not, and a year of seconds was gigabytes of them.
func TestDryRunIsBoundedWithoutRegions(t *testing.T) {
	rule, err := warn.Lint([]byte("name: elk\nseverity: minor\ncrisis: c\nwhen: sum(\"shelter.capacity\", \"beds_free\") < 10\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = rule.DryRun(context.Background(), warn.NewHistory(nil, time.Time{}), base, base.AddDate(1, 0, 0), time.Second)
	if err == nil {
		t.Fatal("a dry run of a year of seconds, with no region, ran")
	}
	if _, _, err := rule.DryRun(context.Background(), warn.NewHistory(nil, time.Time{}), base, base.Add(time.Hour), time.Minute); err != nil {
		t.Errorf("an hour of minutes with no region: %v", err)
	}
}
