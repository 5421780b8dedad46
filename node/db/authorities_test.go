package db_test

import (
	"context"
	"slices"
	"testing"
	"time"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestAuthoritiesOverTime: each recorded bundle keeps new authorities from its time and marks
// those it lacks as removed then; a head's time then picks the authorities of that time. Another
// trust domain's record is its own.
func TestAuthoritiesOverTime(t *testing.T) {
	d := newDB(t)
	index := uint64(1)
	keep := func(td string, at int, ders ...string) {
		t.Helper()
		c := &pb.KeepAuthorities{TrustDomain: td, At: hour(at)}
		for _, der := range ders {
			c.Authorities = append(c.Authorities, []byte(der))
		}
		if err := d.ApplyKeepAuthorities(index, c); err != nil {
			t.Fatal(err)
		}
		index++
	}
	keep("a.test", 0, "old")
	keep("a.test", 2, "old", "new") // the new authority joins
	keep("a.test", 4, "new")        // the old one leaves
	keep("a.test", 6, "new", "back")
	keep("a.test", 8, "new") // "back" leaves
	keep("a.test", 9, "new", "back")
	keep("b.test", 5, "old")
	index = 2
	keep("a.test", 3, "old", "new") // a replayed entry: applied before, skipped
	heldAt := func(td string, at time.Time) []string {
		all, err := d.Authorities(context.Background(), td)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range all {
			if a.Held(at) {
				out = append(out, string(a.DER))
			}
		}
		slices.Sort(out)
		return out
	}
	half := func(n int) time.Time { return t0.Add(time.Duration(n) * 30 * time.Minute) }
	for _, tc := range []struct {
		td   string
		at   time.Time
		want []string
	}{
		{"a.test", half(-1), nil},
		{"a.test", half(0), []string{"old"}},
		{"a.test", half(5), []string{"new", "old"}},
		{"a.test", half(8), []string{"new"}}, // removed at hour 4: not held then
		{"a.test", half(13), []string{"back", "new"}},
		{"a.test", half(17), []string{"back", "new"}}, // came back: held from when first seen
		{"a.test", half(40), []string{"back", "new"}},
		{"b.test", half(9), nil},
		{"b.test", half(10), []string{"old"}},
	} {
		if got := heldAt(tc.td, tc.at); !slices.Equal(got, tc.want) {
			t.Errorf("%s at %s holds %v, want %v", tc.td, tc.at.Format(time.Kitchen), got, tc.want)
		}
	}
	if all, _ := d.Authorities(context.Background(), "a.test"); len(all) != 3 {
		t.Errorf("a.test has %d authorities recorded, want 3 (old, new, back)", len(all))
	}
}
