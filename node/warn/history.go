// Package warn owns the early-warning rules: their documents, the CEL of their conditions, and
// their evaluation over the history of the picture. It decides; it never does I/O: the caller
// reads the history from the store (db.History) and writes what a decision leads to.
package warn

import (
	"math"
	"slices"
	"strings"

	"cel.dev/cel-go/common/types/ref"
	"sort"
	"time"

	"github.com/knooppunt/knooppunt/node/record"
)

// Version is one applied version of an own or cached record, as the history keeps it (the store
// keeps them as db.HistoryVersion, this type).
type Version struct {
	Origin    string // "" for own records, else the peer's trust domain
	ID        string
	Version   int64
	Kind      string
	Crisis    string
	Region    string
	At        time.Time
	Tombstone bool               // the record stopped counting at At
	Fields    map[string]float64 // the body's top-level numbers
	Values    map[string]any     // the body's top-level strings and booleans
}

// History answers the questions rules ask: the sum of a field over a kind's records in a region
// at an instant, one record a slot as the picture adds them (see slots.go), and how many records
// of a kind appeared in a region within a window. Each answer is derived from the versions alone,
// so every replica, holding the same versions, gives the same answer. It is safe for one
// goroutine at a time.
type History struct {
	// since is the start of the retention window: nothing before it is answered, because what
	// lies before it may have been pruned on one replica and not yet on another.
	since  time.Time
	byKind map[string][]Version // in the order they counted

	sums   map[seriesKey]*steps
	counts map[seriesKey][]int64 // appearance times, Unix nanoseconds, sorted
	// records are each kind's versions by record, and recordKeys its records in order.
	records    map[string]map[recordKey][]Version
	recordKeys map[string][]recordKey
	// lists are what records(kind) returned, by kind, crisis, region and instant: the rules of
	// one evaluation read the same lists.
	lists map[listKey]ref.Val
	// listed counts the records the lists hold, to bound them (maxListed).
	listed int
	// regions are what Regions answered, by kinds and crisis.
	regions map[string][]string
	// changeSets are what changes answered, by kinds and sums of windows.
	changeSets map[string][]int64
}

// maxListed bounds the records that the lists of records(kind) keep for the evaluations after:
// past it they are dropped and read again, so that a run over many instants does not hold every
// instant's list.
const maxListed = 1 << 16

type listKey struct {
	kind, crisis, region string
	at                   int64
}

type seriesKey struct{ kind, crisis, region, field string }

// steps is a step function: value[i] holds from at[i] until at[i+1], added up from carried[i]
// records.
type steps struct {
	at      []int64
	value   []float64
	carried []int
}

// NewHistory indexes versions. since is the start of the retention window (zero: no bound).
func NewHistory(versions []Version, since time.Time) *History {
	h := &History{since: since, byKind: map[string][]Version{}, sums: map[seriesKey]*steps{}, counts: map[seriesKey][]int64{},
		records: map[string]map[recordKey][]Version{}, recordKeys: map[string][]recordKey{}, lists: map[listKey]ref.Val{}, regions: map[string][]string{}, changeSets: map[string][]int64{}}
	for _, v := range versions {
		h.byKind[v.Kind] = append(h.byKind[v.Kind], v)
	}
	for _, vs := range h.byKind {
		// Stable, and by the same keys as db.History, so that equal times are walked alike.
		sort.SliceStable(vs, func(i, j int) bool { return less(vs[i], vs[j]) })
	}
	return h
}

func less(a, b Version) bool {
	if !a.At.Equal(b.At) {
		return a.At.Before(b.At)
	}
	if a.Origin != b.Origin {
		return a.Origin < b.Origin
	}
	if a.ID != b.ID {
		return a.ID < b.ID
	}
	return a.Version < b.Version
}

// Since is the start of the retention window.
func (h *History) Since() time.Time { return h.since }

// Sum is the sum of field over the kind's slots in the region at the instant, as the picture adds
// them (see slotOf): each slot adds its latest record's latest version at or before the instant,
// of any source, unless that version deletes the record, in which case the next latest record of
// the slot counts. A slot whose record lacks the field adds nothing, and neither does one whose
// value is above record.MaxAggregate in magnitude, as in the picture: no sum can then become
// infinite. ok is false where no slot that counted carries the field (none is there, or a
// partner's policy redacted it): the sum has no value there, which is not 0. An empty crisis
// means every crisis. An instant before the retention window is read as its start.
func (h *History) Sum(kind, crisis, region, field string, at time.Time) (sum float64, ok bool) {
	if at.Before(h.since) {
		at = h.since
	}
	built := seriesKey{kind, crisis, "", field}
	if _, ok := h.sums[built]; !ok {
		h.buildSums(kind, crisis, field)
	}
	s, ok := h.sums[seriesKey{kind, crisis, region, field}]
	if !ok {
		return 0, false // no record of the kind was ever in the region
	}
	t := at.UnixNano()
	i := sort.Search(len(s.at), func(i int) bool { return s.at[i] > t })
	if i == 0 || s.carried[i-1] == 0 {
		return 0, false
	}
	return s.value[i-1], true
}

