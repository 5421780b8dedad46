package ui

import (
	"bytes"
	"encoding/csv"
	"mime"
	"net/http"
	"strings"
	"time"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// pictureCSV serves the picture's capacity table (/beeld/csv?crisis=NAME, in the page's mode) as
// a CSV file to open in a spreadsheet: the region's code and name, then each summed field, the
// national total last. In Dutch the separator is a semicolon and a decimal a comma, as a Dutch
// spreadsheet reads them; a UTF-8 byte-order mark makes it read the names' accents. The file's
// name says the crisis, the highest classification of the records the sums are made of and the
// date, as the file cannot carry a marking otherwise: a confidential sitrep on the same picture
// does not make a file of intern figures confidential. An exercise's file name starts with
// OEFENING, and so does its first row, which stays with the figures when they are pasted on.
func (s *Server) pictureCSV(w http.ResponseWriter, r *request) {
	crisis := strings.TrimSpace(r.URL.Query().Get("crisis"))
	if crisis == "" {
		s.failIn(w, r, http.StatusBadRequest, r.L.T("error.field", "crisis", r.L.T("csv.no_crisis")))
		return
	}
	pic, err := pb.NewSearchServiceClient(s.c.Conn).Picture(r.ctx(), &pb.PictureRequest{Crisis: crisis, Mode: r.mode(), SkipPeerCheck: true})
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	columns, rows := capacity(r.L, s.c.Kinds, pic)
	var buf bytes.Buffer
	buf.WriteString("\ufeff")
	out := csv.NewWriter(&buf)
	number := func(v string) string { return v }
	if r.L.Code == "nl" {
		out.Comma = ';'
		number = func(v string) string { return strings.Replace(v, ".", ",", 1) }
	}
	if e := r.exercise(); e != "" {
		out.Write([]string{"OEFENING", spreadsheetText(e)})
	}
	head := []string{r.L.T("csv.code"), r.L.T("col.region")}
	for _, c := range columns {
		head = append(head, spreadsheetText(c))
	}
	out.Write(head)
	for _, row := range rows {
		name := r.L.Region(row.Region)
		if row.National {
			name = r.L.T("picture.national")
		}
		line := []string{spreadsheetText(row.Region), spreadsheetText(name)}
		for _, c := range row.Cells {
			line = append(line, number(c))
		}
		out.Write(line)
	}
	out.Flush()
	name := []string{"beeld", crisis}
	var summed []*pb.Record
	for _, e := range pic.Entries {
		if k := s.c.Kinds.Get(e.Kind); k != nil && len(k.Aggregate) > 0 {
			summed = append(summed, e.Record)
		}
	}
	if m := marking(r.L, summed); m != "" {
		name = append(name, strings.ToUpper(m))
	}
	if e := r.exercise(); e != "" {
		name = append([]string{"OEFENING", e}, name...)
	}
	name = append(name, local(time.Now()).Format("2006-01-02T1504"))
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": strings.Join(name, "-") + ".csv"}))
	h.Set("Cache-Control", "no-store")
	buf.WriteTo(w)
}

// spreadsheetText is a text cell as a spreadsheet shows it and never runs it: one that starts
// with a sign a spreadsheet reads as a formula (= + - @, or a tab or carriage return before one)
// gets a quote in front, so that a partner's text (=HYPERLINK(…) sending the figures beside it
// away) stays text. Number cells are written as numbers and never pass through here.
func spreadsheetText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// importTemplate is a CSV file to fill in for the upload page: the header row of a kind's records,
// the record's columns and then each body field the kind's schema declares, in its order (a field
// that holds an object or a list is left out: a CSV cell cannot). In Dutch with semicolons, as a
// Dutch spreadsheet reads and writes them, which the importer reads back.
func (s *Server) importTemplate(w http.ResponseWriter, r *request) {
	name := r.URL.Query().Get("kind")
	k := s.c.Kinds.Get(name)
	if k == nil {
		s.failIn(w, r, http.StatusNotFound, r.L.T("error.field", "kind", r.L.T("upload.template_no_kind", name)))
		return
	}
	header := []string{"id", "kind", "crisis", "region", "classification"}
	for _, f := range bodyFieldsOf(k) {
		if f.Input != inputJSON {
			header = append(header, f.Name)
		}
	}
	var buf bytes.Buffer
	buf.WriteString("\ufeff")
	out := csv.NewWriter(&buf)
	if r.L.Code == "nl" {
		out.Comma = ';'
	}
	out.Write(header)
	out.Flush()
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": r.L.T("upload.template_file", name) + ".csv"}))
	buf.WriteTo(w)
}
