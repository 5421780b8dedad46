package search_test

// The tests of this file hold Merge to the picture as docs/api.md defines it: a property test
// compares it with a plain reference model over random records from random sources, and a table
// pins each rule with one small case.

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The world random pictures are drawn from: small, so that slots are shared, bodies agree and
// times tie often enough.
var (
	genSources = []string{"a.crisis.test", "b.crisis.test", "c.crisis.test"}
	genKinds   = []string{"shelter.capacity", "water.level", "sitrep"}
	genRegions = []string{"VR01", "VR02", "NL"}
	// Places written the ways people and tools write them: case, white space, composed and
	// decomposed (NFC, NFD), with and without diacritics, hyphens and apostrophes; and a name of
	// no letters. "r1" is also an id.
	genPlaceSpellings = [][]string{{"Utrecht"}, {"Zeist", "zeist ", " ZEIST"}, {"Houten"}, {"Den  Helder", "den helder"},
		{"S\u00fadwest-Frysl\u00e2n", "Su\u0301dwest-Frysla\u0302n", "sudwest fryslan"}, {"Schouwen-Duiveland", "Schouwen Duiveland"},
		{"'s-Hertogenbosch", "s-Hertogenbosch"}, {"--"}, {"r1"}}
	genPlaces = slices.Concat(genPlaceSpellings...)
	// sitrep declares no aggregable field; level_cm still turns up in its bodies.
	genAggregable = map[string][]string{
		"shelter.capacity": {"beds_total", "beds_free"},
		"water.level":      {"level_cm"},
	}
	genFields = []string{"beds_total", "beds_free", "level_cm"}
)

// genNumbers are JSON numbers, each with the ways it may be spelt. Each is a multiple of 1/4, so
// that sums are exact in any order.
var genNumbers = [][]string{{"0"}, {"1", "1.0", "1e0"}, {"2", "2.0"}, {"2.25"}, {"40", "4e1"}, {"-3"}, {"1000000", "1e6"}}

// spell writes raw JSON, a number in a random one of its spellings.
func spell(rng *rand.Rand, raw string) string {
	for _, n := range genNumbers {
		if slices.Contains(n, raw) {
			return n[rng.Intn(len(n))]
		}
	}
	return raw
}

// member is one member of a generated body, as raw JSON.
type member struct{ key, raw string }

// genBody draws the members of a body: a municipality, or one that is empty, not a string or
// absent; numbers, strings and nulls in the aggregable fields of every kind; a note that may
// differ.
func genBody(rng *rand.Rand) []member {
	var ms []member
	switch rng.Intn(10) {
	case 0:
		ms = append(ms, member{"municipality", `""`})
	case 1:
		ms = append(ms, member{"municipality", "7"})
	case 2:
		ms = append(ms, member{"municipality", "null"})
	case 3:
	default:
		ms = append(ms, member{"municipality", fmt.Sprintf("%q", genPlaces[rng.Intn(len(genPlaces))])})
	}
	for _, f := range genFields {
		switch rng.Intn(10) {
		case 0:
		case 1:
			ms = append(ms, member{f, `"2"`})
		case 2:
			ms = append(ms, member{f, "null"})
		default:
			ms = append(ms, member{f, genNumbers[rng.Intn(len(genNumbers))][0]})
		}
	}
	if rng.Intn(3) == 0 {
		ms = append(ms, member{"notes", []string{`"full"`, `"a b"`, `["a","b"]`, `["a b"]`}[rng.Intn(4)]})
	}
	return ms
}

// render writes members as a JSON object: in random order, with random white space, and each
// number in a random spelling.
func render(rng *rand.Rand, ms []member) []byte {
	ms = slices.Clone(ms)
	rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	space := func() string { return []string{"", " ", "\n  "}[rng.Intn(3)] }
	var b strings.Builder
	b.WriteString("{" + space())
	for i, m := range ms {
		if i > 0 {
			b.WriteString("," + space())
		}
		fmt.Fprintf(&b, "%q:%s%s", m.key, space(), spell(rng, m.raw))
	}
	b.WriteString(space() + "}")
	return []byte(b.String())
}

