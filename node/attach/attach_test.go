package attach

import (
	"strings"
	"testing"
)

func TestSimplePDFExtracts(t *testing.T) {
	pdf := SimplePDF("Handreiking opvang", []string{"De tewerkstellingsvergunning en coördinatie van de opvang.", strings.Repeat("vulling ", 400), "laatste regel"})
	if got := Sniff(pdf); got != PDF {
		t.Fatalf("Sniff = %q, want %q", got, PDF)
	}
	text, err := Extract(PDF, pdf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Handreiking opvang", "tewerkstellingsvergunning", "coördinatie", "laatste regel"} {
		if !strings.Contains(text, want) {
			t.Errorf("extracted text lacks %q:\n%s", want, text[:min(len(text), 400)])
		}
	}
}
