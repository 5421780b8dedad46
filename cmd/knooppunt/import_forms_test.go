package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIImportWhatTheCLIWrites: what record list -o json --all and record get -o json write goes
// back in with import, into a fresh node, as the same records; into the node it came from, a
// record changed since is refused as stale (Aborted), at the line where it starts, and the others
// are written again. Before, every line of such a file was a rejection ("cannot unmarshal string
// into Go value of type record.JSON").
func TestCLIImportWhatTheCLIWrites(t *testing.T) {
	from, dir := servedNode(t)
	put := func(id, region, body string, extra ...string) {
		t.Helper()
		cli(t, nil, "", append([]string{"record", "put", "--node", from, "--id", id, "--kind", "shelter.capacity", "--crisis", "oekraine",
			"--region", region, "--classification", "internal", "--body", body}, extra...)...).want(t, 0)
	}
	put("utr-a", "VR09", utrechtBody, "--label", "source=lcvs", "--valid-until", "2031-12-31T00:00:00Z")
	put("utr-a", "VR09", `{"municipality":"Utrecht","beds_total":120,"beds_free":9}`, "--label", "source=lcvs", "--valid-until", "2031-12-31T00:00:00Z")
	put("zst-b", "VR09", `{"municipality":"Zeist","beds_total":80,"beds_free":3}`)
	put("gs-c", "VR19", `{"municipality":"Goes","beds_total":60,"beds_free":0}`)

	keep := filepath.Join(dir, "keep.json")
	list := cli(t, nil, "", "record", "list", "--node", from, "-o", "json", "--all").want(t, 0).stdout
	one := filepath.Join(dir, "utr-a.json")
	got := cli(t, nil, "", "record", "get", "utr-a", "--node", from, "-o", "json").want(t, 0).stdout +
		cli(t, nil, "", "record", "get", "gs-c", "--node", from, "-o", "json").want(t, 0).stdout
	for path, content := range map[string]string{keep: list, one: got} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The records' own fields, as record list -o json prints them; the node's own (version,
	// updated_at) are its business.
	own := func(addr string) map[string]string {
		t.Helper()
		var recs []map[string]any
		cli(t, nil, "", "record", "list", "--node", addr, "-o", "json", "--all").want(t, 0).oneJSON(t, &recs)
		out := map[string]string{}
		for _, r := range recs {
			delete(r, "version")
			delete(r, "updated_at")
			b, _ := json.Marshal(r)
			out[fmt.Sprint(r["id"])] = string(b)
		}
		return out
	}
	want := own(from)

	for _, tc := range []struct {
		name, file string
		ids        []string
	}{
		{"record list -o json --all", keep, []string{"gs-c", "utr-a", "zst-b"}},
		{"record get -o json, twice", one, []string{"utr-a", "gs-c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fresh, _ := servedNode(t)
			r := cli(t, nil, "", "import", tc.file, "--node", fresh, "-q").want(t, 0)
			if w := fmt.Sprintf("%s: %d accepted, 0 rejected\n", tc.file, len(tc.ids)); r.stdout != w {
				t.Fatalf("import printed %q, want %q; stderr %q", r.stdout, w, r.stderr)
			}
			stored := own(fresh)
			if len(stored) != len(tc.ids) {
				t.Fatalf("stored %v, want %v", stored, tc.ids)
			}
			for _, id := range tc.ids {
				if stored[id] != want[id] {
					t.Errorf("%s:\n got %s\nwant %s", id, stored[id], want[id])
				}
			}
		})
	}

	// Into the node it came from: zst-b changed since it was kept, and is refused as any stale
	// write is; the others are written again, at their next version.
	put("zst-b", "VR09", `{"municipality":"Zeist","beds_total":80,"beds_free":1}`, "--version", "1")
	var sum struct {
		Accepted, Rejected int
		Rejections         []struct {
			Line     int
			ID, Code string
			Field    string
			Reason   string
		}
	}
	cli(t, nil, "", "import", keep, "--node", from, "-o", "json").want(t, 2).oneJSON(t, &sum)
	line := 0
	for i, l := range strings.Split(list, "\n") {
		if strings.Contains(l, `"id": "zst-b"`) {
			line = i // the line before, counted from 1: the record's {
		}
	}
	if sum.Accepted != 2 || sum.Rejected != 1 || len(sum.Rejections) != 1 {
		t.Fatalf("re-import into the node it came from: %+v", sum)
	}
	if rj := sum.Rejections[0]; rj.Line != line || rj.ID != "zst-b" || rj.Code != "ABORTED" ||
		rj.Reason != `record "zst-b" is at version 2, not 1: read it again and retry with version 2` {
		t.Errorf("rejection %+v, want line %d zst-b Aborted, stale", rj, line)
	}
}

// TestCLIImportJSONOfAnotherShape: a JSON file that holds no records in a form import takes is
// refused once, saying the forms, and nothing is stored; before, each of its lines was a
// rejection with encoding/json's words.
func TestCLIImportJSONOfAnotherShape(t *testing.T) {
	addr, dir := servedNode(t)
	ids := filepath.Join(dir, "ids.json")
	if err := os.WriteFile(ids, []byte("[\n  \"utr-a\",\n  \"zst-b\"\n]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := cli(t, nil, "", "import", ids, "--node", addr, "-q").want(t, 1)
	if w := "knooppunt: " + ids + `: line 2: record 1 of the array is a JSON string, not a record object: import takes JSON Lines (one record object a line), one JSON array of record objects (as "record list -o json" writes it), or record objects spread over several lines (as "record get -o json" writes it)` + "\n"; r.stderr != w || r.stdout != "" {
		t.Fatalf("stdout %q stderr %q, want stderr %q", r.stdout, r.stderr, w)
	}
	var recs []any
	cli(t, nil, "", "record", "list", "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &recs)
	if len(recs) != 0 {
		t.Errorf("stored %v", recs)
	}
}