// genItems draws up to 40 records from random sources. A source holds each id once, as the store
// and the cache do; ids repeat across sources. A quarter of the records report what an earlier one
// did (its kind, region and body, spelt anew), so that sources agree as well as disagree, and a
// quarter other figures of an earlier one's kind, region and municipality. Times
// come from a few offsets around now and the stale limit, some with a part of a second, so that
// ties and the limit itself turn up.
func genItems(rng *rand.Rand, now time.Time, staleAfter time.Duration) []search.Item {
	offsets := []time.Duration{-time.Hour, 0, time.Second, staleAfter - time.Second, staleAfter, staleAfter + time.Nanosecond,
		staleAfter + time.Second, 3 * 24 * time.Hour}
	type report struct {
		kind, region string
		body         []member
	}
	var said []report
	held := map[string]bool{}
	var items []search.Item
	for range rng.Intn(41) {
		src := genSources[rng.Intn(len(genSources))]
		id := fmt.Sprintf("r%d", rng.Intn(8))
		if held[src+"/"+id] {
			continue
		}
		held[src+"/"+id] = true
		rep := report{genKinds[rng.Intn(len(genKinds))], genRegions[rng.Intn(len(genRegions))], genBody(rng)}
		if len(said) > 0 {
			switch rng.Intn(4) {
			case 0:
				rep = said[rng.Intn(len(said))]
			case 1:
				// Of the same place (or id) as an earlier one, with figures of its own.
				was := said[rng.Intn(len(said))]
				rep.kind, rep.region = was.kind, was.region
				rep.body = slices.DeleteFunc(rep.body, func(m member) bool { return m.key == "municipality" })
				for _, m := range was.body {
					if m.key == "municipality" {
						// Half the time spelt another way.
						for _, spellings := range genPlaceSpellings {
							if rng.Intn(2) == 0 && slices.ContainsFunc(spellings, func(sp string) bool { return fmt.Sprintf("%q", sp) == m.raw }) {
								m.raw = fmt.Sprintf("%q", spellings[rng.Intn(len(spellings))])
							}
						}
						rep.body = append(rep.body, m)
					}
				}
			}
		}
		said = append(said, rep)
		at := now.Add(-offsets[rng.Intn(len(offsets))])
		if rng.Intn(4) == 0 {
			at = at.Add(-time.Duration(rng.Intn(3)) * 400 * time.Millisecond)
		}
		// Half the records came from partners, received at a time of their own: before the
		// date they carry (a partner's clock ahead of this node's), at it, or after it.
		var received time.Time
		if rng.Intn(2) == 0 {
			received = now.Add(-offsets[rng.Intn(len(offsets))])
		}
		items = append(items, search.Item{Source: src, ReceivedAt: received, Record: &pb.Record{
			Id: id, Origin: src, Kind: rep.kind, Crisis: "prop", Region: rep.region,
			Classification: pb.Classification_INTERNAL, Body: render(rng, rep.body),
			Version: int64(1 + rng.Intn(3)), UpdatedAt: timestamppb.New(at),
		}})
	}
	return items
}

// refEntry is the reference model's entry of one slot.
type refEntry struct {
	kind, region, key string
	source, id        string
	version, ageS     int64
	stale             bool
	conflict          []string
	leftOut           []string
	// disagreeing is, for each source in conflict, its latest record in the slot, as
	// describeRecord writes it.
	disagreeing []string
	// conflictFields are the top-level members in which one of them differs from the entry's
	// body, a member one lacks included; figures, that an aggregable field is in both and
	// differs, or that the kind has none.
	conflictFields []string
	figures        bool
}

