package warn

import (
	"github.com/knooppunt/knooppunt/node/record"
)

// A sum adds what the picture (federation/search, Merge) shows: one record a slot, the latest of
// any source. A slot is the crisis, the region and the body's municipality folded by
// record.SlotKey, whoever reports it; a record without a municipality is a slot of its own
// (origin and id). Two organisations that report one municipality (Bunnik and bunnik) add the
// newer report once, not both; when it is deleted, moves, names another municipality or leaves
// the crisis, the slot shows the next latest record in it again. A picture is of one crisis: a
// rule over every crisis adds each crisis's slots apart.
//
// The picture's order (search's later) is: updated later, a partner's record no later than this
// node received it; then the later updated_at; then the higher version; then the source, then the
// id, that sorts first. The history keeps neither when a copy was received nor this node's own
// source name (an own record's origin is ""), so outranks orders by updated_at (Version.At),
// version, origin and id. So the order differs where a partner dated a record after this node
// received it (a clock ahead), and where an own record and a partner's tie to the nanosecond and
// in version: the sum takes the own one, the picture the source whose name sorts first.
//
// The slots differ where the history lacks a municipality the body has: one over
// db.MaxHistoryString bytes, one of a version stored before the history kept strings, and the
// municipality of every version of a deleted record, whose strings the delete erases. Such a
// version is a slot of its own. From the delete on that changes nothing (the record no longer
// counts), but a sum at an instant before it (a delta's window, a dry run) adds the deleted
// record beside the one of another source that the picture then did not show.

// slotID is a slot of one kind's records.
type slotID struct {
	crisis, region, key string
	// byID: a record without a municipality, keyed by its id within its origin.
	byID   bool
	origin string
}

// slotOf is the slot a version counts in. The municipality is among the version's Values, the
// body's top-level strings of up to db.MaxHistoryString bytes. keys holds the names folded so
// far: a history repeats a few hundred names in every version of every record.
func slotOf(v *Version, keys map[string]string) slotID {
	if m, ok := v.Values["municipality"].(string); ok {
		k, folded := keys[m]
		if !folded {
			k = record.SlotKey(m)
			keys[m] = k
		}
		if k != "" {
			return slotID{crisis: v.Crisis, region: v.Region, key: k}
		}
	}
	return slotID{crisis: v.Crisis, region: v.Region, key: v.ID, byID: true, origin: v.Origin}
}

// outranks says whether the slot shows a rather than b, as the picture's later does as far as
// the history can tell (see above).
func outranks(a, b *Version) bool {
	switch {
	case !a.At.Equal(b.At):
		return a.At.After(b.At)
	case a.Version != b.Version:
		return a.Version > b.Version
	case a.Origin != b.Origin:
		return a.Origin < b.Origin
	}
	return a.ID < b.ID
}

// slotHeap holds versions of a slot's records (indices into vs), the one it shows first. A
// version that no longer counts (its record has a later version, which is pushed in its own
// slot) stays until it comes first, and is dropped then (see slots.show).
type slotHeap []int

func (h *slotHeap) push(vs []Version, i int) {
	*h = append(*h, i)
	q := *h
	for c := len(q) - 1; c > 0; {
		p := (c - 1) / 2
		if !outranks(&vs[q[c]], &vs[q[p]]) {
			break
		}
		q[c], q[p] = q[p], q[c]
		c = p
	}
}

func (h *slotHeap) pop(vs []Version) {
	q := *h
	n := len(q) - 1
	q[0] = q[n]
	q = q[:n]
	for p := 0; ; {
		c := 2*p + 1
		if c >= n {
			break
		}
		if c+1 < n && outranks(&vs[q[c+1]], &vs[q[c]]) {
			c++
		}
		if !outranks(&vs[q[c]], &vs[q[p]]) {
			break
		}
		q[c], q[p] = q[p], q[c]
		p = c
	}
	*h = q
}

// slots follows, version by version, which record each slot shows.
type slots struct {
	vs []Version
	// live is each counting record's current version (an index into vs) and its slot.
	live  map[recordKey]liveVersion
	heaps map[slotID]*slotHeap
	keys  map[string]string // see slotOf
}

type liveVersion struct {
	i    int
	slot slotID
}

func newSlots(vs []Version) *slots {
	return &slots{vs: vs, live: map[recordKey]liveVersion{}, heaps: map[slotID]*slotHeap{}, keys: map[string]string{}}
}

// apply makes vs[i] its record's current version, counting or not, and returns the slots whose
// shown record may have changed, n of them: the one the record was in, then the one it is in now
// (each once; none where it neither counted before nor does now).
func (s *slots) apply(i int, counts bool) (out [2]slotID, n int) {
	v := &s.vs[i]
	rk := recordKey{v.Origin, v.ID}
	prev, was := s.live[rk]
	if was {
		out[n], n = prev.slot, n+1
	}
	if !counts {
		delete(s.live, rk)
		return out, n
	}
	k := slotOf(v, s.keys)
	s.live[rk] = liveVersion{i, k}
	h := s.heaps[k]
	if h == nil {
		h = &slotHeap{}
		s.heaps[k] = h
	}
	h.push(s.vs, i)
	if !was || prev.slot != k {
		out[n], n = k, n+1
	}
	return out, n
}

// show is the version the slot shows now, an index into vs; false when no record counts in it.
func (s *slots) show(k slotID) (int, bool) {
	h := s.heaps[k]
	for h != nil && len(*h) > 0 {
		top := (*h)[0]
		v := &s.vs[top]
		if cur, ok := s.live[recordKey{v.Origin, v.ID}]; ok && cur.i == top {
			return top, true
		}
		h.pop(s.vs)
	}
	if h != nil {
		delete(s.heaps, k)
	}
	return 0, false
}
