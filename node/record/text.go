package record

import (
	"cmp"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Full-text search. A query is words and "quoted phrases"; a record matches when every one of
// them occurs in one of its kind's text fields, ignoring case and diacritics, anywhere in a word:
// "vergunning" finds "tewerkstellingsvergunning", "coordinatie" finds "coördinatie". The store's
// word index finds candidates from the terms' words; Match, on the text as the reader may see it,
// decides. That second step is what keeps a redacted field from ever matching for a recipient.

// Limits of a text query.
const (
	MaxQueryBytes = 512
	MaxQueryTerms = 16
	// MinTermRunes is the shortest term: the index finds a part of a word through the trigrams
	// of its vocabulary.
	MinTermRunes = 3
)

// TextQuery is a parsed full-text query.
type TextQuery struct {
	// Terms are the words and phrases, normalised (see Normalize), each of which must occur; with
	// Any, one of which must.
	Terms []string
	// Any finds the records that hold at least one of Terms (Filter.text_any).
	Any bool
	// Frame are the words, as typed, that frame a question (wat, moet, hebben: stopWords), which
	// ParseTextLoosely left out of a query that has other words. ParseText never sets it.
	Frame []string
	// LeftOut are the words and phrases, as typed, that ParseTextLoosely left out of a query of
	// more than MaxQueryTerms (see keepTelling): a pasted question is searched on its most
	// telling words rather than refused. ParseText never sets it.
	LeftOut []string
}

// ParseText parses a full-text query given in field. Bad syntax is a *FieldError that says
// what to change, never an SQL error.
func ParseText(field, q string) (*TextQuery, error) {
	tq, _, err := parseText(field, q, false)
	return tq, err
}

// ErrOpenPhrase is what a query refused for a phrase whose closing " is missing is, by errors.Is.
var ErrOpenPhrase = errors.New(`a phrase opened with " is not closed`)

// ErrNoWords is what a query refused for holding nothing to search for ("", `""`, ***) is, by
// errors.Is; ErrNotUTF8 one refused for bytes that are not UTF-8.
var (
	ErrNoWords = errors.New("no words to search for")
	ErrNotUTF8 = errors.New("not valid UTF-8")
)

// ErrTooManyTerms is what a query refused for more than MaxQueryTerms words and phrases is, by
// errors.Is.
var ErrTooManyTerms = errors.New("too many words and phrases")

// ParseTextLoosely parses a query typed into a search box, as people type: a word or phrase that
// the index cannot look for (shorter than MinTermRunes, or with no letters or digits, such as
// "in", "de" or "&" in "opvang in de regio") is left out and returned in ignored, as typed,
// instead of refusing the query; a * at either end of a word is dropped (opvang* is opvang); a
// query of more than MaxQueryTerms words and phrases (a pasted question) keeps its most telling
// ones and names the others in LeftOut. It is a *FieldError still when nothing is left to search
// for, and for what ParseText refuses otherwise (a phrase not closed is ErrOpenPhrase, by
// errors.Is). The query's String is what to send on as Filter.text.
func ParseTextLoosely(field, q string) (tq *TextQuery, ignored []string, err error) {
	return parseText(field, q, true)
}

func parseText(field, q string, loose bool) (*TextQuery, []string, error) {
	if !utf8.ValidString(q) {
		e := invalid(field, "not valid UTF-8")
		e.cause = ErrNotUTF8
		return nil, nil, e
	}
	if len(q) > MaxQueryBytes {
		return nil, nil, invalid(field, "%d bytes is over the limit of %d", len(q), MaxQueryBytes)
	}
	// Quotes as word processors and phones type them open and close a phrase too.
	q = typographicQuotes.Replace(q)
	var terms, ignored, typedTerms []string
	var onPurpose []bool // a term typed in quotes, or in capitals (WHO): never a frame word
	add := func(typed string, quoted bool) error {
		typed = strings.Join(strings.Fields(pasted(typed)), " ")
		t := Normalize(typed)
		if t == "" {
			return nil
		}
		// Punctuation at a term's ends is how the word stood in a sentence (opvang, (opvang)
		// vaccinatie?), not part of what is looked for. A term of punctuation alone stays, to
		// be refused as such.
		if trimmed := strings.TrimFunc(t, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }); trimmed != "" {
			t = trimmed
		}
		var refused error
		if utf8.RuneCountInString(t) < MinTermRunes {
			refused = invalid(field, "%q is shorter than %d characters: search for longer words", t, MinTermRunes)
		} else if words, _, _ := TermWords(t); len(words) == 0 {
			refused = invalid(field, "%q has no letters or digits: search for words", t)
		}
		switch {
		case refused == nil:
			terms = append(terms, t)
			onPurpose = append(onPurpose, quoted || acronym(typed))
			typedTerms = append(typedTerms, strings.TrimFunc(typed, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }))
		case loose:
			ignored = append(ignored, typed)
		default:
			return refused
		}
		return nil
	}
	rest := q
	for rest != "" {
		rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
		if rest == "" {
			break
		}
		if rest[0] == '"' {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				e := invalid(field, "a phrase opened with \" is not closed: add the closing \"")
				e.cause = ErrOpenPhrase
				return nil, nil, e
			}
			if err := add(rest[1:1+end], true); err != nil {
				return nil, nil, err
			}
			rest = rest[2+end:]
			continue
		}
		end := strings.IndexFunc(rest, func(r rune) bool { return unicode.IsSpace(r) || r == '"' })
		if end < 0 {
			end = len(rest)
		}
		word := rest[:end]
		if loose {
			// opvang* as other search boxes take it: a word is found as part of a longer one
			// already, and the * would otherwise have to occur in the text.
			word = strings.Trim(word, "*")
		}
		if err := add(word, false); err != nil {
			return nil, nil, err
		}
		rest = rest[end:]
	}
	if len(terms) == 0 && len(ignored) > 0 {
		return nil, ignored, invalid(field, "%s: search for words of %d characters or more", QuoteAll(ignored), MinTermRunes)
	}
	if len(terms) == 0 {
		e := invalid(field, "no words to search for")
		e.cause = ErrNoWords
		return nil, nil, e
	}
	var frame []string
	if loose {
		// The words that frame a question (wat, moet, hebben, hoeveel) are left out whenever a
		// telling word is left: each must occur, and they narrow a question to the records
		// that happen to say them (review P, P2). A word said twice is looked for once.
		var telling, tellingTyped, framed []string
		for i, t := range terms {
			switch {
			case stopWords[t] && !onPurpose[i]:
				if !slices.Contains(framed, t) {
					frame, framed = append(frame, typedTerms[i]), append(framed, t)
				}
			case !slices.Contains(telling, t):
				telling, tellingTyped = append(telling, t), append(tellingTyped, typedTerms[i])
			}
		}
		if len(telling) > 0 {
			terms, typedTerms = telling, tellingTyped
		} else {
			frame = nil // a query of frame words alone is searched on them (keepTelling)
		}
	}
	if len(terms) > MaxQueryTerms {
		if loose {
			tq := &TextQuery{Frame: frame}
			for i, keep := range keepTelling(terms) {
				if keep {
					tq.Terms = append(tq.Terms, terms[i])
				} else if !slices.Contains(terms[:i], terms[i]) {
					tq.LeftOut = append(tq.LeftOut, typedTerms[i])
				}
			}
			return tq, ignored, nil
		}
		e := invalid(field, "%d words and phrases is over the limit of %d", len(terms), MaxQueryTerms)
		e.cause = ErrTooManyTerms
		return nil, nil, e
	}
	return &TextQuery{Terms: terms, Frame: frame}, ignored, nil
}