// value is a decoded JSON value as one string, to compare: encoding/json writes every number the
// same way and map keys sorted.
func value(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// describeRecord is a record as the reference model compares it: its origin, id, version and
// body as written.
func describeRecord(r *pb.Record) string {
	return fmt.Sprintf("%s/%s v%d %s", r.GetOrigin(), r.GetId(), r.GetVersion(), r.GetBody())
}

// refStats counts what a random picture reached, so that the test can tell whether its draw
// still tests anything.
type refStats struct {
	conflicts, agreements, stale, timeTies, national, leftOut int
	// figures counts the entries whose figures disagree, otherOnly those that disagree elsewhere
	// only.
	figures, otherOnly int
	// never counts entries older than the trial's limit whose kind is never stale.
	never int
	// ahead counts entries of a partner's record dated after this node received it.
	ahead int
	// folded counts municipality slots whose records write the key in more than one way;
	// idApart, entries keyed by an id that another source's record of the slot's kind and
	// region has too; short, sums that lack some entries of their kind.
	folded, idApart, short int
}

// refSum is the reference model's aggregate of one kind, field and region.
type refSum struct {
	sum     float64
	records int64
	// entries counts the entries of the kind in the region (in NL: all), with the field or not.
	entries int64
}

// reference is the picture of docs/api.md, computed the plain way: decode every body, group the
// records by slot, sort each slot's records from latest to oldest, and read the answer off the
// sorted list.
// refKey is the key docs/api.md gives a record: its body's municipality, trimmed and with each
// run of white space one space, when that leaves a string that is not empty; else its id (byID).
func refKey(r *pb.Record) (key string, byID bool) {
	var body map[string]any
	_ = json.Unmarshal(r.Body, &body)
	if m, ok := body["municipality"].(string); ok {
		if k := strings.Join(strings.Fields(m), " "); k != "" {
			return k, false
		}
	}
	return r.Id, true
}

// refSlot is the slot docs/api.md gives a record of source, as one string that sorts as the
// entries do: kind, region, key, source. A municipality's key is its letters and digits
// without diacritics (decomposed, NFD, with the nonspacing marks dropped) in lower case, each
// run of anything else one space, and its source is none: whoever reports it, it is one slot. A
// name of no letters or digits is its own key. An id is a key within its source only.
func refSlot(it search.Item) string {
	key, byID := refKey(it.Record)
	source := ""
	if byID {
		source = it.Source
	} else {
		var b strings.Builder
		for _, r := range norm.NFD.String(key) {
			switch {
			case unicode.Is(unicode.Mn, r):
			case unicode.IsLetter(r) || unicode.IsNumber(r):
				b.WriteRune(unicode.ToLower(r))
			default:
				b.WriteRune(' ')
			}
		}
		if folded := strings.Join(strings.Fields(b.String()), " "); folded != "" {
			key = folded
		}
	}
	return it.Record.Kind + "\x00" + it.Record.Region + "\x00" + key + "\x00" + source
}

func reference(items []search.Item, aggregable map[string][]string, now time.Time, limits map[string]time.Duration) ([]refEntry, map[[3]string]refSum, []string, refStats) {
	var st refStats
	decode := func(b []byte) map[string]any {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			panic(fmt.Sprintf("generated body %s: %v", b, err))
		}
		return m
	}
	// canonical is a body as one string: encoding/json writes map keys sorted and every number
	// the same way, so two bodies are the same JSON value exactly when these are equal.
	canonical := func(b []byte) string {
		out, err := json.Marshal(decode(b))
		if err != nil {
			panic(err)
		}
		return string(out)
	}
	slots := map[string][]search.Item{}
	var names []string
	sources := map[string]bool{}
	for _, it := range items {
		name := refSlot(it)
		if slots[name] == nil {
			names = append(names, name)
		}
		slots[name] = append(slots[name], it)
		sources[it.Source] = true
	}
	sort.Strings(names) // kind, region, key, source: \x00 sorts before every other byte
	var entries []refEntry
	sums := map[[3]string]refSum{}
	// kindEntries counts the entries of each kind per region and in NL, for the sums' entries.
	kindEntries := map[[2]string]int64{}
	// shownKeys are the keys, as written, of each municipality slot's records.
	shownKeys := map[string]bool{}
	for _, name := range names {
		recs := slots[name]
		// A partner's record counts as updated no later than this node received it.
		updated := func(it search.Item) time.Time {
			t := it.Record.UpdatedAt.AsTime()
			if !it.ReceivedAt.IsZero() && it.ReceivedAt.Before(t) {
				t = it.ReceivedAt
			}
			return t
		}
		sort.Slice(recs, func(i, j int) bool {
			a, b := recs[i], recs[j]
			ta, tb := updated(a).UnixNano(), updated(b).UnixNano()
			if ta != tb {
				return ta > tb
			}
			if ua, ub := a.Record.UpdatedAt.AsTime().UnixNano(), b.Record.UpdatedAt.AsTime().UnixNano(); ua != ub {
				return ua > ub
			}
			if a.Record.Version != b.Record.Version {
				return a.Record.Version > b.Record.Version
			}
			if a.Source != b.Source {
				return a.Source < b.Source
			}
			return a.Record.Id < b.Record.Id
		})
		top := recs[0]
		if !top.ReceivedAt.IsZero() && top.ReceivedAt.Before(top.Record.UpdatedAt.AsTime()) {
			st.ahead++
		}
		parts := strings.Split(name, "\x00")
		age := now.Sub(updated(top))
		limit := limits[parts[0]]
		key, byID := refKey(top.Record)
		e := refEntry{kind: parts[0], region: parts[1], key: key, source: top.Source, id: top.Record.Id,
			version: top.Record.Version, ageS: int64(age / time.Second), stale: limit != record.NeverStale && age > limit}
		if limit == record.NeverStale && age > 24*time.Hour {
			st.never++
		}
		seen := map[string]bool{top.Source: true}
		latestOf := map[string]*pb.Record{}
		for _, it := range recs[1:] {
			if seen[it.Source] {
				// Not that source's latest record of the slot: neither shown nor counted, and named.
				e.leftOut = append(e.leftOut, it.Source+"/"+it.Record.Id)
				continue
			}
			seen[it.Source] = true
			latestOf[it.Source] = it.Record
			if canonical(it.Record.Body) != canonical(top.Record.Body) {
				e.conflict = append(e.conflict, it.Source)
				mine, theirs := decode(top.Record.Body), decode(it.Record.Body)
				for _, k := range slices.Sorted(maps.Keys(mine)) {
					other, ok := theirs[k]
					if !ok || value(other) != value(mine[k]) {
						e.conflictFields = append(e.conflictFields, k)
						e.figures = e.figures || ok && slices.Contains(aggregable[e.kind], k)
					}
				}
				for k := range theirs {
					if _, ok := mine[k]; !ok {
						e.conflictFields = append(e.conflictFields, k)
					}
				}
				e.figures = e.figures || len(aggregable[e.kind]) == 0
			} else {
				st.agreements++
			}
		}
		if len(recs) > 1 && recs[1].Source != top.Source && recs[1].Record.UpdatedAt.AsTime().Equal(top.Record.UpdatedAt.AsTime()) {
			st.timeTies++
		}
		if len(e.conflict) > 0 {
			st.conflicts++
			if e.figures {
				st.figures++
			} else {
				st.otherOnly++
			}
		}
		slices.Sort(e.conflictFields)
		e.conflictFields = slices.Compact(e.conflictFields)
		if e.stale {
			st.stale++
		}
		sort.Strings(e.conflict)
		for _, src := range e.conflict {
			e.disagreeing = append(e.disagreeing, describeRecord(latestOf[src]))
		}
		sort.Strings(e.leftOut)
		if len(e.leftOut) > 0 {
			st.leftOut++
		}
		entries = append(entries, e)
		kindEntries[[2]string{e.kind, e.region}]++
		if e.region != "NL" {
			kindEntries[[2]string{e.kind, "NL"}]++
		}
		if byID {
			// Another source's record of the same id is in a slot of its own.
			for _, it := range items {
				if it.Source != top.Source && it.Record.Id == top.Record.Id && it.Record.Kind == e.kind && it.Record.Region == e.region {
					if _, other := refKey(it.Record); other {
						st.idApart++
						break
					}
				}
			}
		} else {
			clear(shownKeys)
			for _, it := range recs {
				k, _ := refKey(it.Record)
				shownKeys[k] = true
			}
			if len(shownKeys) > 1 {
				st.folded++
			}
		}
		body := decode(top.Record.Body)
		for _, f := range aggregable[e.kind] {
			v, ok := body[f].(float64)
			if !ok {
				continue
			}
			add := func(region string) {
				s := sums[[3]string{e.kind, f, region}]
				s.sum += v
				s.records++
				sums[[3]string{e.kind, f, region}] = s
			}
			add(e.region)
			if e.region != "NL" {
				add("NL")
			} else {
				st.national++
			}
		}
	}
	for k, s := range sums {
		s.entries = kindEntries[[2]string{k[0], k[2]}]
		if s.records < s.entries {
			st.short++
		}
		sums[k] = s
	}
	var srcs []string
	for s := range sources {
		srcs = append(srcs, s)
	}
	sort.Strings(srcs)
	return entries, sums, srcs, st
}

