package warn

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LastRun is the state a replica that had stepped the rule in the region at every tick of [from,
// to] would hold, were the rule not firing: pending since the first tick of the run of ticks at
// which When held that reaches the last tick, or nothing where When did not hold at the last
// tick. A new leader takes it up where it has no state of its own.
//
// It walks back from the last tick, and evaluates When only where what it reads may have changed:
// a condition that reads time only through sum, count, delta and records reads the same at every
// tick between two versions of its kinds (and the ends of its windows after each), so one
// evaluation stands for them all. A condition that reads `now` itself is evaluated at every tick
// of the run. Either way it costs the run, not the whole of [from, to], where When does not hold
// at the end.
func (r *Rule) LastRun(h *History, region string, from, to time.Time, every time.Duration) State {
	if every <= 0 || to.Before(from) {
		return State{}
	}
	first := ceilTick(from, every)
	last := to.Truncate(every)
	if last.Before(first) {
		return State{}
	}
	var changes []int64 // the instants after which When may read otherwise, ascending
	exact := r.when.readsNow
	if !exact {
		var listed bool
		changes, listed = h.changes(r.when.kinds, r.when.windows, region)
		exact = !listed
	}
	var s State
	for t := last; !t.Before(first); {
		w, err := r.when.eval(h, r.Doc.Crisis, region, t)
		if err != nil || !w {
			break
		}
		s = State{Pending: true, Since: t}
		if exact {
			t = t.Add(-every)
			continue
		}
		// Every tick since the last change at or before t reads as t does.
		i, _ := slices.BinarySearch(changes, t.UnixNano()+1)
		if i == 0 || changes[i-1] <= first.UnixNano() {
			s.Since = first
			break
		}
		since := ceilTick(time.Unix(0, changes[i-1]).UTC(), every)
		s.Since = since
		t = since.Add(-every)
	}
	return s
}

// maxWindowSums bounds the sums of a condition's windows that changes works out: past it, a
// condition is evaluated at every tick.
const maxWindowSums = 64

// changes are the instants at which what a condition over the kinds with the windows reads in
// the region may change: the time of each version in the region or of a record that was in it,
// and that time plus every sum of the windows (a count's window drops an appearance, and delta
// reads a window back, nested deltas the sum of theirs, so windows holds each use of one). Before
// the start of the retention window everything reads as at it, which no version changes: it is
// no change of its own. ok is false when the windows have too many sums to list.
func (h *History) changes(kinds []string, windows []time.Duration, region string) (_ []int64, ok bool) {
	sums := []int64{0}
	for _, w := range windows {
		for _, s := range sums {
			sums = append(sums, s+int64(w))
		}
		slices.Sort(sums)
		sums = slices.Compact(sums)
		if len(sums) > maxWindowSums {
			return nil, false
		}
	}
	key := strings.Join(kinds, "\x00") + "\x01" + region + "\x01"
	for _, s := range sums {
		key += strconv.FormatInt(s, 10) + ","
	}
	if out, ok := h.changeSets[key]; ok {
		return out, true
	}
	var out []int64
	add := func(t int64) {
		for _, s := range sums {
			out = append(out, t+s)
		}
	}
	for _, k := range kinds {
		was := map[recordKey]string{} // each record's region before the version at hand
		for _, v := range h.byKind[k] {
			rk := recordKey{v.Origin, v.ID}
			if v.Region == region || was[rk] == region {
				add(v.At.UnixNano())
			}
			was[rk] = v.Region
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	h.changeSets[key] = out
	return out, true
}

// readsNowRe finds `now` in a condition's text outside its string literals (see readsNow).
var (
	stringLitRe = regexp.MustCompile(`(?s)[rRbB]{0,2}(""".*?"""|'''.*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')`)
	nowRe       = regexp.MustCompile(`\bnow\b`)
)

// readsNow says whether a condition's text names `now` itself, outside a string: such a condition
// may read the time in any way, where sum, count, delta and records read it only through the
// history. A `now` the check cannot tell from a string counts as read.
func readsNow(src string) bool {
	return nowRe.MatchString(stringLitRe.ReplaceAllString(src, `""`))
}
