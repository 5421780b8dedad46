package record

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseText(t *testing.T) {
	for _, tc := range []struct {
		q     string
		terms []string
		err   string
	}{
		{q: "vergunning", terms: []string{"vergunning"}},
		{q: `  Coördinatie   "Werk  Vergunning" opvang`, terms: []string{"coordinatie", "werk vergunning", "opvang"}},
		{q: `"tewerkstelling"vergunning`, terms: []string{"tewerkstelling", "vergunning"}},
		{q: `abc"def`, err: `text: a phrase opened with " is not closed: add the closing "`},
		{q: `vergunning "open`, err: `text: a phrase opened with " is not closed`},
		{q: "   ", err: "text: no words to search for"},
		{q: `""`, err: "text: no words to search for"},
		{q: "de vergunning", err: `text: "de" is shorter than 3 characters: search for longer words`},
		{q: "\xff\xfe", err: "text: not valid UTF-8"},
		{q: `vergunning "-- ..."`, err: `text: "-- ..." has no letters or digits: search for words`},
		{q: strings.Repeat("abcd ", 17), err: "text: 17 words and phrases is over the limit of 16"},
		{q: strings.Repeat("x", 513), err: "text: 513 bytes is over the limit of 512"},
		// FTS5 syntax is text like any other.
		{q: `NEAR(a b) OR "x" * ^col:`, err: `text: "b" is shorter than 3 characters`},
		{q: `NEAR(abc, def) col:xyz*`, terms: []string{"near(abc", "def", "col:xyz"}},
		// Punctuation at a word's ends is not looked for; quotes as phones type them make a
		// phrase.
		{q: `opvang, (vluchtelingen) vaccinatie? -ontheemden "opvang."`, terms: []string{"opvang", "vluchtelingen", "vaccinatie", "ontheemden", "opvang"}},
		{q: "\u201copvang ontheemden\u201d \u201ehulp\u201d", terms: []string{"opvang ontheemden", "hulp"}},
		{q: `IC-bedden e-mail 112`, terms: []string{"ic-bedden", "e-mail", "112"}},
		{q: `vergunning &&&`, err: `text: "&&&" has no letters or digits: search for words`},
	} {
		q, err := ParseText("text", tc.q)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("ParseText(%q) = %v, %v; want error %q", tc.q, q, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseText(%q): %v", tc.q, err)
			continue
		}
		if strings.Join(q.Terms, "|") != strings.Join(tc.terms, "|") {
			t.Errorf("ParseText(%q) = %q, want %q", tc.q, q.Terms, tc.terms)
		}
	}
}

// TestParseTextLoosely: what a search box sends. Words the index cannot look for are left out
// and named; the rest is searched, and its String reads back, strictly, to the same terms.
func TestParseTextLoosely(t *testing.T) {
	for _, tc := range []struct {
		q              string
		terms, ignored []string
		err            string
	}{
		{q: "opvang in de regio", terms: []string{"opvang", "regio"}, ignored: []string{"in", "de"}},
		{q: `"in" Vergunning & 24 "Werk  Vergunning" ...`, terms: []string{"vergunning", "werk vergunning"}, ignored: []string{"in", "&", "24", "..."}},
		{q: "IC-bedden in VR", terms: []string{"ic-bedden"}, ignored: []string{"in", "VR"}},
		{q: "vergunning", terms: []string{"vergunning"}},
		// As pasted (review P, P9): a decomposed ï, a soft hyphen, a zero-width space, full width.
		{q: "Oekrai\u0308ne Zei\u00adst", terms: []string{"oekraine", "zeist"}},
		{q: "Zei\u200bst ＧＯＥＳ", terms: []string{"zeist", "goes"}},
		// A ligature stays, as a record's text holds it (review Q, Q2).
		{q: "b\u0133stand", terms: []string{"b\u0133stand"}},
		{q: "opvang* *vergun* *", terms: []string{"opvang", "vergun"}},
		{q: "in de", err: `text: "in", "de": search for words of 3 characters or more`},
		{q: "   ", err: "text: no words to search for"},
		{q: `opvang "regio`, err: `text: a phrase opened with " is not closed`},
	} {
		q, ignored, err := ParseTextLoosely("text", tc.q)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("ParseTextLoosely(%q) = %v, %v; want error %q", tc.q, q, err, tc.err)
			}
			// A search box tells the phrase not closed, and too many terms, from the other
			// refusals by their causes.
			if open := strings.Contains(tc.err, "not closed"); errors.Is(err, ErrOpenPhrase) != open {
				t.Errorf("ParseTextLoosely(%q): errors.Is(%v, ErrOpenPhrase) = %v, want %v", tc.q, err, !open, open)
			}
			if many := strings.Contains(tc.err, "words and phrases"); errors.Is(err, ErrTooManyTerms) != many {
				t.Errorf("ParseTextLoosely(%q): errors.Is(%v, ErrTooManyTerms) = %v, want %v", tc.q, err, !many, many)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTextLoosely(%q): %v", tc.q, err)
			continue
		}
		if strings.Join(q.Terms, "|") != strings.Join(tc.terms, "|") || strings.Join(ignored, "|") != strings.Join(tc.ignored, "|") {
			t.Errorf("ParseTextLoosely(%q) = %q, ignoring %q; want %q, ignoring %q", tc.q, q.Terms, ignored, tc.terms, tc.ignored)
		}
		back, err := ParseText("text", q.String())
		if err != nil || strings.Join(back.Terms, "|") != strings.Join(q.Terms, "|") {
			t.Errorf("ParseText(%q), the String of %q: %v, %v; want the same terms", q.String(), tc.q, back, err)
		}
	}
}