// comparePicture says how got differs from the reference model, or "".
func comparePicture(got *pb.PictureResponse, entries []refEntry, sums map[[3]string]refSum, sources []string) string {
	var diffs []string
	if !slices.Equal(got.Sources, sources) {
		diffs = append(diffs, fmt.Sprintf("sources %v, want %v", got.Sources, sources))
	}
	if len(got.Entries) != len(entries) {
		diffs = append(diffs, fmt.Sprintf("%d entries, want %d", len(got.Entries), len(entries)))
	}
	for i := range min(len(got.Entries), len(entries)) {
		g, w := got.Entries[i], entries[i]
		have := refEntry{kind: g.Kind, region: g.Region, key: g.Key, source: g.Source, id: g.Record.GetId(),
			version: g.Record.GetVersion(), ageS: g.AgeS, stale: g.Stale, conflict: g.Conflict, leftOut: g.LeftOut,
			conflictFields: g.ConflictFields, figures: g.FiguresDisagree}
		for _, r := range g.Disagreeing {
			have.disagreeing = append(have.disagreeing, describeRecord(r))
		}
		if fmt.Sprint(have) != fmt.Sprint(w) {
			diffs = append(diffs, fmt.Sprintf("entry %d is\n\t%+v, want\n\t%+v", i, have, w))
		}
		if g.Record.GetOrigin() != g.Source {
			diffs = append(diffs, fmt.Sprintf("entry %d: record of %s shown as from %s", i, g.Record.GetOrigin(), g.Source))
		}
	}
	gotSums := map[[3]string]refSum{}
	for i, a := range got.Aggregates {
		k := [3]string{a.Kind, a.Field, a.Region}
		if _, dup := gotSums[k]; dup {
			diffs = append(diffs, fmt.Sprintf("aggregate %v twice", k))
		}
		gotSums[k] = refSum{a.Sum, a.Records, a.Entries}
		if i > 0 {
			p := got.Aggregates[i-1]
			pk, ak := p.Kind+"\x00"+p.Field, a.Kind+"\x00"+a.Field
			if pk > ak || pk == ak && (p.Region == "NL" || a.Region != "NL" && p.Region > a.Region) {
				diffs = append(diffs, fmt.Sprintf("aggregate %v comes after %v", k, [3]string{p.Kind, p.Field, p.Region}))
			}
		}
	}
	for k, w := range sums {
		if g, ok := gotSums[k]; !ok || g != w {
			diffs = append(diffs, fmt.Sprintf("aggregate %v is %+v (present %v), want %+v", k, g, ok, w))
		}
	}
	for k, g := range gotSums {
		if _, ok := sums[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("aggregate %v is %+v, want none", k, g))
		}
	}
	return strings.Join(diffs, "\n")
}

