package attach

import (
	"bytes"
	"fmt"
	"strings"
)

// SimplePDF writes a small, valid PDF of one or more A4 pages of plain text in Helvetica: a
// title and its lines, wrapped at about 90 characters. The demo shares it as a guidance
// document and the tests extract it; no tool outside Go is needed to make it. Characters
// outside Latin-1 are written as '?'.
func SimplePDF(title string, lines []string) []byte {
	var text []string
	for _, l := range lines {
		text = append(text, wrap(l, 90)...)
		text = append(text, "")
	}
	const perPage = 46
	var pages [][]string
	for len(text) > 0 || len(pages) == 0 {
		n := min(perPage, len(text))
		pages = append(pages, text[:n])
		text = text[n:]
	}
	var b bytes.Buffer
	var offsets []int
	obj := func(body string) {
		offsets = append(offsets, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", len(offsets), body)
	}
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	// 1 catalog, 2 page tree, 3 font, then per page: the page and its content stream.
	kids := make([]string, len(pages))
	for i := range pages {
		kids[i] = fmt.Sprintf("%d 0 R", 4+2*i)
	}
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj(fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(pages)))
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	for i, page := range pages {
		var c bytes.Buffer
		c.WriteString("BT\n")
		y := 800
		if i == 0 {
			fmt.Fprintf(&c, "/F1 16 Tf 1 0 0 1 56 %d Tm (%s) Tj\n", y, pdfString(title+" "))
			y -= 30
		}
		for _, l := range page {
			// The trailing space keeps the last word of a line apart from the next line's first
			// in extracted text.
			fmt.Fprintf(&c, "/F1 10 Tf 1 0 0 1 56 %d Tm (%s) Tj\n", y, pdfString(l+" "))
			y -= 15
		}
		c.WriteString("ET\n")
		obj(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", 5+2*i))
		obj(fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", c.Len(), c.String()))
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, o := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R /Info << /Title (%s) >> >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, pdfString(title), xref)
	return b.Bytes()
}

// pdfString encodes s as the inside of a PDF literal string in WinAnsi (Latin-1 here).
func pdfString(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '(' || r == ')' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteByte(' ')
		case r < 0x80:
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, "\\%03o", r)
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}

func wrap(s string, width int) []string {
	var out []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len([]rune(line))+1+len([]rune(w)) > width {
			out = append(out, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(out, line)
}
