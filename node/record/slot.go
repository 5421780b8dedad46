package record

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// SlotKey is the key a municipality's slot is found by: in a picture (federation/search), where
// a slot shows the latest record of whichever source reports the municipality, and in an
// early-warning rule's sum (node/warn), which adds what the picture shows. One function, so that
// the two fold alike.
//
// The key is the words of the name as full-text search reads them (Normalize of its NFC form:
// lower case, without diacritics; a mark left that no letter took is dropped too), one space
// apart, so that what a person reads as one name is one slot and not two that the sums both
// count: Súdwest-Fryslân composed or decomposed, and Sudwest-Fryslan; Schouwen-Duiveland and
// schouwen  duiveland; 's-Hertogenbosch and s-Hertogenbosch; Bunnik and bunnik. A name without
// a letter or digit is its own key, trimmed and with each run of white space one space. A name
// of white space alone, or none, has no key (""): such a record is keyed by its id.
func SlotKey(municipality string) string {
	trimmed := strings.Join(strings.Fields(municipality), " ")
	if trimmed == "" {
		return ""
	}
	folded := strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, Normalize(norm.NFC.String(trimmed)))
	words := AppendWords(nil, folded)
	if len(words) == 0 {
		return trimmed
	}
	return strings.Join(words, " ")
}