// describeItems lists generated records for a failure message.
func describeItems(items []search.Item) string {
	var b strings.Builder
	for _, it := range items {
		r := it.Record
		fmt.Fprintf(&b, "\t%s %s v%d %s %s %s %s\n", it.Source, r.Id, r.Version, r.UpdatedAt.AsTime().Format(time.RFC3339Nano), r.Kind, r.Region, r.Body)
	}
	return b.String()
}

// TestMergeAgreesWithReference draws random pictures (records of three sources, of kinds with
// and without aggregable fields, in regions and nationally, keyed by municipality or id, with
// versions and times around the stale limit, which some kinds do not have: never stale) and checks that Merge agrees with the reference
// model on the latest record of every slot, every sum per region and for NL, the disagreement
// flags with the records of the sources that disagree, and the stale flags; and that Merge's answer does not depend on the order of its input.
func TestMergeAgreesWithReference(t *testing.T) {
	trials := 3000
	if testing.Short() {
		trials = 300
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var total refStats
	for seed := int64(1); seed <= int64(trials); seed++ {
		rng := rand.New(rand.NewSource(seed))
		staleAfter := []time.Duration{time.Hour, 24 * time.Hour}[rng.Intn(2)]
		limits := map[string]time.Duration{}
		for i, k := range genKinds {
			limits[k] = staleAfter
			if i > 0 && rng.Intn(3) == 0 {
				limits[k] = record.NeverStale
			}
		}
		limit := func(kind string) time.Duration { return limits[kind] }
		items := genItems(rng, now, staleAfter)
		got := search.Merge(items, genAggregable, now, limit)
		entries, sums, sources, st := reference(slices.Clone(items), genAggregable, now, limits)
		if d := comparePicture(got, entries, sums, sources); d != "" {
			t.Fatalf("seed %d, stale after %s: Merge differs from the reference model:\n%s\nrecords:\n%s", seed, staleAfter, d, describeItems(items))
		}
		shuffled := slices.Clone(items)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if again := search.Merge(shuffled, genAggregable, now, limit); !proto.Equal(again, got) {
			t.Fatalf("seed %d: Merge of the same records in another order differs:\n%v\nwant\n%v\nrecords:\n%s", seed, again, got, describeItems(items))
		}
		total.conflicts += st.conflicts
		total.agreements += st.agreements
		total.stale += st.stale
		total.timeTies += st.timeTies
		total.national += st.national
		total.leftOut += st.leftOut
		total.never += st.never
		total.ahead += st.ahead
		total.folded += st.folded
		total.idApart += st.idApart
		total.short += st.short
		total.figures += st.figures
		total.otherOnly += st.otherOnly
	}
	// The draw must reach what it is meant to test, or a quiet change to it would prove nothing.
	t.Logf("%d trials: %+v", trials, total)
	if n := trials / 3; total.conflicts < n || total.agreements < n || total.stale < n || total.timeTies < n/5 || total.national < n || total.leftOut < n || total.never < n/5 || total.ahead < n/5 ||
		total.folded < n/5 || total.idApart < n/5 || total.short < n || total.figures < n/5 || total.otherOnly < n/10 {
		t.Fatalf("%d trials reached %+v: too few of some to prove anything", trials, total)
	}
}

// TestMergeRules pins each rule of docs/api.md with one small case.
func TestMergeRules(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rec := func(src, id, region, body string, version int64, age time.Duration) search.Item {
		return search.Item{Source: src, Record: &pb.Record{Id: id, Origin: src, Kind: "shelter.capacity", Crisis: "c",
			Region: region, Body: []byte(body), Version: version, UpdatedAt: timestamppb.New(now.Add(-age))}}
	}
	// received is a partner's record as this node took it in, received ago.
	received := func(it search.Item, ago time.Duration) search.Item {
		it.ReceivedAt = now.Add(-ago)
		return it
	}
	agg := map[string][]string{"shelter.capacity": {"beds_free"}}
	type entry struct {
		key, source, id string
		stale           bool
		conflict        string
	}
	for _, tc := range []struct {
		name    string
		never   bool // the kind is never stale
		items   []search.Item
		entries []entry
		sums    string
	}{
		{
			name: "the key is the municipality, else the id; the latest record of a slot wins",
			items: []search.Item{
				rec("a", "r1", "VR01", `{"municipality":"Zeist","beds_free":1}`, 1, 2*time.Minute),
				rec("a", "r2", "VR01", `{"municipality":"Zeist","beds_free":2}`, 1, time.Minute),
				rec("a", "r3", "VR01", `{"municipality":"","beds_free":4}`, 1, time.Minute),
			},
			entries: []entry{{"r3", "a", "r3", false, ""}, {"Zeist", "a", "r2", false, ""}},
			sums:    "beds_free VR01 6/2, beds_free NL 6/2",
		},
		{
			// One municipality written in two ways is one slot, counted once and shown as its
			// latest record writes it; keys sort without case.
			name: "a municipality is one slot whatever its case and white space",
			items: []search.Item{
				rec("a", "r1", "VR01", `{"municipality":"Hulst","beds_free":1}`, 1, 2*time.Minute),
				rec("b", "r2", "VR01", `{"municipality":" hulst  ","beds_free":20}`, 1, time.Minute),
				rec("a", "r3", "VR01", `{"municipality":"  ","beds_free":4}`, 1, time.Minute),
				rec("a", "r4", "VR01", `{"municipality":"Den  Helder","beds_free":2}`, 1, time.Minute),
			},
			entries: []entry{{"Den Helder", "a", "r4", false, ""}, {"hulst", "b", "r2", false, "a"}, {"r3", "a", "r3", false, ""}},
			sums:    "beds_free VR01 26/3, beds_free NL 26/3",
		},
		{
			name: "at the same time the higher version wins, then the source that sorts first",
			items: []search.Item{
				rec("b", "r1", "VR01", `{"municipality":"Zeist","beds_free":1}`, 2, time.Minute),
				rec("a", "r1", "VR01", `{"municipality":"Zeist","beds_free":1}`, 1, time.Minute),
				rec("c", "r9", "VR02", `{"municipality":"Ede","beds_free":3}`, 1, time.Minute),
				rec("b", "r9", "VR02", `{"municipality":"Ede","beds_free":3}`, 1, time.Minute),
			},
			entries: []entry{{"Zeist", "b", "r1", false, ""}, {"Ede", "b", "r9", false, ""}},
			sums:    "beds_free VR01 1/1, beds_free VR02 3/1, beds_free NL 4/2",
		},
		{
			name: "exactly stale_after old is not stale; a moment older is",
			items: []search.Item{
				rec("a", "r1", "VR01", `{"beds_free":1}`, 1, time.Hour),
				rec("a", "r2", "VR01", `{"beds_free":1}`, 1, time.Hour+time.Millisecond),
				rec("a", "r3", "VR01", `{"beds_free":1}`, 1, -time.Hour),
			},
			entries: []entry{{"r1", "a", "r1", false, ""}, {"r2", "a", "r2", true, ""}, {"r3", "a", "r3", false, ""}},
			sums:    "beds_free VR01 3/3, beds_free NL 3/3",
		},
		{
			name: "a partner's record counts as updated no later than it came: dated ahead, it neither takes the slot nor stays fresh",
			items: []search.Item{
				rec("own", "r1", "VR01", `{"municipality":"Zeist","beds_free":10}`, 1, time.Minute),
				received(rec("b", "r1", "VR01", `{"municipality":"Zeist","beds_free":9999}`, 1, -80*365*24*time.Hour), 2*time.Minute),
				received(rec("b", "r2", "VR01", `{"municipality":"Ede","beds_free":5}`, 1, -time.Hour), 2*time.Hour),
			},
			entries: []entry{{"Ede", "b", "r2", true, ""}, {"Zeist", "own", "r1", false, "b"}},
			sums:    "beds_free VR01 15/2, beds_free NL 15/2",
		},
		{
			name: "records that count as updated at once (one batch, dated ahead) go by the date their source gave, before the version",
			items: []search.Item{
				received(rec("b", "r1", "VR01", `{"municipality":"Zeist","beds_free":1}`, 5, -time.Hour), time.Minute),
				received(rec("c", "r1", "VR01", `{"municipality":"Zeist","beds_free":2}`, 1, -2*time.Hour), time.Minute),
			},
			entries: []entry{{"Zeist", "c", "r1", false, "b"}},
			sums:    "beds_free VR01 2/1, beds_free NL 2/1",
		},
		{
			name:    "a kind that is never stale is not, however old",
			never:   true,
			items:   []search.Item{rec("a", "r1", "VR01", `{"beds_free":1}`, 1, 400*24*time.Hour)},
			entries: []entry{{"r1", "a", "r1", false, ""}},
			sums:    "beds_free VR01 1/1, beds_free NL 1/1",
		},
		{
			name: "bodies disagree as JSON values: member order, white space and 1.0 do not count, \"1\" does",
			items: []search.Item{
				rec("a", "r1", "VR01", `{"municipality":"Zeist","beds_free":1,"notes":"x"}`, 1, time.Minute),
				rec("b", "r1", "VR01", `{ "notes" : "x", "beds_free":1.0, "municipality":"Zeist"}`, 1, 2*time.Minute),
				rec("c", "r1", "VR01", `{"municipality":"Zeist","beds_free":"1","notes":"x"}`, 1, 2*time.Minute),
				rec("d", "r1", "VR01", `{"municipality":"Zeist","beds_free":1,"notes":["x y"]}`, 1, 2*time.Minute),
				rec("e", "r1", "VR01", `{"municipality":"Zeist","beds_free":1,"notes":["x","y"]}`, 1, 2*time.Minute),
			},
			entries: []entry{{"Zeist", "a", "r1", false, "c,d,e"}},
			sums:    "beds_free VR01 1/1, beds_free NL 1/1",
		},
		{
			name: "a source's older record neither disagrees nor counts",
			items: []search.Item{
				rec("a", "r1", "VR01", `{"municipality":"Zeist","beds_free":1}`, 1, time.Minute),
				rec("b", "r1", "VR01", `{"municipality":"Zeist","beds_free":1}`, 1, 2*time.Minute),
				rec("b", "r2", "VR01", `{"municipality":"Zeist","beds_free":7}`, 1, 3*time.Minute),
			},
			entries: []entry{{"Zeist", "a", "r1", false, ""}},
			sums:    "beds_free VR01 1/1, beds_free NL 1/1",
		},
		{
			name: "a national record counts once in the national total; a string is no number",
			items: []search.Item{
				rec("a", "r1", "NL", `{"beds_free":5}`, 1, time.Minute),
				rec("a", "r2", "VR01", `{"beds_free":2}`, 1, time.Minute),
				rec("a", "r3", "VR01", `{"beds_free":"2"}`, 1, time.Minute),
			},
			entries: []entry{{"r1", "a", "r1", false, ""}, {"r2", "a", "r2", false, ""}, {"r3", "a", "r3", false, ""}},
			sums:    "beds_free VR01 2/1 of 2, beds_free NL 7/2 of 3",
		},
		{
			// A partner's policy withheld beds_free of r2; r3 is no JSON object: the sums say
			// that they lack them (review I, F1).
			name: "a sum counts the entries of its kind that lack its field",
			items: []search.Item{
				rec("a", "r1", "VR01", `{"beds_free":2,"beds_total":9}`, 1, time.Minute),
				rec("b", "r2", "VR01", `{"beds_total":5}`, 1, time.Minute),
				rec("a", "r3", "VR01", `[1]`, 1, time.Minute),
				rec("a", "r4", "VR02", `{"beds_free":3}`, 1, time.Minute),
			},
			entries: []entry{{"r1", "a", "r1", false, ""}, {"r2", "b", "r2", false, ""}, {"r3", "a", "r3", false, ""}, {"r4", "a", "r4", false, ""}},
			sums:    "beds_free VR01 2/1 of 3, beds_free VR02 3/1, beds_free NL 5/2 of 4",
		},
		{
			// Composed and decomposed (NFC, NFD), with and without diacritics, hyphen or
			// apostrophe: one municipality, counted once (review I, F13). The key shown is as
			// the latest record writes it.
			name: "a municipality is one slot however it is spelt",
			items: []search.Item{
				rec("a", "r1", "VR02", `{"municipality":"S\u00fadwest-Frysl\u00e2n","beds_free":10}`, 1, 2*time.Minute),
				rec("a", "r2", "VR02", `{"municipality":"Su\u0301dwest-Frysla\u0302n","beds_free":10}`, 1, time.Minute),
				rec("b", "r3", "VR02", `{"municipality":"Sudwest Fryslan","beds_free":10}`, 1, 3*time.Minute),
				rec("b", "r4", "VR19", `{"municipality":"Schouwen Duiveland","beds_free":5}`, 1, time.Minute),
				rec("c", "r5", "VR19", `{"municipality":"Schouwen-Duiveland","beds_free":5}`, 1, 2*time.Minute),
				rec("a", "r6", "VR01", `{"municipality":"'s-Hertogenbosch","beds_free":3}`, 1, time.Minute),
				rec("a", "r7", "VR01", `{"municipality":"s-Hertogenbosch","beds_free":3}`, 1, 3*time.Minute),
			},
			entries: []entry{{"'s-Hertogenbosch", "a", "r6", false, ""}, {"Su\u0301dwest-Frysla\u0302n", "a", "r2", false, "b"},
				{"Schouwen Duiveland", "b", "r4", false, "c"}},
			sums: "beds_free VR01 3/1, beds_free VR02 10/1, beds_free VR19 5/1, beds_free NL 18/3",
		},
		{
			// Each organisation's assessment-oekraine is its own (review I, F25); a
			// municipality is no id.
			name: "a record keyed by its id is in its source's slot",
			items: []search.Item{
				rec("a", "assessment-x", "VR01", `{"beds_free":1}`, 1, time.Minute),
				rec("b", "assessment-x", "VR01", `{"beds_free":2}`, 1, 2*time.Minute),
				rec("a", "r9", "VR01", `{"municipality":"Zeist","beds_free":8}`, 1, time.Minute),
				rec("c", "zeist", "VR01", `{"beds_free":4}`, 1, time.Minute),
			},
			entries: []entry{{"assessment-x", "a", "assessment-x", false, ""}, {"assessment-x", "b", "assessment-x", false, ""},
				{"Zeist", "a", "r9", false, ""}, {"zeist", "c", "zeist", false, ""}},
			sums: "beds_free VR01 15/4, beds_free NL 15/4",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit := search.StaleAfter(time.Hour)
			if tc.never {
				limit = search.StaleAfter(record.NeverStale)
			}
			got := search.Merge(tc.items, agg, now, limit)
			var entries []entry
			for _, e := range got.Entries {
				entries = append(entries, entry{e.Key, e.Source, e.Record.Id, e.Stale, strings.Join(e.Conflict, ",")})
			}
			var sums []string
			for _, a := range got.Aggregates {
				sum := fmt.Sprintf("%s %s %g/%d", a.Field, a.Region, a.Sum, a.Records)
				if a.Entries != a.Records {
					sum += fmt.Sprintf(" of %d", a.Entries)
				}
				sums = append(sums, sum)
			}
			if fmt.Sprint(entries) != fmt.Sprint(tc.entries) || strings.Join(sums, ", ") != tc.sums {
				t.Errorf("entries %v\nsums %s\nwant entries %v\nsums %s", entries, strings.Join(sums, ", "), tc.entries, tc.sums)
			}
		})
	}
}

