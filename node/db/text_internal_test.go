package db

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// decoderText is a plain model of bodyText on encoding/json's Decoder, which tells keys from
// values by the containers it is in. (The indexer's first bodyText walked the Decoder's tokens
// too, but took the key after a nested object for a value, and stopped at a number beyond float64;
// migration 19 indexes such bodies again.)
func decoderText(body []byte) string {
	if !json.Valid(body) {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // 1e400 is a number too, not the end of the body
	type level struct{ object, wantKey bool }
	var stack []level
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	var out strings.Builder // a value after text so far on a line of its own
	for {
		tok, err := dec.Token()
		if err != nil {
			return out.String()
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, level{object: true, wantKey: true})
			case '[':
				stack = append(stack, level{})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
				stack[n-1].wantKey = false
				continue
			}
			if out.Len() > 0 {
				out.WriteByte('\n')
			}
			out.WriteString(t)
			valueDone()
		default:
			valueDone()
		}
	}
}

// TestBodyTextAsDecoder holds bodyText to the Decoder's model: every string value, at any depth,
// in document order, none of the keys, decoded alike (escapes, lone surrogates, invalid UTF-8).
func TestBodyTextAsDecoder(t *testing.T) {
	for body, want := range map[string]string{
		`{"place":{"lat":52,"street":"Croeselaan"},"name":"Jaarbeurs","tags":["hal",{"nr":"7"}],"note":"groot"}`: "Croeselaan\nJaarbeurs\nhal\n7\ngroot",
		`["top", {"k": ["a", 1, {"deep": "b"}], "n": null}, "c"]`:                                                "top\na\nb\nc",
		`"a string alone"`: "a string alone",
		`{"a":"\u00e9"`:    "",
	} {
		if got := bodyText([]byte(body)); got != want {
			t.Errorf("bodyText(%s) = %q, want %q", body, got, want)
		}
		if got := decoderText([]byte(body)); got != want {
			t.Errorf("the model of %s = %q, want %q", body, got, want)
		}
	}
	bodies := testBodies(5000)
	var withText int
	for _, body := range bodies {
		got, want := bodyText([]byte(body)), decoderText([]byte(body))
		if got != want {
			t.Fatalf("bodyText(%q)\n = %q\nwant %q", body, got, want)
		}
		if got != "" {
			withText++
		}
	}
	if withText < len(bodies)/3 {
		t.Fatalf("only %d of %d bodies had text: too few strings to test", withText, len(bodies))
	}
}

// BenchmarkBodyText is bodyText against the Decoder's model, on the bodies of
// BenchmarkTextIndexWrite (a Q&A and a shelter's figures), in turns. x-decoder is bodyText's
// time ÷ the Decoder's.
func BenchmarkBodyText(b *testing.B) {
	bodies := [][]byte{
		[]byte(`{"question":"Vraag 7: mogen ontheemden werken in gemeente 3?","answer":"Ja, zonder tewerkstellingsvergunning; de werkgever meldt het werk vooraf bij het UWV.","audience":"gemeenten"}`),
		[]byte(`{"municipality":"Gemeente 7","location":"Opvanglocatie 3","beds_total":107,"beds_free":7,"contact_phone":"030-1234567"}`),
	}
	var took [2]time.Duration
	for b.Loop() {
		for i, fn := range []func([]byte) string{bodyText, decoderText} {
			start := time.Now()
			for range 100 {
				for _, body := range bodies {
					if fn(body) == "" {
						b.Fatal("no text")
					}
				}
			}
			took[i] += time.Since(start)
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(took[0].Nanoseconds())/float64(b.N*100*len(bodies)), "ns/body")
	b.ReportMetric(float64(took[0])/float64(took[1]), "x-decoder")
}
