package policy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
	"pgregory.net/rapid"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// bodyConditions are `when` expressions that read the body in every way a condition can: key
// lookups that the view serves, and uses of the whole body that are decoded first.
var bodyConditions = []string{
	`record.body.a == 1.0`,
	`record.body.a == "x"`,
	`record.body.a > 0.0`,
	`record.body.a == null`,
	`type(record.body.a) == string`,
	`has(record.body.a)`,
	`has(record.body.a) && record.body.a != false`,
	`"a" in record.body`,
	`"x" in record.body && "a" in record.body.x`,
	`record.body["é"] == true`,
	`"\uFFFD" in record.body || record.body.b == "\uFFFD"`,
	`record.body[record.region] == 1.0`,
	`record.body.x.a == 2.0`,
	`has(record.body.x.b)`,
	`record.body.x == {"a": 2.0}`,
	`record.body.a == record.body.b`,
	`size(record.body.b) > 1`,
	`record.body.b.exists(v, v == 1.0)`,
	`record.crisis == "none" && record.body.a == 1.0`,
	`record.crisis == "c" || record.body.a == 1.0`,
	`size(record.body) >= 2`,
	`record.body.exists(k, k == "a")`,
	`record.body.all(k, k != "x")`,
	`record.body == {"a": 1.0}`,
	`{"a": 1.0} == record.body`,
	`has(record.body)`,
	`dyn(record.body).a == 1.0`,
	`record == record && record.body.a == 1.0`,
	`[record][0].body.a == 1.0`,
}

// genBody draws a raw body: mostly an object, with repeated and escaped keys, keys that are not
// valid UTF-8, nested objects and arrays, numbers out of range, escapes and invalid surrogates
// in strings; sometimes something that is not an object, or not JSON.
var genBody = rapid.Custom(func(t *rapid.T) string {
	if rapid.IntRange(0, 9).Draw(t, "odd") == 0 {
		return rapid.SampledFrom([]string{``, ` `, `null`, " null\n", `[1]`, `"a"`, `12`, `true`,
			`{"a":`, `{"a":1}x`, `{"a":1,}`, `{"a":01}`, `{"a":"\q"}`, `{"a":1} {"b":2}`}).Draw(t, "odd body")
	}
	return genJSONObject(3).Draw(t, "body")
})

func genJSONObject(depth int) *rapid.Generator[string] {
	return genObjectOf(genJSONKey, genJSONValue, depth)
}

// genObjectOf generates a JSON object of up to five members, with keys from key, values from
// value at one level less, and whitespace around them.
func genObjectOf(key *rapid.Generator[string], value func(depth int) *rapid.Generator[string], depth int) *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		n := rapid.IntRange(0, 5).Draw(t, "members")
		members := make([]string, n)
		for i := range members {
			ws := rapid.SampledFrom([]string{"", " ", "\n\t"}).Draw(t, "ws")
			members[i] = ws + key.Draw(t, "key") + ws + ":" + ws + value(depth-1).Draw(t, "value")
		}
		return "{" + strings.Join(members, ",") + "}"
	})
}

var genJSONKey = genJSONKeyFrom([]string{"a", "b", "x", "é", "\xff"})

// genJSONKeyFrom spells one of keys as a JSON key: plainly, with every rune escaped, or as a
// near miss.
func genJSONKeyFrom(keys []string) *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		k := rapid.SampledFrom(keys).Draw(t, "key")
		switch rapid.IntRange(0, 4).Draw(t, "key spelling") {
		case 0: // every rune escaped
			var b strings.Builder
			for _, c := range k {
				fmt.Fprintf(&b, `\u%04x`, c)
			}
			return `"` + b.String() + `"`
		case 1: // a near miss
			return rapid.SampledFrom([]string{`"` + k + ` "`, `"` + strings.ToUpper(k) + `"`, `"\"` + k + `"`, `"` + k + `\\"`}).Draw(t, "near miss")
		}
		return `"` + k + `"`
	})
}