func TestTextMatchAndSnippet(t *testing.T) {
	texts := []string{"Werk voor vluchtelingen", "Een TEWERKSTELLINGSVERGUNNING is niet nodig voor coördinatie van de opvang in de gemeente."}
	for _, tc := range []struct {
		q       string
		match   bool
		snippet string
	}{
		{"vergunning", true, "Een TEWERKSTELLINGS«VERGUNNING» is niet nodig voor «coördinatie»"},
		{"vergunning coordinatie", true, "Een TEWERKSTELLINGS«VERGUNNING» is niet nodig voor «coördinatie» van de opvang in de gemeente…"},
		{"vluchtelingen", true, "Werk voor «vluchtelingen»"},
		{`"werk voor"`, true, "«Werk voor» vluchtelingen"},
		{`"werk vergunning"`, false, ""},
		{"vergunning asiel", false, ""},
	} {
		q, err := ParseText("text", tc.q)
		if err != nil {
			t.Fatal(err)
		}
		if got := q.Match(texts); got != tc.match {
			t.Errorf("%q: Match = %v, want %v", tc.q, got, tc.match)
		}
		if !tc.match {
			continue
		}
		got := q.Snippet(texts)
		if tc.q == "vergunning" {
			// One term marks only its own occurrences.
			tc.snippet = "Een TEWERKSTELLINGS«VERGUNNING» is niet nodig voor coördinatie van de opvang in de gemeente…"
		}
		if got != tc.snippet {
			t.Errorf("%q: Snippet = %q, want %q", tc.q, got, tc.snippet)
		}
	}
	long := strings.Repeat("woord ", 40) + "vergunning" + strings.Repeat(" woord", 40)
	q, _ := ParseText("text", "vergunning")
	if got := q.Snippet([]string{long}); !strings.HasPrefix(got, "…") || !strings.HasSuffix(got, "…") || !strings.Contains(got, "«vergunning»") || len([]rune(got)) > 140 {
		t.Errorf("Snippet of a long text = %q; want about 60 characters each side of the match, cut with …", got)
	}
	// SnippetIn says which text the snippet is from, so that a match in a file can be said to be.
	if _, i := q.SnippetIn(texts); i != 1 {
		t.Errorf("SnippetIn(%q) is from text %d, want 1", texts, i)
	}
	if s, i := q.SnippetIn([]string{"geen"}); s != "" || i != -1 {
		t.Errorf("SnippetIn of a text without the term = %q, %d; want \"\", -1", s, i)
	}
}

// TestSingular: a Dutch plural is looked for without its ending, which finds the singular and
// the plural alike (review I, F19: `search --text vergunningen` found nothing of "vergunning").
func TestSingular(t *testing.T) {
	for term, want := range map[string]string{
		"vergunningen":   "vergunning",
		"opvanglocaties": "opvanglocatie",
		"gemeenten":      "gemeent",
		"gemeentes":      "gemeente",
		"ontheemden":     "ontheemd",
		"burgemeesters":  "burgemeester",
		"maatregelen":    "maatregel",
		"bedden":         "bed",
		"adressen":       "adres",
		"ziekenhuizen":   "ziekenhui",
		"regio's":        "regio",
		"regio’s":        "regio",
		"knieen":         "knie",
		"kinderen":       "kinder", // irregular: kind is not found
		// Unchanged: too short to tell, a changed letter leaving too little, an irregular
		// plural, a singular, a phrase, a term with a digit.
		"wegen":            "wegen",
		"huizen":           "huizen",
		"brieven":          "brieven",
		"vergunning":       "vergunning",
		"kans":             "kans",
		"crisis":           "crisis",
		"werk voor":        "werk voor",
		"a12en":            "a12en",
		"covid19s":         "covid19s",
		"tewerkstellingen": "tewerkstelling",
	} {
		got := Singular(term)
		if got != want {
			t.Errorf("Singular(%q) = %q, want %q", term, got, want)
		}
		if !strings.HasPrefix(term, got) {
			t.Errorf("Singular(%q) = %q is not the start of the word: the plural itself would not be found", term, got)
		}
	}
	// Found in the singular and the plural, marked as typed where the plural stands.
	q, err := ParseText("text", "vergunningen opvanglocaties")
	if err != nil {
		t.Fatal(err)
	}
	if q.String() != "vergunningen opvanglocaties" {
		t.Errorf("the query reads back as %q: a peer is sent what was typed", q.String())
	}
	for _, tc := range []struct{ text, snippet string }{
		{"Een tewerkstellingsvergunning voor de Opvanglocatie Middelburg", "Een tewerkstellings«vergunning» voor de «Opvanglocatie» Middelburg"},
		{"Vergunningen voor alle opvanglocaties", "«Vergunningen» voor alle «opvanglocaties»"},
	} {
		if !q.Match([]string{tc.text}) {
			t.Errorf("%q does not match %q", q, tc.text)
		}
		if got := q.Snippet([]string{tc.text}); got != tc.snippet {
			t.Errorf("Snippet of %q = %q, want %q", tc.text, got, tc.snippet)
		}
	}
	if q.Match([]string{"Een vergunning voor de opvang"}) {
		t.Error(`"vergunningen opvanglocaties" matches a text without opvanglocatie`)
	}
}

