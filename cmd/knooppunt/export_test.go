package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportOutIsPrivate: export --out writes the alert with mode 0600, also over a file that was
// world-readable, and whole, through a file beside it; a place it cannot write is refused before
// the node is asked, and leaves nothing.
func TestExportOutIsPrivate(t *testing.T) {
	addr, dir := servedNode(t)
	cli(t, nil, "", "record", "put", "--node", addr, "--id", "conf-1", "--kind", "sitrep", "--crisis", "oekraine", "--region", "NL",
		"--classification", "secret", "--body", `{"title":"geheim","summary":"stg geheim inhoud"}`).want(t, 0)

	outDir := filepath.Join(dir, "out")
	if err := os.Mkdir(outDir, 0o700); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(outDir, "conf.xml")
	if err := os.WriteFile(out, []byte("an older export, longer than nothing"), 0o644); err != nil {
		t.Fatal(err)
	}
	cli(t, nil, "", "export", "--record", "conf-1", "--out", out, "--node", addr).want(t, 0)
	info, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("export --out of a secret record: mode %v, want 0600", info.Mode().Perm())
	}
	doc, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(doc), "<?xml") || !strings.Contains(string(doc), "stg geheim inhoud") || !strings.HasSuffix(strings.TrimSpace(string(doc)), "</alert>") {
		t.Errorf("export --out wrote:\n%s", doc)
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 1 {
		t.Errorf("export --out left %v beside the file", entries)
	}

	// No node behind --node: the refusal comes before the node is asked.
	r := cli(t, nil, "", "export", "--record", "conf-1", "--out", filepath.Join(dir, "missing", "conf.xml"), "--node", "unix://"+filepath.Join(dir, "no-node.sock")).want(t, 1)
	if !strings.HasPrefix(r.stderr, "knooppunt: --out: ") {
		t.Errorf("export --out into a directory that is not there: %q", r.stderr)
	}
}
