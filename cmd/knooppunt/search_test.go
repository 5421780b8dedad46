package main

import (
	"strings"
	"testing"
)

// TestCLISearchByWords: search --text leaves out the words too short to look for, says so on
// stderr, and searches for the rest; a query of nothing else is refused, naming the flag.
func TestCLISearchByWords(t *testing.T) {
	addr, _ := servedNode(t)
	cli(t, nil, "", "record", "put", "--node", addr, "--kind", "qa", "--crisis", "oekraine", "--region", "NL", "--classification", "public",
		"--id", "qa-werk", "--body", `{"question":"Mogen ontheemden werken?","answer":"Ja, zonder tewerkstellingsvergunning."}`).want(t, 0)
	r := cli(t, nil, "", "search", "--node", addr, "--text", "werken in NL zonder vergunning").want(t, 0)
	if !strings.Contains(r.stdout, "qa-werk") || !strings.Contains(r.stdout, "«werken»") {
		t.Errorf("search for werken in NL zonder vergunning printed:\n%s", r.stdout)
	}
	if want := `knooppunt: not searched for "in", "NL": words of fewer than 3 characters cannot be looked for`; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	// Every word that is left must occur.
	if r := cli(t, nil, "", "search", "--node", addr, "--text", "werken in Zeeland").want(t, 0); strings.Contains(r.stdout, "qa-werk") {
		t.Errorf("search for werken in Zeeland found the Q&A:\n%s", r.stdout)
	}
	if r := cli(t, nil, "", "search", "--node", addr, "--text", "in de").want(t, 1); !strings.Contains(r.stderr, `--text: "in", "de": search for words of 3 characters or more`) {
		t.Errorf("search for in de: stderr %q", r.stderr)
	}
}