// TestTextRank: Rank orders by how often the terms occur, against a record's length, in the
// texts given and nothing else; ties keep the order given.
func TestTextRank(t *testing.T) {
	q, err := ParseText("text", "vergunning opvang")
	if err != nil {
		t.Fatal(err)
	}
	docs := [][]string{
		{"Opvang en een vergunning"},                                    // 0: each once, short
		{"Vergunning, VERGUNNING, tewerkstellingsvergunning", "opvang"}, // 1: three and one
		{"Opvang en een vergunning"},                                    // 2: as 0: after it
		{"Een vergunning voor de opvang van vluchtelingen in de gemeente, met scholing, zorg en werk voor iedereen die hier komt"}, // 3: each once, long
		{"Opvang, noodopvang en coördinatie van de opvang", "vergunning"},                                                          // 4: three and one, longer than 1
	}
	if got, want := q.Rank(docs), []int{1, 4, 0, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("Rank = %v, want %v", got, want)
	}
	// Only the texts given count: a text left out (a redacted field) moves nothing.
	withHidden := slices.Clone(docs)
	withHidden[3] = append(slices.Clone(docs[3]), strings.Repeat("vergunning opvang ", 20))
	if got := q.Rank(withHidden); got[0] != 3 {
		t.Errorf("Rank with a long text of terms added to 3 = %v, want 3 first", got)
	}
	if got := q.Rank(nil); len(got) != 0 {
		t.Errorf("Rank(nil) = %v", got)
	}
}

