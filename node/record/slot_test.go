package record_test

import (
	"testing"

	"github.com/knooppunt/knooppunt/node/record"
)

// TestSlotKey: what a person reads as one municipality is one key, whoever writes it and however;
// a name without letters or digits is its own key; white space alone is none.
func TestSlotKey(t *testing.T) {
	for _, names := range [][]string{
		{"Bunnik", "bunnik", "  BUNNIK ", "Bunnik."},
		{"Súdwest-Fryslân", "Su\u0301dwest-Frysla\u0302n", "Sudwest-Fryslan", "súdwest fryslân"},
		{"Schouwen-Duiveland", "schouwen  duiveland", "Schouwen Duiveland"},
		{"'s-Hertogenbosch", "s-Hertogenbosch", "’s Hertogenbosch"},
		{"!!  ?", " !! ?"},
	} {
		want := record.SlotKey(names[0])
		if want == "" {
			t.Fatalf("SlotKey(%q) is empty", names[0])
		}
		for _, n := range names[1:] {
			if got := record.SlotKey(n); got != want {
				t.Errorf("SlotKey(%q) = %q, want %q as SlotKey(%q)", n, got, want, names[0])
			}
		}
	}
	for _, c := range []struct{ in, want string }{
		{"Bunnik", "bunnik"},
		{"Súdwest-Fryslân", "sudwest fryslan"},
		{"'s-Hertogenbosch", "s hertogenbosch"},
		{" !!  ? ", "!! ?"},
		{"", ""},
		{" \t\n", ""},
	} {
		if got := record.SlotKey(c.in); got != c.want {
			t.Errorf("SlotKey(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if record.SlotKey("Bunnik") == record.SlotKey("Bunnink") {
		t.Error("two names are one key")
	}
}
