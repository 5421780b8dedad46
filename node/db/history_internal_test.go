package db

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestMigrationStartsHistory checks that migration 10 fills the history from the records a
// database held before it, with their bodies' numbers, so that rules see the past of an
// upgraded node.
func TestMigrationStartsHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	h, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range migrations[:8] {
		if _, err := h.Exec(m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
	}
	if _, err := h.Exec(`PRAGMA user_version = 8`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(`INSERT INTO records VALUES ('s1','vr.test','shelter.capacity','c','VR19',1,'{}',CAST('{"beds_free":3,"note":"x"}' AS BLOB),2,1000,0,0,1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(`INSERT INTO foreign_records VALUES ('p.test','f1','p.test','shelter.capacity','c','VR19',1,'{}',CAST('{"beds_free":4.5}' AS BLOB),1,2000,0,0,'[]','[]',3000)`); err != nil {
		t.Fatal(err)
	}
	h.Close()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.History(context.Background(), HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(len(rows))
	for _, r := range rows {
		got += fmt.Sprintf(" %s/%s/v%d@%d:%v", r.Origin, r.ID, r.Version, r.At.UnixNano(), r.Fields)
	}
	if want := "2 /s1/v2@1000:map[beds_free:3] p.test/f1/v1@2000:map[beds_free:4.5]"; got != want {
		t.Errorf("history after migration:\n got %s\nwant %s", got, want)
	}
}

// TestScalarsOfAsEncodingJSON holds scalarsOf to what it was first written as, encoding/json's
// decoding of the body into a map and encoding of the scalars: a replica of an earlier release
// stores that text for the same entry, and replicas must agree byte for byte.
func TestScalarsOfAsEncodingJSON(t *testing.T) {
	reference := func(body []byte) string {
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil {
			return "{}"
		}
		out := map[string]any{}
		for k, v := range m {
			v = bytes.TrimSpace(v)
			switch {
			case v[0] == '-' || (v[0] >= '0' && v[0] <= '9'):
				if f, err := strconv.ParseFloat(string(v), 64); err == nil {
					out[k] = f
				}
			case v[0] == 't' || v[0] == 'f':
				out[k] = v[0] == 't'
			case v[0] == '"':
				var s string
				if json.Unmarshal(v, &s) == nil && len(s) <= MaxHistoryString {
					out[k] = s
				}
			}
		}
		b, _ := json.Marshal(out)
		return string(b)
	}
	for _, body := range testBodies(5000) {
		if got, want := scalarsOf([]byte(body)), reference([]byte(body)); got != want {
			t.Fatalf("scalarsOf(%q)\n = %s\nwant %s", body, got, want)
		}
	}
}

// testBodies is n random JSON object bodies, with keys and values that decode in unusual ways
// (escapes, HTML characters, lone surrogates, long strings, numbers out of range, duplicate
// keys, nesting), after a few bodies that are not objects or not JSON.
func testBodies(n int) []string {
	rnd := rand.New(rand.NewPCG(1, 2))
	pick := func(xs ...string) string { return xs[rnd.IntN(len(xs))] }
	key := func() string {
		return pick(`"a"`, `"b"`, `"beds_free"`, `"x y"`, `"<&>"`, `"é"`, `"\u00e9"`, `"a\"b"`, `"a&b"`, `"\n"`, `""`, `"\ud83d\ude00"`, `"Z"`)
	}
	var value func(depth int) string
	value = func(depth int) string {
		switch rnd.IntN(9) {
		case 0:
			return pick("0", "-0", "1", "-12", "3.25", "1e21", "1e20", "1.5e-7", "1e-6", "123456789012345678901234567890", "1e400", "-1e400", "2E3", "0.1e-10", "5e-324")
		case 1:
			return pick("true", "false", "null")
		case 2:
			return pick(`"Utrecht"`, `"<b>&amp;</b>"`, `"R&D"`, `"1 > 0"`, `"tab\there"`, `"\u2028"`, `"é ü ß"`, `"\"quoted\""`, `"back\\slash"`, `"\u0007"`, `"/\/"`, `""`, `"\ud800"`)
		case 3:
			return `"` + strings.Repeat("x", 250+rnd.IntN(12)) + `"`
		case 4:
			if depth < 3 {
				return "[" + value(depth+1) + "," + value(depth+1) + "]"
			}
		case 5:
			if depth < 3 {
				return "{" + key() + ":" + value(depth+1) + "}"
			}
		}
		return strconv.Itoa(rnd.IntN(1000))
	}
	ws := func() string { return pick("", " ", "\n\t ", "\r\n") }
	bodies := []string{"", "null", "[]", `"s"`, "12", "{", `{"a":1,}`, `{"a":1}x`, "{}", " { } ", "\xff", `{"a":"\xff"}`, `{"a":1,"a":"long` + strings.Repeat("y", 300) + `"}`, `{"a":1,"a":null}`, `{"a":1,"a":1e400}`}
	for range n {
		var b strings.Builder
		b.WriteString(ws() + "{")
		for i := range rnd.IntN(6) {
			if i > 0 {
				b.WriteString("," + ws())
			}
			b.WriteString(key() + ws() + ":" + ws() + value(0) + ws())
		}
		b.WriteString("}" + ws())
		bodies = append(bodies, b.String())
	}
	return bodies
}
