package db

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/knooppunt/knooppunt/policy"
)

// A search that finds nothing because a word is misspelt (vergunnign) can offer the words of the
// index that are one or two edits from it (vergunning). NearWords finds them in the vocabulary
// of the word index (text_words and its trigram index, text_vocab), which holds the words of
// every record of every mode, own and cached, whoever may read them: it only proposes. Whoever
// shows a word must first search with it as the reader would (federation/search does), so that
// no word of a record the reader may not read is ever shown.

// Limits of NearWords.
const (
	// NearMinRunes is the shortest word NearWords corrects: a shorter one is one edit from
	// too many words to mean any of them.
	NearMinRunes = 4
	// nearTwoRunes is the shortest word that may be two edits from what was meant; it is then
	// split into three parts of three letters or more, which the vocabulary's trigram index
	// looks up.
	nearTwoRunes = 9
	// maxNearWords is how many words NearWords returns at most.
	maxNearWords = 8
)

// nearAlphabet is what an edit may put in a word: a letter of the folded Latin alphabet or a
// digit, or one of the word's own letters (ü folds to u, but ø and ß stay).
const nearAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// NearWords returns the words of the vocabulary within one edit (a letter added, dropped,
// changed, or two letters swapped) of word, a folded word of the index (record.Normalize,
// record.AppendWords), and within two for a word of nearTwoRunes letters or more; when there is
// none, the starts and ends of longer words within as many edits (a compound's parts, which a
// search finds inside it); closest first,
// then the closest in length, then in order; at most maxNearWords, and not word itself. None for
// a word shorter than NearMinRunes. Its cost is bounded by the word, not by the vocabulary: one
// edit is a lookup of every spelling one edit away in text_words' unique index (about 60 per
// letter); two are the words that hold one of the word's three parts, each as the vocabulary
// finds a part of a word (at most maxPartWords+1 of them).
func (d *DB) NearWords(ctx context.Context, word string) ([]string, error) {
	w := []rune(word)
	if len(w) < NearMinRunes {
		return nil, nil
	}
	type near struct {
		word string
		dist int
	}
	var found, inside []near // words of the vocabulary, and parts of longer ones
	seen := map[string]bool{word: true}
	consider := func(v string, max int) {
		if seen[v] {
			return
		}
		seen[v] = true
		if n := policy.EditDistance(string(w), v); n <= max {
			found = append(found, near{v, n})
		}
	}
	list, err := json.Marshal(edits1(w))
	if err != nil {
		return nil, err
	}
	err = d.eachRow(ctx, `SELECT word FROM text_words WHERE word IN (SELECT value FROM json_each(?))`, []any{string(list)}, func(rows *sql.Rows) error {
		var v string
		if err := rows.Scan(&v); err != nil {
			return err
		}
		consider(v, 1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db: near words: %w", err)
	}
	// Parts of the word, one of which an edit leaves whole: of three, for two edits (each edit
	// touches one part at most, a swap across two parts aside), or of two for one, when each is
	// long enough for the vocabulary's trigram index.
	maxd, parts := 0, 0
	switch {
	case len(w) >= nearTwoRunes:
		maxd, parts = 2, 3
	case len(w) >= 6:
		maxd, parts = 1, 2
	}
	for k := range parts {
		from, to := k*len(w)/parts, (k+1)*len(w)/parts
		part := string(w[from:to])
		words, err := d.vocabulary(ctx, part, true, false)
		if err != nil {
			return nil, fmt.Errorf("db: near words: %w", err)
		}
		for _, v := range words {
			rv := []rune(v)
			if n := len(rv); maxd == 2 && n >= len(w)-2 && n <= len(w)+2 {
				consider(v, 2)
			}
			// The start or the end of a longer word: a search finds a word inside a longer
			// one, and a compound holds many words only there ("vergunnign" → "vergunning" of
			// tewerkstellingsvergunning, review AE, AE3). Offered only when no word is near.
			if len(rv) <= len(w)+maxd {
				continue
			}
			for l := len(w) - maxd; l <= len(w)+maxd; l++ {
				for _, sub := range []string{string(rv[:l]), string(rv[len(rv)-l:])} {
					if n := policy.EditDistance(string(w), sub); n <= maxd && !seen[sub] && !slices.ContainsFunc(inside, func(x near) bool { return x.word == sub }) {
						inside = append(inside, near{sub, n})
					}
				}
			}
		}
	}
	if len(found) == 0 && len(inside) > 0 {
		// The closest cuts alone: "ergunning" and "svergunning" beside "vergunning" are cuts
		// across the compound's parts, no words (review AG, AG9).
		best := slices.MinFunc(inside, func(a, b near) int { return cmp.Compare(a.dist, b.dist) }).dist
		for _, n := range inside {
			if n.dist == best {
				found = append(found, n)
			}
		}
	}
	slices.SortFunc(found, func(a, b near) int {
		return cmp.Or(cmp.Compare(a.dist, b.dist),
			cmp.Compare(abs(utf8.RuneCountInString(a.word)-len(w)), abs(utf8.RuneCountInString(b.word)-len(w))),
			cmp.Compare(a.word, b.word))
	})
	out := make([]string, 0, min(len(found), maxNearWords))
	for _, n := range found[:min(len(found), maxNearWords)] {
		out = append(out, n.word)
	}
	return out, nil
}

func abs(n int) int { return max(n, -n) }

// edits1 is every spelling one edit from w: a rune dropped, two neighbours swapped, a rune
// changed or added (from nearAlphabet and w's own runes).
func edits1(w []rune) []string {
	alphabet := []rune(nearAlphabet)
	for _, r := range w {
		if !slices.Contains(alphabet, r) {
			alphabet = append(alphabet, r)
		}
	}
	out := make([]string, 0, len(w)*(2*len(alphabet)+2)+len(alphabet))
	v := make([]rune, 0, len(w)+1)
	for i := 0; i <= len(w); i++ {
		if i < len(w) {
			out = append(out, string(append(append(v[:0], w[:i]...), w[i+1:]...)))
			if i+1 < len(w) && w[i] != w[i+1] {
				v = append(append(v[:0], w[:i]...), w[i+1], w[i])
				out = append(out, string(append(v, w[i+2:]...)))
			}
		}
		for _, r := range alphabet {
			if i < len(w) && r != w[i] {
				v = append(append(v[:0], w[:i]...), r)
				out = append(out, string(append(v, w[i+1:]...)))
			}
			v = append(append(v[:0], w[:i]...), r)
			out = append(out, string(append(v, w[i:]...)))
		}
	}
	return out
}