// TestMergeSaysWhereBodiesDiffer: an entry in conflict names the fields that differ, and says
// whether its figures do. Two sources that report the same free beds, one with beds_total
// withheld and no notes, differ but do not disagree in their figures (review I, F3); two that
// report other free beds do.
func TestMergeSaysWhereBodiesDiffer(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rec := func(src, body string, age time.Duration) search.Item {
		return search.Item{Source: src, Record: &pb.Record{Id: "r-" + src, Origin: src, Kind: "shelter.capacity", Crisis: "c",
			Region: "VR19", Body: []byte(body), Version: 1, UpdatedAt: timestamppb.New(now.Add(-age))}}
	}
	kind := func(it search.Item, kind string) search.Item { it.Record.Kind = kind; return it }
	agg := map[string][]string{"shelter.capacity": {"beds_total", "beds_free"}}
	for _, tc := range []struct {
		name    string
		items   []search.Item
		fields  string
		figures bool
	}{
		{"withheld and notes only", []search.Item{
			rec("vr-zeeland", `{"municipality":"Hulst","beds_free":4,"location":"Opvanglocatie Hulst"}`, time.Minute),
			rec("lcvs", `{"municipality":"Hulst","beds_free":4,"beds_total":60,"location":"Opvanglocatie Hulst","notes":"demo"}`, 2*time.Minute),
		}, "beds_total,notes", false},
		{"other free beds", []search.Item{
			rec("vr-zeeland", `{"municipality":"Goes","beds_free":15,"beds_total":40}`, time.Minute),
			rec("lcvs", `{"municipality":"Goes","beds_free":1,"beds_total":40,"notes":"demo"}`, 2*time.Minute),
		}, "beds_free,notes", true},
		{"one of two sources in conflict differs in figures", []search.Item{
			rec("a", `{"municipality":"Goes","beds_free":15}`, time.Minute),
			rec("b", `{"municipality":"Goes","beds_free":15,"notes":"x"}`, 2*time.Minute),
			rec("c", `{"municipality":"Goes","beds_free":"15"}`, 3*time.Minute),
		}, "beds_free,notes", true},
		{"a kind that sums nothing disagrees in any field", []search.Item{
			kind(rec("a", `{"municipality":"Goes","title":"Rustig"}`, time.Minute), "sitrep"),
			kind(rec("b", `{"municipality":"Goes","title":"Rustig","notes":"x"}`, 2*time.Minute), "sitrep"),
		}, "notes", true},
		{"the same value, spelt otherwise", []search.Item{
			rec("a", `{"municipality":"Goes","beds_free":15}`, time.Minute),
			rec("b", `{"beds_free":1.5e1,"municipality":"Goes"}`, 2*time.Minute),
		}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := search.Merge(tc.items, agg, now, search.StaleAfter(time.Hour))
			if len(got.Entries) != 1 {
				t.Fatalf("%d entries, want 1", len(got.Entries))
			}
			e := got.Entries[0]
			if f := strings.Join(e.ConflictFields, ","); f != tc.fields || e.FiguresDisagree != tc.figures || (f == "") != (len(e.Conflict) == 0) {
				t.Errorf("conflict %v in fields %q, figures disagree %v; want fields %q, figures %v", e.Conflict, f, e.FiguresDisagree, tc.fields, tc.figures)
			}
		})
	}
}