func TestTexts(t *testing.T) {
	kinds, err := NewKinds(DemoKinds())
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"title":"Werk","text":"Regels","url":"https://example.test/werk","tags":["a"]}`)
	if got := Texts(kinds.Get("guidance"), body); strings.Join(got, "|") != "Werk|Regels" {
		t.Errorf("guidance texts = %q, want its declared fields title and text", got)
	}
	if got := Texts(nil, body); strings.Join(got, "|") != "a|Regels|Werk|https://example.test/werk" {
		t.Errorf("texts of an unknown kind = %q, want every string by key order", got)
	}
	if got := Texts(nil, []byte(`[1]`)); got != nil {
		t.Errorf("texts of a body that is no object = %q", got)
	}
	if _, err := NewKinds([]Kind{{Name: "x", Text: []string{"a", "a"}}}); err == nil || !strings.Contains(err.Error(), `kinds[0].text[1] (x): "a" is listed twice`) {
		t.Errorf("a text field listed twice: %v", err)
	}
}

func TestTermWords(t *testing.T) {
	for _, tc := range []struct {
		term       string
		words      string
		start, end bool
	}{
		{"vergunning", "vergunning", true, true},
		{"de bilt", "de|bilt", true, true},
		{"(abc, def)", "abc|def", false, false},
		{"col:xyz*", "col|xyz", true, false},
		{"coördinatie-team", "coördinatie|team", true, true},
		{"...", "", false, false},
	} {
		words, start, end := TermWords(tc.term)
		if strings.Join(words, "|") != tc.words || start != tc.start || end != tc.end {
			t.Errorf("TermWords(%q) = %q, %v, %v; want %q, %v, %v", tc.term, words, start, end, tc.words, tc.start, tc.end)
		}
	}
}

// TestParseTextLooselyCutsALongQuestion: a question of 30 words pasted whole is searched on its
// most telling words and phrases, in their order, at most 16, and names the others as typed; the
// strict parse (the API's) still refuses it.
func TestParseTextLooselyCutsALongQuestion(t *testing.T) {
	q := `Wat moet een gemeente doen als een ontheemde uit Oekraïne in de noodopvang werk heeft gevonden ` +
		`maar nog geen "BSN nummer" en geen tewerkstellingsvergunning heeft voor werk bij een werkgever?`
	if n := len(strings.Fields(q)); n != 30 {
		t.Fatalf("the question has %d words", n)
	}
	tq, ignored, err := ParseTextLoosely("text", q)
	if err != nil {
		t.Fatal(err)
	}
	// The frame of the question goes (wat, moet, een, ...: they would also find water and
	// moeten), and a word said twice is searched once; what it is about stays, in its order.
	want := []string{"gemeente", "ontheemde", "oekraine", "noodopvang", "werk", "gevonden", "geen", "bsn nummer",
		"tewerkstellingsvergunning", "werkgever"}
	if !slices.Equal(tq.Terms, want) || tq.LeftOut != nil {
		t.Errorf("kept %q, left out %q; want %q, nothing left out for room", tq.Terms, tq.LeftOut, want)
	}
	if got, want := strings.Join(tq.Frame, "|"), "Wat|moet|een|doen|als|uit|heeft|maar|nog|voor|bij"; got != want {
		t.Errorf("frame %q, want %q: each frame word once, as typed", got, want)
	}
	if got := strings.Join(ignored, "|"); got != "in|de|en" {
		t.Errorf("ignored %q, want the words too short", got)
	}
	back, err := ParseText("text", tq.String())
	if err != nil || !slices.Equal(back.Terms, tq.Terms) {
		t.Errorf("ParseText(%q): %v, %v; want the cut query's terms", tq.String(), back, err)
	}
	if _, err := ParseText("text", tq.String()+" "+strings.Join(tq.Frame, " ")); !errors.Is(err, ErrTooManyTerms) {
		t.Errorf("ParseText of the question's terms: %v, want ErrTooManyTerms", err)
	}
	// More telling words than room: the longest stay, a phrase first of all.
	long := `"alpha beta" abcd abcdefgh abcdefghi`
	for c := 'a'; c < 'a'+14; c++ {
		long += " kamer" + string(c)
	}
	tq, _, _ = ParseTextLoosely("text", long)
	if len(tq.Terms) != MaxQueryTerms || tq.Terms[0] != "alpha beta" || tq.Terms[1] != "abcdefgh" || slices.Contains(tq.Terms, "abcd") ||
		tq.Terms[15] != "kamerm" || strings.Join(tq.LeftOut, " ") != "abcd kamern" {
		t.Errorf("%s: kept %q, left out %q", long, tq.Terms, tq.LeftOut)
	}
	// Frame words alone: the first 16 of them, each once.
	tq, _, _ = ParseTextLoosely("text", strings.Repeat("wat hoe ", 3)+"aan als bij dan dat deze die dit door een eens had heb hebben heeft")
	if len(tq.Terms) != MaxQueryTerms || tq.Terms[0] != "wat" || tq.Terms[1] != "hoe" || tq.Terms[2] != "aan" {
		t.Errorf("frame words alone: kept %q", tq.Terms)
	}
	// Within the limit nothing is cut but the frame words, and a word said again.
	words := "wat"
	for c := 'a'; c < 'a'+15; c++ {
		words += " kamer" + string(c)
	}
	if tq, _, _ := ParseTextLoosely("text", words+" kamera"); len(tq.Terms) != 15 || tq.LeftOut != nil || !slices.Equal(tq.Frame, []string{"wat"}) {
		t.Errorf("16 terms: %q, left out %q, frame %q", tq.Terms, tq.LeftOut, tq.Frame)
	}
	// A question typed as one (review P, P2): searched on what it is about, its frame named.
	for q, want := range map[string]string{
		"Hebben ontheemden recht op vaccinaties?":         "ontheemden recht vaccinaties",
		"Wat moet ik doen bij een uitbraak in de opvang?": "uitbraak opvang",
		"Hoeveel vrije plekken zijn er nog in Zeist?":     "vrije plekken zeist",
		"Waar staat de tbc handreiking?":                  "tbc handreiking",
		"wat moet":                                        "wat moet",
		// A frame word typed in quotes, or in capitals, is searched for (review Q, Q3).
		`"WHO" richtlijn mpox`: `who richtlijn mpox`,
		"WHO richtlijn mpox":   "who richtlijn mpox",
		`"wat" opvang`:         "wat opvang",
		"who richtlijn":        "richtlijn",
	} {
		if tq, _, err := ParseTextLoosely("text", q); err != nil || tq.String() != want {
			t.Errorf("%q searches %v (%v), want %q", q, tq, err, want)
		}
	}
}
