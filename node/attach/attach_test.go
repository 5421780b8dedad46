package attach

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
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
	// A note or a CSV file is found by its words as it stands, in-process and through the child
	// alike (which it never reaches: the command here does not exist).
	child := ExtractIn(time.Second, "/nonexistent/knooppunt", "extract-text")
	for _, mt := range []string{"text/plain; charset=utf-8", "text/csv"} {
		for name, extract := range map[string]func(string, []byte) (string, error){"Extract": Extract, "ExtractIn": child} {
			if text, err := extract(mt, []byte("Sleutelhouderregeling,opvang\n")); err != nil || text != "Sleutelhouderregeling,opvang\n" {
				t.Errorf("%s(%s) = %q, %v; want the file's text", name, mt, text, err)
			}
		}
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

// TestCheckRefusesProgramsAndHiddenNames: a program is never accepted, whatever its content
// sniffs as (review 22 M2): scripts, installers and active content by their names (in any case,
// and behind the dots and spaces Windows drops), names that hide their extension behind a bidi
// control, and names that promise another type than the content's. A file a partner's record
// names is checked in the same way, and against the node's size limit, before it is fetched.
func TestCheckRefusesProgramsAndHiddenNames(t *testing.T) {
	const text = "text/plain; charset=utf-8"
	var l Limits
	for _, c := range []struct {
		name, sniffed, field, says string
	}{
		{"instructies.bat", text, "filename", "ends in .bat, a program"},
		{"update.CMD", text, "filename", "ends in .cmd, a program"},
		{"ps.ps1", text, "filename", "a program or active content"},
		{"lees-mij.hta", text, "filename", "a program or active content"},
		{"script.vbs", text, "filename", "a program or active content"},
		{"script.js", text, "filename", "a program or active content"},
		{"kaart.svg", text, "filename", "a program or active content"},
		{"pagina.html", text, "filename", "a program or active content"},
		{"pagina.xhtml", text, "filename", "a program or active content"},
		{"setup.msi", OLE, "filename", "a program or active content"},
		{"tool.jar", DOCX, "filename", "a program or active content"},
		{"snelkoppeling.lnk", OLE, "filename", "a program or active content"},
		{"setup.exe. . ", text, "filename", "ends in .exe"},
		{"factuur\u202efdp.hta", text, "filename", "invisible or control character U+202E"},
		{"rapport\u200b.pdf", PDF, "filename", "U+200B"},
		{"tabel.xyz", "text/csv", "filename", "name the file for what it is (.csv)"},
		{"kaart.pdf", "image/png", "filename", "promises application/pdf"},
		{"rapport.pdf", Executable, "data", "executable program"},
		{"archief.zip", Zip, "data", "does not accept"},
		{"RAPPORT.PDF", PDF, "", ""},
		{"notities.txt", text, "", ""},
		{"oud.doc", OLE, "", ""},
		{"geen-extensie", PDF, "", ""},
	} {
		err := l.Check("data", c.name, c.sniffed)
		var fe *record.FieldError
		if c.says == "" {
			if err != nil {
				t.Errorf("Check(%q, %s) = %v, want accepted", c.name, c.sniffed, err)
			}
			continue
		}
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Reason, c.says) {
			t.Errorf("Check(%q, %s) = %v, want field %s saying %q", c.name, c.sniffed, err, c.field, c.says)
		}
	}

	small := Limits{MaxBytes: 1 << 20}
	for _, c := range []struct {
		a           record.Attachment
		field, says string
	}{
		{record.Attachment{Size: 100 << 20, MediaType: PDF, Filename: "groot.pdf"}, "attachments.size", "over this node's limit of 1048576 bytes"},
		{record.Attachment{Size: 10, MediaType: "text/html; charset=utf-8", Filename: "a.txt"}, "attachments.media_type", "does not accept"},
		{record.Attachment{Size: 10, MediaType: text, Filename: "instructies.bat"}, "attachments.filename", "a program or active content"},
		{record.Attachment{Size: 10, MediaType: text, Filename: "rapport.pdf"}, "attachments.filename", "promises application/pdf"},
		{record.Attachment{Size: 10, MediaType: PDF, Filename: "rapport.pdf"}, "", ""},
	} {
		err := small.CheckNamed("attachments", c.a)
		var fe *record.FieldError
		if c.says == "" {
			if err != nil {
				t.Errorf("CheckNamed(%+v) = %v, want accepted", c.a, err)
			}
			continue
		}
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Reason, c.says) {
			t.Errorf("CheckNamed(%+v) = %v, want field %s saying %q", c.a, err, c.field, c.says)
		}
	}
}

// TestAccept: the file input's accept attribute names each extension of the types the node
// takes, once, and a type with no extension of its own by its name; a type the node does not
// take adds nothing.
func TestAccept(t *testing.T) {
	for _, c := range []struct {
		types []string
		want  string
	}{
		{[]string{PDF, OLE, "image/jpeg"}, ".pdf,.doc,.ppt,.xls,.jpeg,.jpg"},
		{[]string{"text/plain; charset=utf-8", "application/json"}, ".log,.md,.text,.txt,application/json"},
		{[]string{"image/png", "image/png"}, ".png"},
		{nil, ""},
	} {
		if got := Accept(c.types); got != c.want {
			t.Errorf("Accept(%q) = %q, want %q", c.types, got, c.want)
		}
	}
}