type recordKey struct{ origin, id string }

// buildSums builds the series of field in every region in one walk of the kind's versions,
// following which record each slot shows. The entry under region "" marks the walk done.
func (h *History) buildSums(kind, crisis, field string) {
	type counted struct {
		value float64
		has   bool // the version carries the field, within record.MaxAggregate
	}
	vs := h.byKind[kind]
	slots := newSlots(vs)
	shown := map[slotID]counted{} // what each slot adds now
	total := map[string]float64{}
	carried := map[string]int{}
	add := func(region string, t int64) {
		k := seriesKey{kind, crisis, region, field}
		s := h.sums[k]
		if s == nil {
			s = &steps{}
			h.sums[k] = s
		}
		if n := len(s.at); n > 0 && s.at[n-1] == t {
			s.value[n-1], s.carried[n-1] = total[region], carried[region]
		} else {
			s.at, s.value, s.carried = append(s.at, t), append(s.value, total[region]), append(s.carried, carried[region])
		}
	}
	carries := func(c counted) int {
		if c.has {
			return 1
		}
		return 0
	}
	for i := range vs {
		v := &vs[i]
		t := v.At.UnixNano()
		counts := !v.Tombstone && (crisis == "" || v.Crisis == crisis)
		// The slot the record left, then the one it is in: each region's total changes by what
		// the slot stopped and started adding there, in the walk's fixed order, so every replica
		// adds the same floats in the same order.
		changed, n := slots.apply(i, counts)
		for _, k := range changed[:n] {
			next := counted{}
			if j, ok := slots.show(k); ok {
				f, has := vs[j].Fields[field]
				if has && !(math.Abs(f) <= record.MaxAggregate) { // and NaN
					f, has = 0, false
				}
				next = counted{value: f, has: has}
			}
			prev := shown[k]
			if next == (counted{}) {
				delete(shown, k)
			} else {
				shown[k] = next
			}
			total[k.region] += next.value - prev.value
			carried[k.region] += carries(next) - carries(prev)
			add(k.region, t)
		}
	}
	h.sums[seriesKey{kind, crisis, "", field}] = &steps{}
}

// Count is how many of the kind's records appeared in the region within the window that ends at
// the instant: their first version in the history counted after at-window and at or before at. A
// window reaching before the retention window is cut at its start.
func (h *History) Count(kind, crisis, region string, at time.Time, window time.Duration) int64 {
	k := seriesKey{kind, crisis, region, ""}
	times, ok := h.counts[k]
	if !ok {
		seen := map[recordKey]bool{}
		for _, v := range h.byKind[kind] {
			rk := recordKey{v.Origin, v.ID}
			if seen[rk] {
				continue
			}
			seen[rk] = true
			if v.Region == region && (crisis == "" || v.Crisis == crisis) {
				times = append(times, v.At.UnixNano())
			}
		}
		h.counts[k] = times
	}
	lo, hi := at.Add(-window), at
	if lo.Before(h.since) {
		lo = h.since.Add(-1) // appearances at the start of the window itself count
	}
	if !hi.After(lo) {
		return 0
	}
	i := sort.Search(len(times), func(i int) bool { return times[i] > lo.UnixNano() })
	j := sort.Search(len(times), func(i int) bool { return times[i] > hi.UnixNano() })
	return int64(j - i)
}

// Regions lists the regions where records of the kinds were, in the crisis ("" for any), sorted.
// The slice is shared by every caller that asks the same: do not change it.
func (h *History) Regions(kinds []string, crisis string) []string {
	key := strings.Join(kinds, "\x00") + "\x01" + crisis
	if out, ok := h.regions[key]; ok {
		return out
	}
	seen := map[string]bool{}
	for _, k := range kinds {
		for _, v := range h.byKind[k] {
			if crisis == "" || v.Crisis == crisis {
				seen[v.Region] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for r := range seen {
		out = append(out, r)
	}
	slices.Sort(out)
	h.regions[key] = out
	return out
}
