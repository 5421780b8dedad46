package record

import (
	"encoding/json"
	"strings"
	"testing"
)

// titleByMap is how a title was read from a body before: the whole body decoded into a map. It is the
// reference of TestTitle and the baseline of BenchmarkTitle.
func titleByMap(body []byte) string {
	var b map[string]any
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	for _, k := range titleFields {
		if s, ok := b[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// titleBodies are bodies of the built-in kinds, and the cases in between.
var titleBodies = map[string]string{
	"qa":       `{"question":"Mag een Oekraïense vluchteling werken?","answer":"` + strings.Repeat("Ja, met een tewerkstellingsvergunning. ", 40) + `","superseded_by":""}`,
	"guidance": `{"text":"` + strings.Repeat("Registreer iedere aankomst binnen 24 uur. ", 100) + `","title":"Richtlijn registratie bij aankomst","attachments":[]}`,
	"shelter":  `{"municipality":"Zeist","beds_total":40,"beds_free":12,"contact_phone":"030 123 45 67"}`,
	"sitrep":   `{"title":"Regionaal beeld VR Utrecht","summary":"Bijna vol.","severity":"medium"}`,
	"escaped":  `{"title":"Beeld \"Utrecht\" \u00e9n <omgeving>","summary":"x"}`,
	"empty":    `{"title":"","summary":"Alleen een samenvatting"}`,
	"not text": `{"title":12,"name":"Naam"}`,
	"nested":   `{"body":{"title":"binnen"},"name":"buiten"}`,
	"none":     `{"beds_free":3}`,
}

// TestTitle: Title finds what a whole decode of the body finds, for every kind's body.
func TestTitle(t *testing.T) {
	for name, body := range titleBodies {
		if got, want := Title([]byte(body)), titleByMap([]byte(body)); got != want || (want == "" && name != "none") {
			t.Errorf("%s: Title = %q, want %q", name, got, want)
		}
	}
}

// TestSummary: a body in one line, its title first, then its numbers, then its other short
// scalars, each in the body's order; long texts, objects and arrays left out; cut at the width
// with an ellipsis.
func TestSummary(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{titleBodies["shelter"], "Zeist · beds_total 40 · beds_free 12 · contact_phone 030 123 45 67"},
		{titleBodies["qa"], "Mag een Oekraïense vluchteling werken?"},
		{titleBodies["sitrep"], "Regionaal beeld VR Utrecht · summary Bijna vol. · severity medium"},
		{`{"open":true,"beds_free":3.5,"nested":{"a":1},"list":[1]}`, "beds_free 3.5 · open true"},
		// The demo's shelters: the figures before the location, which a cut would leave (review G, G11).
		{`{"municipality":"Amersfoort","location":"Opvanglocatie Amersfoort","beds_total":260,"beds_free":26,"notes":"x"}`,
			"Amersfoort · beds_total 260 · beds_free 26 · location Opvanglocatie Amersfoort · notes x"},
		{`{"identifier":"a-1","info":[{"headline":"Zware storm"}]}`, "Zware storm · identifier a-1"},
		// An assessment: long texts alone, summed up by the first (review25 F8).
		{`{"text":"De opvang in Zeeland raakt vol: nog 77 bedden vrij, de instroom stijgt.","development":"Stijgend, al drie dagen.","picture":{"hash":"x"}}`,
			"De opvang in Zeeland raakt vol: nog 77 bedden vrij, de instroom stijgt. · development Stijgend, al drie dagen."},
	} {
		if got := Summary([]byte(c.body), 200); got != c.want {
			t.Errorf("Summary(%s) = %q, want %q", c.body, got, c.want)
		}
	}
	if got := Summary([]byte(titleBodies["shelter"]), 12); got != "Zeist · bed…" {
		t.Errorf("Summary cut at 12 = %q", got)
	}
}

// TestRowSummary: a picture's row leads with the kind's aggregate figures, in the order given,
// and leaves out the municipality its key names already, so that a cut at the width loses the
// least telling fields; a title that is not the key stays; width 0 cuts nothing.
func TestRowSummary(t *testing.T) {
	shelter := `{"municipality":"Zeist","location":"Opvanglocatie Zeist","beds_total":150,"beds_free":3,"notes":"demo"}`
	lead := []string{"beds_free", "beds_total"}
	for _, c := range []struct {
		body, key string
		lead      []string
		want      string
	}{
		{shelter, "Zeist", lead, "beds_free 3 · beds_total 150 · location Opvanglocatie Zeist · notes demo"},
		{shelter, "shelter-zeist", lead, "beds_free 3 · beds_total 150 · Zeist · location Opvanglocatie Zeist · notes demo"},
		// The key is the municipality with its spaces made single.
		{`{"municipality":" Den  Haag","beds_free":0}`, "Den Haag", lead, "beds_free 0"},
		// A figure the body lacks, or a kind without figures: the body's order.
		{`{"municipality":"Goes","beds_total":80}`, "Goes", lead, "beds_total 80"},
		{titleBodies["sitrep"], "sitrep-vr09-1", nil, "Regionaal beeld VR Utrecht · summary Bijna vol. · severity medium"},
	} {
		if got := RowSummary([]byte(c.body), 0, c.lead, c.key); got != c.want {
			t.Errorf("RowSummary(%s, key %q) = %q, want %q", c.body, c.key, got, c.want)
		}
	}
	if got := RowSummary([]byte(shelter), 30, lead, "Zeist"); got != "beds_free 3 · beds_total 150 …" {
		t.Errorf("RowSummary cut at 30 = %q", got)
	}
}

// BenchmarkTitle: Title against decoding the whole body, in turns, on a Q&A with a
// long answer, a guidance with its title after a long text, and a shelter record.
func BenchmarkTitle(b *testing.B) {
	for _, name := range []string{"qa", "guidance", "shelter"} {
		body := []byte(titleBodies[name])
		b.Run(name+"/map", func(b *testing.B) {
			for b.Loop() {
				titleByMap(body)
			}
		})
		b.Run(name+"/title", func(b *testing.B) {
			for b.Loop() {
				Title(body)
			}
		})
	}
}

// TestClosedFields: only a closed schema (additionalProperties: false) rules fields out.
func TestClosedFields(t *testing.T) {
	closed := &Kind{Schema: []byte(`{"type":"object","additionalProperties":false,"properties":{"level_cm":{"type":"number"},"gauge":{"type":"string"}}}`)}
	if got := strings.Join(closed.ClosedFields(), ","); got != "level_cm,gauge" {
		t.Errorf("closed schema: %q", got)
	}
	for _, open := range []*Kind{{Schema: []byte(`{"type":"object","properties":{"a":{}}}`)}, {Schema: []byte(`{"additionalProperties":true,"properties":{"a":{}}}`)}, {}, nil} {
		if got := open.ClosedFields(); got != nil {
			t.Errorf("open schema %v: %q", open, got)
		}
	}
}