// keepTelling chooses the most telling of terms, which are more than MaxQueryTerms, and keeps
// their order. Every term must occur, so a term left out only widens the search, and a term
// that says nothing narrows it to the wrong records: the words that frame a question (wat, hoe,
// moet, een: stopWords, which as parts of words also find water and moeten) and a term said
// before are left out whatever room is left. Of the others, a phrase, quoted on purpose, goes
// first; then the longest words, since in Dutch the long word is the specific one
// (tewerkstellingsvergunning, noodopvang) and the short one the question's frame; among equals
// the earlier, since a question starts with what it is about. The index's counts would tell a
// rare word from a common one better, but the CLI and the web interface cut before they ask the
// node. A query of frame words alone keeps its first MaxQueryTerms.
func keepTelling(terms []string) []bool {
	weight := func(i int) int {
		t := terms[i]
		switch {
		case slices.Contains(terms[:i], t):
			return -2
		case stopWords[t]:
			return -1
		case strings.Contains(t, " "):
			return 1 << 20
		}
		return utf8.RuneCountInString(t)
	}
	order := make([]int, len(terms))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(weight(b), weight(a)) })
	keep := make([]bool, len(terms))
	telling := weight(order[0]) >= 0
	for _, i := range order[:MaxQueryTerms] {
		if w := weight(i); w >= 0 || !telling && w == -1 {
			keep[i] = true
		}
	}
	return keep
}

