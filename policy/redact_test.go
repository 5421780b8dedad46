package policy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestRedactBody checks the raw-bytes redactor on the cases a byte-level reader could get
// wrong. Each want is the exact output: fields kept go out byte for byte.
func TestRedactBody(t *testing.T) {
	cases := []struct {
		name, body string
		paths      []string
		want       string
	}{
		{"top-level field", `{"a":1,"contact_phone":"06","b":2}`, []string{"contact_phone"}, `{"a":1,"b":2}`},
		{"first field", `{"x":1,"a":2}`, []string{"x"}, `{"a":2}`},
		{"last field", `{"a":2,"x":1}`, []string{"x"}, `{"a":2}`},
		{"only field", `{"x":1}`, []string{"x"}, `{}`},
		{"nested field", `{"a":{"b":{"s":1},"c":2},"x":3}`, []string{"a.b"}, `{"a":{"c":2},"x":3}`},
		{"deep field", `{"a":{"b":{"e":1,"f":2}}}`, []string{"a.b.e"}, `{"a":{"b":{"f":2}}}`},
		{"outer and inner", `{"a":{"b":1},"y":1}`, []string{"a.b", "a"}, `{"y":1}`},
		{"two in one object", `{"a":{"b":1,"c":2,"d":3}}`, []string{"a.b", "a.d"}, `{"a":{"c":2}}`},
		{"whole object value", `{"loc":{"lat":52.09,"lon":5.12},"n":1}`, []string{"loc"}, `{"n":1}`},
		{"absent", `{"a":1}`, []string{"zz"}, `{"a":1}`},
		{"absent nested", `{"a":{"c":1}}`, []string{"a.b"}, `{"a":{"c":1}}`},
		{"path through a scalar", `{"a":5}`, []string{"a.b"}, `{"a":5}`},
		{"path through null", `{"a":null}`, []string{"a.b"}, `{"a":null}`},
		{"path through a string", `{"a":"{\"b\":1}"}`, []string{"a.b"}, `{"a":"{\"b\":1}"}`},
		// A digit is a key, never an array index; a path goes into every object of a list, at
		// any depth of lists, and passes the list's other values by.
		{"path through an array", `{"a":[{"b":1},{"b":2}]}`, []string{"a.0", "a.b"}, `{"a":[{},{}]}`},
		{"path through nested arrays", `{"a":[[{"b":1,"c":2}],3,"x",{"d":{"b":4}}]}`, []string{"a.b", "a.d.b"}, `{"a":[[{"c":2}],3,"x",{"d":{}}]}`},
		{"an array's element with the key as a digit", `{"a":[{"0":1,"1":2}]}`, []string{"a.0"}, `{"a":[{"1":2}]}`},
		{"numeric key", `{"a":{"0":1,"1":2}}`, []string{"a.0"}, `{"a":{"1":2}}`},
		{"duplicate key", `{"x":1,"a":2,"x":3}`, []string{"x"}, `{"a":2}`},
		{"duplicate nested", `{"a":{"b":1},"a":{"b":2,"c":3}}`, []string{"a.b"}, `{"a":{},"a":{"c":3}}`},
		{"escaped key", `{"contact\u005fphone":"06","a":1}`, []string{"contact_phone"}, `{"a":1}`},
		{"escaped key, all escaped", `{"\u0078":1,"a":1}`, []string{"x"}, `{"a":1}`},
		{"escaped nested key", `{"\u0061":{"\u0062":1,"c":2}}`, []string{"a.b"}, `{"\u0061":{"c":2}}`},
		{"escaped key with an escaped duplicate", `{"x":1,"\u0078":2,"y":3}`, []string{"x"}, `{"y":3}`},
		{"key not valid UTF-8", "{\"x\xff\":1,\"a\":1}", []string{"x\uFFFD"}, `{"a":1}`},
		{"key that only looks alike", `{"x ":1,"X":2,"\"x":3,"x\\":4}`, []string{"x"}, `{"x ":1,"X":2,"\"x":3,"x\\":4}`},
		{"key in a string value", `{"s":"\"x\":1","x":2}`, []string{"x"}, `{"s":"\"x\":1"}`},
		{"key in a nested string", `{"a":{"s":"{\"b\":1}","b":2}}`, []string{"a.b"}, `{"a":{"s":"{\"b\":1}"}}`},
		{"big numbers kept", `{"n":12345678901234567890,"f":1.000000000000000001,"x":1}`, []string{"x"}, `{"n":12345678901234567890,"f":1.000000000000000001}`},
		{"whitespace", " {\n \"a\" : 1 ,\t\"x\" : { \"y\" : 2 } } \n", []string{"x"}, `{"a":1}`},
		{"html kept as is", `{"a":"<b>&","x":1}`, []string{"x"}, `{"a":"<b>&"}`},
		{"unicode", `{"naam":"Café ☕","x":"\ud83d\ude00"}`, []string{"x"}, `{"naam":"Café ☕"}`},
		{"null body", `null`, []string{"x"}, `null`},
		{"empty object", `{}`, []string{"x"}, `{}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			orig := bytes.Clone(body)
			got, err := redactBody(body, tc.paths)
			if err != nil {
				t.Fatalf("redactBody(%s, %v): %v", tc.body, tc.paths, err)
			}
			if string(got) != tc.want {
				t.Fatalf("redactBody(%s, %v) = %s, want %s", tc.body, tc.paths, got, tc.want)
			}
			if !bytes.Equal(body, orig) {
				t.Fatalf("redactBody changed its input to %s", body)
			}
			if !json.Valid(got) {
				t.Fatalf("redactBody(%s) = %s, not JSON", tc.body, got)
			}
		})
	}
}

// TestRedactBodyUnchanged checks that a body without the redacted fields is returned as it is,
// without a copy.
func TestRedactBodyUnchanged(t *testing.T) {
	body := []byte(`{"a":{"c":1},"b":[1,2]}`)
	got, err := redactBody(body, []string{"a.b", "x", "b.c"})
	if err != nil || &got[0] != &body[0] || len(got) != len(body) {
		t.Fatalf("redactBody = %s, %v; want the body itself", got, err)
	}
}

// TestRedactBodyRefuses checks that a body that is not a valid JSON object is an error, so that
// the record is not sent.
func TestRedactBodyRefuses(t *testing.T) {
	for _, body := range []string{
		``, ` `, `{"x":`, `{"x":1}}`, `{"x":1} {"y":2}`, `{"x":1}garbage`, `{x:1}`, `{'x':1}`,
		`{"x":01}`, `{"x":1,}`, `{"x":"a` + "\n" + `"}`, `{"x":"\q"}`, `{"x":NaN}`, `{"\u00zz":1}`,
		`[{"x":1}]`, `"x"`, `12`, `true`,
	} {
		if got, err := redactBody([]byte(body), []string{"x"}); err == nil {
			t.Errorf("redactBody(%q) = %s, want an error", body, got)
		}
	}
}

// TestRedactBodyMatchesDecoding draws bodies with nested objects and lists, escaped and repeated
// keys, and checks the redactor against the obvious implementation: decode with encoding/json,
// delete (in every object of a list on the way), and compare what a decoder reads of the result.
func TestRedactBodyMatchesDecoding(t *testing.T) {
	keys := []string{"a", "b", "c", "x", "0"}
	var genValue func(depth int) *rapid.Generator[string]
	genKey := genJSONKeyFrom(keys)
	genValue = func(depth int) *rapid.Generator[string] {
		return rapid.Custom(func(t *rapid.T) string {
			kind := rapid.IntRange(0, 5).Draw(t, "value kind")
			if depth == 0 && kind >= 4 {
				kind = 0
			}
			switch kind {
			case 0:
				return rapid.SampledFrom([]string{`1`, `-2.5e3`, `12345678901234567890`, `null`, `true`}).Draw(t, "scalar")
			case 1:
				return rapid.SampledFrom([]string{`"x"`, `"\"x\":1"`, `"{\"a\":1}"`, `"\u0061"`, `""`}).Draw(t, "string")
			case 2:
				return `[1,{"a":2}]`
			case 3:
				return `[]`
			}
			return genObjectOf(genKey, genValue, depth).Draw(t, "object")
		})
	}
	genPath := rapid.Custom(func(t *rapid.T) []string {
		return rapid.SliceOfN(rapid.SampledFrom(keys), 1, 3).Draw(t, "path")
	})
	rapid.Check(t, func(t *rapid.T) {
		body := genValue(3).Filter(func(s string) bool { return s[0] == '{' }).Draw(t, "body")
		paths := rapid.SliceOfN(genPath, 1, 3).Draw(t, "paths")
		joined := make([]string, len(paths))
		for i, p := range paths {
			joined[i] = strings.Join(p, ".")
		}
		got, err := redactBody([]byte(body), joined)
		if err != nil {
			t.Fatalf("redactBody(%s, %v): %v", body, paths, err)
		}
		var want map[string]any
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			deletePath(want, p)
		}
		var gotMap map[string]any
		if err := json.Unmarshal(got, &gotMap); err != nil {
			t.Fatalf("redactBody(%s, %v) = %s: %v", body, paths, got, err)
		}
		if !reflect.DeepEqual(gotMap, want) {
			t.Fatalf("redactBody(%s, %v) = %s\ndecoded %v\nwant    %v", body, paths, got, gotMap, want)
		}
		// No member of the output, at any repetition, has a redacted path.
		for _, p := range paths {
			if has, _ := holdsAnyDecoded(got, p); has {
				t.Fatalf("redactBody(%s, %v) = %s still has %v", body, paths, got, p)
			}
		}
	})
}

// deletePath deletes path from v: from an object, and from every object of a list on the way.
func deletePath(v any, path []string) {
	switch v := v.(type) {
	case map[string]any:
		if len(path) == 1 {
			delete(v, path[0])
			return
		}
		deletePath(v[path[0]], path[1:])
	case []any:
		for _, e := range v {
			deletePath(e, path)
		}
	}
}

// holdsAnyDecoded reports whether any member of the object body, repeated keys included, has
// a field at path, reading keys with encoding/json's tokenizer.
func holdsAnyDecoded(body []byte, path []string) (bool, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var walk func(depth int) (bool, error)
	// walk reads one value; depth is how much of the path the value sits at.
	walk = func(depth int) (bool, error) {
		tok, err := dec.Token()
		if err != nil {
			return false, err
		}
		found := false
		switch tok {
		case json.Delim('{'):
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return false, err
				}
				on := depth >= 0 && depth < len(path) && k.(string) == path[depth]
				if on && depth == len(path)-1 {
					found = true
				}
				next := -1
				if on {
					next = depth + 1
				}
				f, err := walk(next)
				if err != nil {
					return false, err
				}
				found = found || f
			}
			_, err = dec.Token()
		case json.Delim('['):
			// A list's values sit where the list does: a path goes into each of them.
			for dec.More() {
				f, err := walk(depth)
				if err != nil {
					return false, err
				}
				found = found || f
			}
			_, err = dec.Token()
		}
		return found, err
	}
	return walk(0)
}

// TestBodyUse checks how conditions are known to reach the body: not at all, so that deciding
// with them reads nothing of it; only to look keys up, so that a view of the raw bytes serves
// them; or as a whole, so that the body is decoded first.
func TestBodyUse(t *testing.T) {
	for expr, want := range map[string]bodyUse{
		`record.crisis == "oekraine"`:                                  bodyNone,
		`has(record.region) && record.labels.k1 == "v1"`:               bodyNone,
		`"rijk" in recipient.groups && phase == "warm"`:                bodyNone,
		`record.crisis == "x" && record.body.beds_free >= 3`:           bodyFields,
		`has(record.body.a)`:                                           bodyFields,
		`record.body.a.b == 1 && has(record.body.c.d)`:                 bodyFields,
		`record.body["a"] == 1`:                                        bodyFields,
		`record.body[record.region] == 1`:                              bodyFields,
		`"a" in record.body && !(record.crisis in record.body)`:        bodyFields,
		`record.body.xs.exists(x, x == 0)`:                             bodyFields,
		`[{"body": {"a": 1}}].exists(record, record.body.a == 1)`:      bodyFields, // shadowed, yet counted
		`record.crisis == "x" || size(record.body) > 0`:                bodyWhole,
		`record.body.exists(k, k == "a")`:                              bodyWhole,
		`record.body == {"a": 1}`:                                      bodyWhole,
		`{"a": 1} == record.body`:                                      bodyWhole,
		`has(record.body)`:                                             bodyWhole,
		`dyn(record.body).a == 1`:                                      bodyWhole,
		`"a" in record.body && size(record.body) == 1`:                 bodyWhole,
		`[record][0].crisis == "x"`:                                    bodyWhole,
		`[record].exists(r, has(r.body.a))`:                            bodyWhole,
		`dyn(record).crisis == "x"`:                                    bodyWhole,
		`record == record`:                                             bodyWhole,
		`[1].exists(record, record == 1) && record.kind == "sitrep"`:   bodyWhole, // a shadowing variable counts too
		`[1].exists(record, record == 1) && record.body.a == "sitrep"`: bodyWhole,
	} {
		w, err := compileWhen(expr)
		if err != nil {
			t.Errorf("compileWhen(%s): %v", expr, err)
			continue
		}
		got := w.body
		if got != want {
			t.Errorf("bodyUseOf(%s) = %v, want %v", expr, got, want)
		}
	}
}

// TestIntersect: the paths every set removes, sorted, each once, without those inside another
// of them; a set that removes nothing reveals everything. One set comes back as itself, sorted,
// deduplicated and without the paths inside another.
func TestIntersect(t *testing.T) {
	for _, c := range []struct {
		sets [][]string
		want []string
	}{
		{[][]string{{"body.b", "body.a", "body.b", "body.a.x", "body.a-x"}}, []string{"body.a", "body.a-x", "body.b"}},
		{[][]string{{"body.a"}, {"body.a.b", "body.c"}}, []string{"body.a.b"}},
		{[][]string{{"body.a.b", "body.c"}, {"body.a", "body.c", "body.d"}, {"body.c", "body.a.b.e", "body.a.b"}}, []string{"body.a.b", "body.c"}},
		{[][]string{{"body.a"}, {}}, nil},
		{[][]string{{"body.a"}, {"body.b"}}, []string{}},
	} {
		if got := intersect(c.sets); !reflect.DeepEqual(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
			t.Errorf("intersect(%q) = %q, want %q", c.sets, got, c.want)
		}
	}
}

// redactBody is redactValid of a body checked first, as redactRecord calls it.
func redactBody(body []byte, paths []string) ([]byte, error) {
	if !validJSON(body) {
		return nil, errBodyNotJSON
	}
	out, _, err := redactValid(body, paths, "")
	return out, err
}
