package policy

import (
	"encoding/json"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// validJSONSeeds are the edges where two JSON validators could part: whitespace, literals,
// numbers, escapes, bytes in strings, nesting at encoding/json's limit.
var validJSONSeeds = []string{
	``, ` `, `{}`, ` {} `, "{}\n\t\r ", "{}\v", "{}\f", "\ufeff{}", `null`, `nul`, `nulll`, `true`, `tru`,
	`false `, `0`, `-0`, `01`, `1.`, `.1`, `1e`, `1E+2`, `1e-2`, `-`, `--1`, `+1`, `1.5e400`, `0x10`,
	`"a"`, `"\u00e9"`, `"\ud800"`, `"\u12"`, `"\x"`, `"\/"`, "\"\x01\"", "\"\x7f\"", "\"\xff\xfe\"",
	"\"\t\"", `{"a":1,}`, `[1,]`, `{"a" 1}`, `{"a":1 "b":2}`, `{a:1}`, `{"a":1}{}`, `[`, `]`, `{"a":[}`,
	`{"a":1,"a":2}`, `[[],{},[{}]]`, `{"":""}`, `{"a":{"b":{"c":[1,2,{"d":null}]}}}`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
	`[` + strings.Repeat(`1,`, 12000) + `1]`,
}

// TestValidJSONMatchesEncodingJSON holds validJSON to encoding/json.Valid on the seeds, on
// generated bodies and on bodies with a byte changed, cut or doubled.
func TestValidJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range validJSONSeeds {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("validJSON(%.60q…) = %v, encoding/json says %v", s, got, want)
		}
	}
	rapid.Check(t, func(t *rapid.T) {
		b := []byte(genJSONValue(3).Draw(t, "body"))
		if len(b) > 0 {
			i := rapid.IntRange(0, len(b)-1).Draw(t, "at")
			switch rapid.IntRange(0, 3).Draw(t, "mutation") {
			case 1:
				b[i] = rapid.Byte().Draw(t, "byte")
			case 2:
				b = b[:i]
			case 3:
				b = append(b[:i:i], b[i:]...)
				b = append(b, b[i:]...)
			}
		}
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range validJSONSeeds {
		if len(s) < 1000 {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}