// stopWords are the words of three letters or more that frame a Dutch or English question
// rather than say what it is about: the first a long question loses.
var stopWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`aan als bij dan dat deze die dit door een eens
		had heb hebben heeft het hoe hoeveel hun iemand iets kan kunnen kunt maar mag meer met
		mijn moet moeten mogen naar niet nog nou ons onze ook over tot uit van voor waar waarom
		wanneer wat welk welke wie wij wil willen worden wordt zal zich zijn zou zouden
		alle alles daar doen gaan gaat graag hier staan staat toch veel vind vinden wel weten zoek
		zoeken
		and are can does for from has have how into not the this that what when where which who why will with you your`) {
		stopWords[w] = true
	}
}

// typographicQuotes are the double quotes people type besides ", as ".
var typographicQuotes = strings.NewReplacer("“", `"`, "”", `"`, "„", `"`, "‟", `"`)

// String is the query as ParseText reads it back, to the same terms: each term, a phrase
// quoted, separated by spaces.
func (q *TextQuery) String() string {
	parts := make([]string, len(q.Terms))
	for i, t := range q.Terms {
		if strings.Contains(t, " ") {
			t = `"` + t + `"`
		}
		parts[i] = t
	}
	return strings.Join(parts, " ")
}

// Sought are the terms as the index and Match look for them: a word's plural ending left off
// (Singular), so that it finds the singular as well as the plural; a phrase as it is.
func (q *TextQuery) Sought() []string {
	out := make([]string, len(q.Terms))
	for i, t := range q.Terms {
		out[i] = Singular(t)
	}
	return out
}

// Singular is a normalised word without the ending of a Dutch plural, which it may have; else
// the term as it is. A term is found anywhere in a word, so the singular finds the plural and
// never the reverse, where people type plurals (vergunningen, opvanglocaties, gemeenten): so the
// ending is left off, and what is left is always the start of the word, which finds the plural
// still. Left off are 's (regio's), -en of a word of six letters or more (vergunningen,
// gemeenten), a doubled consonant before it with it (bedden: bed), and -s after e, l, r, n or m
// of one of five letters or more (opvanglocaties, burgemeesters). Where the singular changes a
// letter (huizen: huis, brieven: brief) the changed letter is left off too, if five letters are
// left (ziekenhuizen: ziekenhui); an irregular plural does not find its singular (steden:
// sted, not stad). A phrase, typed in quotes on purpose, and a term with a digit, stay as they
// are.
func Singular(term string) string {
	if strings.HasSuffix(term, "'s") || strings.HasSuffix(term, "’s") {
		_, size := utf8.DecodeLastRuneInString(strings.TrimSuffix(term, "s"))
		if stem := term[:len(term)-1-size]; utf8.RuneCountInString(stem) >= MinTermRunes && letters(stem) {
			return stem
		}
		return term
	}
	if !letters(term) {
		return term
	}
	n := utf8.RuneCountInString(term)
	switch {
	case n >= 6 && strings.HasSuffix(term, "en"):
		stem := term[:len(term)-2]
		last := stem[len(stem)-1]
		switch {
		case last == stem[len(stem)-2] && strings.IndexByte("bdfgklmnprst", last) >= 0:
			stem = stem[:len(stem)-1] // bedden: bed
		case last == 'z' || last == 'v':
			stem = stem[:len(stem)-1] // ziekenhuizen: ziekenhui(s)
			if utf8.RuneCountInString(stem) < 5 {
				return term
			}
		}
		return stem
	case n >= 5 && strings.HasSuffix(term, "s") && strings.IndexByte("elrnm", term[len(term)-2]) >= 0:
		return term[:len(term)-1]
	}
	return term
}

