package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestTerminalSafeEscapesInvisibleCharacters: what lint refuses in a policy as invisible, a
// stored source or a partner's record prints written out, so that "oekra\u200bine" does not
// read as "oekraine": format characters, zero-width ones, the Hangul fillers, tag characters
// (with eight hex digits) and line and paragraph separators. Letters of other scripts, accents
// and a no-break space print as they are.
func TestTerminalSafeEscapesInvisibleCharacters(t *testing.T) {
	for _, c := range []struct {
		r    rune
		want string
	}{
		{0x200B, `\u200b`}, {0x2060, `\u2060`}, {0xFEFF, `\ufeff`}, {0x00AD, `\xad`}, {0x180E, `\u180e`},
		{0x3164, `\u3164`}, {0x115F, `\u115f`}, {0x1160, `\u1160`}, {0xFFA0, `\uffa0`},
		{0x2028, `\u2028`}, {0x2029, `\u2029`}, {0xE0041, `\U000e0041`}, {0xE007F, `\U000e007f`},
	} {
		var b strings.Builder
		fmt.Fprint(terminalSafe{&b}, "crisis: oekra"+string(c.r)+"ine\n")
		if got, want := b.String(), "crisis: oekra"+c.want+"ine\n"; got != want {
			t.Errorf("U+%04X: wrote %q, want %q", c.r, got, want)
		}
	}
	var b strings.Builder
	// The joiners that Persian, Dari, Indic scripts and emoji need are written as they are.
	plain := "Oekraïne Україна e\u0301 a\u00a0b €\tok می\u200cخواهم \U0001F468\u200d\U0001F469 \u2764\ufe0f\n"
	fmt.Fprint(terminalSafe{&b}, plain)
	if b.String() != plain {
		t.Errorf("wrote %q, want it as it is", b.String())
	}
}