func genJSONValue(depth int) *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		kind := rapid.IntRange(0, 4).Draw(t, "value kind")
		if depth <= 0 && kind >= 3 {
			kind = 0
		}
		switch kind {
		case 0:
			return rapid.SampledFrom([]string{`1`, `1.0`, `2`, `-2.5e3`, `0`, `-0`, `1E0`, `12345678901234567890`,
				`1e400`, `-1e400`, `1E+400`, `1e-400`, `4.9e-324`, `1.7976931348623157e308`, `null`, `true`, `false`}).Draw(t, "scalar")
		case 1:
			return rapid.SampledFrom([]string{`"x"`, `"\u0078"`, `""`, `"é"`, `"\u00e9"`, `"\ud800"`, `"\udc00x"`,
				`"\ud83d\ude00"`, `"\ufffd"`, "\"\xff\"", `"\"a\":1"`, `"\\"`, `"a\/b"`}).Draw(t, "string")
		case 2:
			return rapid.SampledFrom([]string{`[]`, `[1,{"a":2}]`, `[1.0,"x",null]`, `["x",1e400]`, `[[1],{"a":{"a":1}}]`}).Draw(t, "array")
		}
		return genJSONObject(depth).Draw(t, "object")
	})
}

// referenceVerdict is what a decision said of a condition before bodyView: decode the whole
// body with encoding/json (an error refuses the record) and evaluate over the standard map.
func referenceVerdict(c *Compiled, r *pb.Record) (refused bool, reason string) {
	body := map[string]any{}
	if len(r.Body) > 0 {
		if err := json.Unmarshal(r.Body, &body); err != nil {
			return true, fmt.Sprintf("record %s: body: %v", r.Id, err)
		}
	}
	rec := &Record{ID: r.Id, Origin: r.Origin, Kind: r.Kind, Crisis: r.Crisis, Region: r.Region,
		Classification: classificationWord(r.Classification), Labels: map[string]string{}, Body: body}
	vars, err := interpreter.NewActivation(map[string]any{
		"record": rec, "recipient": &Recipient{Groups: []string{}}, "phase": "cold", "now": time.Time{},
	})
	if err != nil {
		panic(err)
	}
	return evalReason(c, vars)
}

func evalReason(c *Compiled, vars interpreter.Activation) (bool, string) {
	out, _, err := c.when.Eval(vars)
	switch {
	case err != nil:
		return false, "when: " + err.Error()
	case out.Value() != true:
		return false, "when is false"
	}
	return false, "grants"
}

// TestBodyViewMatchesDecoding checks the lazy body against the full decode it replaces, for
// random bodies and conditions that read the body in every way: the same verdict, the same
// error, and a refused record wherever a decode fails. It checks the engine, and it checks
// the view on its own for every condition, including those the engine never gives it (its
// whole-map methods are exercised so).
func TestBodyViewMatchesDecoding(t *testing.T) {
	compiled := make([]*Compiled, len(bodyConditions))
	for i, expr := range bodyConditions {
		w, err := compileWhen(expr)
		prg, use := w.prg, w.body
		if err != nil {
			t.Fatalf("compileWhen(%s): %v", expr, err)
		}
		if use == bodyNone {
			t.Fatalf("%s does not read the body", expr)
		}
		compiled[i] = &Compiled{Policy: Policy{ID: fmt.Sprintf("c%d@1", i), State: StateApproved},
			Doc: Document{Kinds: []string{"sitrep"}, MaxClassification: "secret"}, recipients: []RecipientRef{{Kind: RecipientGroup, Value: "rijk"}},
			when: prg, whenBody: use}
	}
	to := Recipient{ID: "spiffe://ncc.crisis.test/node/r1", TrustDomain: "ncc.crisis.test", Groups: []string{"rijk"}}
	rapid.Check(t, func(t *rapid.T) {
		body := genBody.Draw(t, "body")
		r := &pb.Record{Id: "r1", Origin: "o", Kind: "sitrep", Crisis: "c", Region: "a", Classification: pb.Classification_INTERNAL, Body: []byte(body)}
		for i, c := range compiled {
			wantRefused, want := referenceVerdict(c, r)

			// The engine, as Decide runs it.
			set := &Set{Org: "o", Policies: []*Compiled{c}}
			d, verdicts := set.Explain(r, to, "cold", time.Time{})
			if len(verdicts) != 1 || verdicts[0].Reason != want || d.Allow != (want == "grants") {
				t.Fatalf("body %q, when %s (%v):\nExplain = %+v, %+v\nwant %q", body, bodyConditions[i], c.whenBody, d, verdicts, want)
			}
			if got := set.Decide(r, to, "cold", time.Time{}); got.Allow != d.Allow {
				t.Fatalf("body %q, when %s: Decide allows %v, Explain %v", body, bodyConditions[i], got.Allow, d.Allow)
			}

			// The view, whatever the condition: the same unless the body does not fit.
			in := &input{r: r, to: to, phase: "cold"}
			vars, err := in.activation(bodyFields)
			if err != nil {
				if !wantRefused || err.Error() != want {
					t.Fatalf("body %q: activation: %v, want %q", body, err, want)
				}
				continue
			}
			if wantRefused {
				t.Fatalf("body %q: the view reads a body whose decode fails: %s", body, want)
			}
			_, got := evalReason(c, vars)
			if err := in.failed(); err != nil {
				t.Fatalf("body %q, when %s: the view failed: %v", body, bodyConditions[i], err)
			}
			if strings.Contains(bodyConditions[i], "[record]") || strings.Contains(bodyConditions[i], "record == record") {
				continue // the record as a whole is never given the view
			}
			if got != want {
				t.Fatalf("body %q, when %s: the view says %q, want %q", body, bodyConditions[i], got, want)
			}
		}
	})
}

