package policy_test

import (
	"testing"

	"github.com/knooppunt/knooppunt/policy"
)

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"recipients", "recipients", 0},
		{"recipents", "recipients", 1},  // a letter dropped
		{"vergunnign", "vergunning", 1}, // two neighbours swapped: one edit, not two
		{"crisis", "crises", 1},
		{"café", "cafe", 1}, // a rune, not its bytes
		{"kitten", "sitting", 3},
		{"ab", "ba", 1},
	} {
		if got := policy.EditDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("EditDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := policy.EditDistance(tc.b, tc.a); got != tc.want {
			t.Errorf("EditDistance(%q, %q) = %d, want %d", tc.b, tc.a, got, tc.want)
		}
	}
}
