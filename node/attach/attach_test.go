package attach

import (
	"errors"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/db"
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

func TestExtractBrokenAndOther(t *testing.T) {
	if _, err := Extract(PDF, []byte("%PDF-1.7\nnot a pdf at all")); err == nil || errors.Is(err, db.ErrNoText) {
		t.Errorf("a broken PDF: %v, want an error that marks it broken", err)
	}
	if _, err := Extract("image/png", []byte("\x89PNG\r\n\x1a\n")); !errors.Is(err, db.ErrNoText) {
		t.Errorf("a PNG: %v, want ErrNoText", err)
	}
}

func TestSniffAndCheck(t *testing.T) {
	zip := func(first string) []byte { return append([]byte("PK\x03\x04\x14\x00\x00\x00\x08\x00"), first...) }
	for _, c := range []struct {
		head []byte
		want string
	}{
		{[]byte("%PDF-1.4\n"), PDF},
		{[]byte("\x7fELF\x02\x01"), Executable},
		{[]byte("MZ\x90\x00"), Executable},
		{[]byte("#!/bin/sh\nrm -rf /\n"), Executable},
		{[]byte{0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1}, Executable},
		{zip("[Content_Types].xml....word/document.xml"), DOCX},
		{zip("[Content_Types].xml....xl/workbook.xml"), XLSX},
		{zip("mimetypeapplication/vnd.oasis.opendocument.text"), ODT},
		{zip("data.bin"), Zip},
		{[]byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}, OLE},
		{[]byte("\x89PNG\r\n\x1a\n\x00\x00"), "image/png"},
		{[]byte("\xff\xd8\xff\xe0\x00\x10JFIF"), "image/jpeg"},
		{[]byte("gemeente;bedden;vrij\nUtrecht;420;68\n"), "text/csv"},
	} {
		if got := Sniff(c.head); got != c.want {
			t.Errorf("Sniff(%q) = %q, want %q", c.head, got, c.want)
		}
	}
	var l Limits
	for _, c := range []struct {
		name, sniffed, says string
	}{
		{"rapport.pdf", Executable, "executable program"},
		{"rapport.exe", Executable, "executable program"},
		{"foto.pdf", "image/png", "promises application/pdf"},
		{"archief.zip", Zip, "does not accept"},
		{"foto.PNG", "image/png", ""},
		{"geen-extensie", PDF, ""},
	} {
		err := l.Check("data", c.name, c.sniffed)
		if (c.says == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.says) {
			t.Errorf("Check(%s, %s) = %v, want %q", c.name, c.sniffed, err, c.says)
		}
	}
}