// TestBodyViewLookups checks every key lookup of the view against the standard map of the
// decoded body: the same value, of the same type, for every member, and no other member.
func TestBodyViewLookups(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		body := genJSONObject(3).Draw(t, "body")
		var decoded map[string]any
		if err := json.Unmarshal([]byte(body), &decoded); err != nil {
			t.Skip("does not decode")
		}
		if _, err := Env(); err != nil {
			t.Fatal(err)
		}
		ref, err := bodyMap(decoded)
		if err != nil {
			t.Fatal(err)
		}
		if !bodyFits([]byte(body)) {
			t.Fatalf("bodyFits(%q) = false, yet it decodes", body)
		}
		v := newBodyView([]byte(body))
		for _, key := range []string{"a", "b", "x", "é", "\uFFFD", "A", "a ", "\"a", "a\\"} {
			want, wantFound := ref.Find(types.String(key))
			for range 2 { // a second time from what the view has looked up
				got, found := v.Find(types.String(key))
				if found != wantFound || found && (got.Type() != want.Type() || got.Equal(want) != types.True || want.Equal(got) != types.True) {
					t.Fatalf("body %q: Find(%q) = %v (%T), %v; want %v (%T), %v", body, key, got, got, found, want, want, wantFound)
				}
				if v.Contains(types.String(key)) != types.Bool(wantFound) {
					t.Fatalf("body %q: Contains(%q) != %v", body, key, wantFound)
				}
			}
		}
		if v.full != nil {
			t.Fatalf("body %q: a key lookup decoded the whole body", body)
		}
	})
}

// TestBodyFits checks that bodyFits says yes exactly when encoding/json decodes the body into
// a map without an error.
func TestBodyFits(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		body := genBody.Draw(t, "body")
		var m map[string]any
		want := json.Unmarshal([]byte(body), &m) == nil
		if got := bodyFits([]byte(body)); got != want {
			t.Fatalf("bodyFits(%q) = %v, want %v", body, got, want)
		}
	})
}

// TestBodyViewDecodesOnce checks that a decision reads keys from the raw bytes without a full
// decode, and decodes the body at most once however many conditions see it whole.
func TestBodyViewDecodesOnce(t *testing.T) {
	r := &pb.Record{Id: "r1", Body: []byte(`{"a":1,"a":2,"b":{"c":[1,2]}}`)}
	in := &input{r: r}
	if _, err := in.activation(bodyFields); err != nil {
		t.Fatal(err)
	}
	v := in.rec.view
	if v == nil {
		t.Fatal("no view for a body that fits")
	}
	if got, found := v.Find(types.String("a")); !found || got.Value() != 2.0 {
		t.Fatalf("Find(a) = %v, %v; want the last member, 2", got, found)
	}
	if v.full != nil {
		t.Fatal("a key lookup decoded the whole body")
	}
	if size := v.Size(); size.Value() != int64(2) || v.full == nil {
		t.Fatalf("Size = %v, want 2 from the decoded body", size)
	}
	full := v.full
	if _, err := in.activation(bodyWhole); err != nil {
		t.Fatal(err)
	}
	if in.rec.view != nil || in.rec.Body["a"] != 2.0 {
		t.Fatalf("after a whole read: view %v, body %v", in.rec.view, in.rec.Body)
	}
	if body, _ := full.Value().(map[string]any); fmt.Sprintf("%p", body) != fmt.Sprintf("%p", in.rec.Body) {
		t.Fatal("the body was decoded twice")
	}
}