// letters reports whether s is one word of letters only.
func letters(s string) bool {
	for _, r := range s {
		if !unicode.IsLetter(r) {
			return false
		}
	}
	return s != ""
}

// Match reports whether every term occurs in one of texts; with Any, whether one does.
func (q *TextQuery) Match(texts []string) bool {
	norm := make([]string, len(texts))
	for i, t := range texts {
		norm[i] = Normalize(t)
	}
	for _, term := range q.Sought() {
		found := false
		for _, t := range norm {
			if strings.Contains(t, term) {
				found = true
				break
			}
		}
		if found == q.Any {
			return found
		}
	}
	return !q.Any
}

// bm25's constants, as SQLite's FTS5 has them: how soon more occurrences of a term stop adding
// (k1), and how much a long record weighs them down (b).
const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

// Rank orders docs, each the texts of one record as its reader may see them, best first for q,
// and returns their indexes: bm25 over those texts alone, ties in the order given. A source ranks
// what it sends a recipient this way, so that a field the recipient may not see cannot move a
// record up or down. Every doc is taken to match q (Match): each term then occurs in all of them,
// so that bm25 weighs every term alike, and what orders them is how often the terms occur against
// how many words the record has.
func (q *TextQuery) Rank(docs [][]string) []int {
	words := make([]int, len(docs))
	tf := make([][]int, len(docs)) // each term's occurrences
	total := 0
	sought := q.Sought()
	for i, texts := range docs {
		tf[i] = make([]int, len(sought))
		for _, t := range texts {
			n := Normalize(t)
			words[i] += len(strings.Fields(n))
			for k, term := range sought {
				tf[i][k] += strings.Count(n, term)
			}
		}
		total += words[i]
	}
	avg := max(1, float64(total)/float64(max(1, len(docs))))
	score := make([]float64, len(docs))
	for i := range docs {
		norm := bm25K1 * (1 - bm25B + bm25B*float64(words[i])/avg)
		for _, c := range tf[i] {
			score[i] += float64(c) * (bm25K1 + 1) / (float64(c) + norm)
		}
	}
	order := make([]int, len(docs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(x, y int) int { return cmp.Compare(score[y], score[x]) })
	return order
}

// Snippet is a short excerpt of the first text in which a term occurs, with every occurrence of
// a term in it marked «like this». Only texts are read, so a snippet holds nothing the reader may
// not see.
func (q *TextQuery) Snippet(texts []string) string {
	s, _ := q.SnippetIn(texts)
	return s
}

// SnippetIn is Snippet with the index in texts of the text it is from, -1 when no term occurs:
// a caller that knows where each text came from can say where the match is.
func (q *TextQuery) SnippetIn(texts []string) (string, int) {
	const around = 60 // runes of context on each side
	sought := q.Sought()
	for ti, t := range texts {
		runes := []rune(t)
		// Normalize maps each rune to at most one rune (it drops marks and folds case), so
		// the match positions are found on a rune-by-rune normalised copy.
		folded := make([]rune, len(runes))
		for i, r := range runes {
			folded[i] = foldRune(r)
		}
		type span struct{ from, to int }
		var spans []span
		for k, term := range sought {
			tr, typed := []rune(term), []rune(q.Terms[k])
			for i := 0; i+len(tr) <= len(folded); i++ {
				if folded[i] == tr[0] && slices.Equal(folded[i:i+len(tr)], tr) {
					// The plural as typed, where it stands, is marked whole: «vergunningen».
					to := i + len(tr)
					if i+len(typed) <= len(folded) && slices.Equal(folded[i:i+len(typed)], typed) {
						to = i + len(typed)
					}
					spans = append(spans, span{i, to})
					i = to - 1
				}
			}
		}
		if len(spans) == 0 {
			continue
		}
		first := spans[0]
		for _, s := range spans {
			if s.from < first.from {
				first = s
			}
		}
		from, to := max(0, first.from-around), min(len(runes), first.to+around)
		var b strings.Builder
		if from > 0 {
			b.WriteString("…")
		}
		for i := from; i < to; i++ {
			for _, s := range spans {
				if s.from == i {
					b.WriteString("«")
				}
			}
			b.WriteRune(runes[i])
			for _, s := range spans {
				if s.to == i+1 {
					b.WriteString("»")
				}
			}
		}
		if to < len(runes) {
			b.WriteString("…")
		}
		return strings.Join(strings.Fields(b.String()), " "), ti
	}
	return "", -1
}

// The store's word index holds the words of a normalised text: the runs of letters, digits and
// marks between any other runes. A term is found through the words it spans (TermWords).

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r) }

