package jsonstr

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// check holds both quotings of s to the encoders they stand for: encoding/json's Marshal of the
// string, and protojson's of a StringValue, which it writes as a plain JSON string.
func check(t *testing.T, s string) {
	t.Helper()
	want, _ := json.Marshal(s) // a string always marshals
	if got := AppendEncodingJSON([]byte("x"), s); string(got) != "x"+string(want) {
		t.Fatalf("AppendEncodingJSON(%q) = %s, want x%s", s, got, want)
	}
	pwant, err := protojson.Marshal(wrapperspb.String(s))
	got, ok := AppendProtoJSON([]byte("x"), s)
	switch {
	case err != nil && ok:
		t.Fatalf("AppendProtoJSON(%q) = %s, ok; protojson refuses it: %v", s, got, err)
	case err == nil && (!ok || string(got) != "x"+string(pwant)):
		t.Fatalf("AppendProtoJSON(%q) = %s, %v, want x%s", s, got, ok, pwant)
	}
}

func TestAppendAsTheEncoders(t *testing.T) {
	for _, s := range []string{"", "plain", `a"b\c`, "<&>", "\b\f\n\r\t\x00\x1f\x7f", "é\u2028\u2029😀",
		"bad\xffutf8", "\xe2\x82", "tewerkstellingsvergunning"} {
		check(t, s)
	}
	parts := []string{"a", "Z", " ", `"`, `\`, "<", ">", "&", "\n", "\x01", "\x7f", "é", "\u2028", "\u2029",
		"😀", "\xff", "\xc3", "\ufffd", "/"}
	rnd := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		var b strings.Builder
		for range rnd.IntN(12) {
			b.WriteString(parts[rnd.IntN(len(parts))])
		}
		check(t, b.String())
	}
}

func FuzzAppend(f *testing.F) {
	f.Add("a<b>\u2028\xff")
	f.Fuzz(check)
}
