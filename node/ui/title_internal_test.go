package ui

import (
	"encoding/json"
	"strings"
	"testing"
)

// titleByMap is how bodyTitle read a body before: the whole body decoded into a map. It is the
// reference of TestBodyTitle and the baseline of BenchmarkBodyTitle.
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

// TestBodyTitle: bodyTitle finds what a whole decode of the body finds, for every kind's body.
func TestBodyTitle(t *testing.T) {
	for name, body := range titleBodies {
		if got, want := bodyTitle([]byte(body)), titleByMap([]byte(body)); got != want || (want == "" && name != "none") {
			t.Errorf("%s: bodyTitle = %q, want %q", name, got, want)
		}
	}
}

// BenchmarkBodyTitle: bodyTitle against decoding the whole body, in turns, on a Q&A with a
// long answer, a guidance with its title after a long text, and a shelter record.
func BenchmarkBodyTitle(b *testing.B) {
	for _, name := range []string{"qa", "guidance", "shelter"} {
		body := []byte(titleBodies[name])
		b.Run(name+"/map", func(b *testing.B) {
			for b.Loop() {
				titleByMap(body)
			}
		})
		b.Run(name+"/title", func(b *testing.B) {
			for b.Loop() {
				bodyTitle(body)
			}
		})
	}
}