// AppendWords appends the words of normalised text s to dst.
func AppendWords(dst []string, s string) []string {
	start := -1
	for i, r := range s {
		switch {
		case isWordRune(r):
			if start < 0 {
				start = i
			}
		case start >= 0:
			dst = append(dst, s[start:i])
			start = -1
		}
	}
	if start >= 0 {
		dst = append(dst, s[start:])
	}
	return dst
}

// TermWords are the words of a normalised term, in order. Where the term occurs in a text, each
// of them is a word of the text, except that the first may be the end of a longer word when
// openStart (the term starts with a letter or digit: "vergunning" in
// "tewerkstellingsvergunning"), and the last the start of one when openEnd.
func TermWords(term string) (words []string, openStart, openEnd bool) {
	words = AppendWords(nil, term)
	if len(words) == 0 {
		return nil, false, false
	}
	first, _ := utf8.DecodeRuneInString(term)
	last, _ := utf8.DecodeLastRuneInString(term)
	return words, isWordRune(first), isWordRune(last)
}

// Normalize folds text for matching: lower case, diacritics removed, every white space rune a
// space. The result has as many runes as s.
func Normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

// pasted is a query's text as it was meant, whatever it was pasted from (review P, P9): composed
// (NFC: a ï that a PDF or a Mac wrote as i and a combining mark), each character that has one
// character as its compatibility form written so (a letter typed full width), and without the
// invisible characters that text copied from elsewhere holds (a soft hyphen, a zero-width space,
// a direction mark: Unicode's format characters, Cf), so that Zeist with a soft hyphen in it is
// Zeist. A character whose compatibility form is several (the ligature ĳ) stays as typed, as a
// record's text holds it (review Q, Q2).
func pasted(q string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) {
			return -1
		}
		if r >= utf8.RuneSelf {
			if k := norm.NFKC.String(string(r)); utf8.RuneCountInString(k) == 1 {
				r, _ = utf8.DecodeRuneInString(k)
			}
		}
		return r
	}, norm.NFC.String(q))
}

// acronym says whether a typed word is in capitals, two letters or more (WHO, GGD): a name,
// not the word that frames a question (who).
func acronym(typed string) bool {
	letters := 0
	for _, r := range typed {
		if unicode.IsLower(r) {
			return false
		}
		if unicode.IsLetter(r) {
			letters++
		}
	}
	return letters >= 2
}

// foldRune is one rune of Normalize: its lower case without diacritics. A rune whose canonical
// decomposition is a base letter and marks becomes the base letter; white space becomes a space.
func foldRune(r rune) rune {
	if unicode.IsSpace(r) {
		return ' '
	}
	if r >= utf8.RuneSelf {
		if d := norm.NFD.String(string(r)); d != "" {
			if base, size := utf8.DecodeRuneInString(d); size < len(d) && !unicode.Is(unicode.Mn, base) {
				r = base
			}
		}
	}
	return unicode.ToLower(r)
}

// Texts returns the text of a body that a text query reads: the string values (or arrays of
// strings) of the kind's declared text fields, in their order; for a kind that declares none,
// or one this node does not know, every string in the body, by key order. A body that is
// not a JSON object has no text.
func Texts(k *Kind, body []byte) []string {
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			for _, key := range sortedKeys(v) {
				walk(v[key])
			}
		}
	}
	if k == nil || len(k.Text) == 0 {
		walk(obj)
		return out
	}
	for _, f := range k.Text {
		switch v := obj[f].(type) {
		case string:
			out = append(out, v)
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
