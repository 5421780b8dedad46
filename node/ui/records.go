package ui

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/record/importfile"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Own records: a list, a form to create or change one, generated from its kind's JSON Schema,
// and the upload of a JSON Lines or CSV file. What the interface can say in the person's words
// it checks first (recordProblems); every write is then RecordService.Put or PutBatch as the
// person, so the service checks it again, refuses it with its own message, and stores nothing of
// a record it refuses; the form shows that message at the field it names.

func init() {
	pageNames = append(pageNames, "records", "recordform", "upload", "uploadreport", "admin")
}

// writeInMode writes rec in mode: an exercise's record when the page is of an exercise (nil:
// actual).
func writeInMode(rec *pb.Record, mode *pb.Mode) {
	if mode != nil {
		rec.Status, rec.Exercise = mode.Status, mode.Exercise
	}
}

// isWriter reports whether the person writes own records (editors and admins); it only decides
// what the pages offer.
func isWriter(r *request) bool { return r.Caller.Has(api.Editor) || r.Caller.Has(api.Admin) }

// writerPage shows a refusal instead of a form the service would refuse.
func (s *Server) writerPage(w http.ResponseWriter, r *request) bool {
	if isWriter(r) {
		return true
	}
	s.failIn(w, r, http.StatusForbidden, r.L.T("error.writer_only", strings.Join(roleNames(r), ", ")))
	return false
}

type ownRecordsView struct {
	Kind    string
	Kinds   []kindView
	Records []ownRow
	More    string
	// Marking is the highest classification of the records listed, At when the list was
	// made: a printout of it carries both.
	Marking, At string
}

func (v *ownRecordsView) printMarking() string { return v.Marking }

type kindView struct {
	Name, Description string
	Current           bool
}

type ownRow struct {
	ID, Kind, Crisis, Region, Title, Link, Edit string
	// Updated is when it was last changed, written for people (Lang.When).
	Updated template.HTML
	Version int64
	// Validity marks a document no longer (or not yet) in force, as search does.
	Validity string
}

// ownRecords lists the org's own records, a page at a time in the order of their ids, with a link to
// change each for a person who writes them.
func (s *Server) ownRecords(w http.ResponseWriter, r *request) {
	v := &ownRecordsView{Kind: r.URL.Query().Get("kind")}
	v.Kinds = s.kindViews(r, v.Kind)
	req := &pb.ListRequest{Kind: v.Kind, PageSize: 100, PageToken: r.URL.Query().Get("pagina"), Mode: r.mode()}
	resp, err := pb.NewRecordServiceClient(s.c.Conn).List(r.ctx(), req)
	if status.Code(err) == codes.InvalidArgument && req.PageToken != "" {
		// A page of another listing (the mode switched under it) or an old link: the first page.
		req.PageToken = ""
		resp, err = pb.NewRecordServiceClient(s.c.Conn).List(r.ctx(), req)
	}
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	now := time.Now()
	v.Marking, v.At = marking(r.L, resp.Records), local(now).Format("2006-01-02 15:04 MST")
	orgOf := s.orgNamer(r)
	// A reader may read the list (the search of the organisation's own records shows the same),
	// but is offered no change: the form would only refuse them (review AL, AL12).
	writer := isWriter(r)
	for _, rec := range resp.Records {
		row := ownRow{ID: rec.Id, Kind: rec.Kind, Crisis: rec.Crisis, Region: rec.Region, Title: titleOf(r.L, rec), Version: rec.Version,
			Link: withBack(recordLink(rec), r.URL.RequestURI()), Validity: record.Validity(rec, now)}
		if writer {
			row.Edit = r.inMode("/records/wijzigen?id=" + url.QueryEscape(rec.Id))
		}
		if row.Title == "" {
			row.Title = untitled(r.L, rec, orgOf)
		}
		if rec.UpdatedAt != nil {
			row.Updated = r.L.WhenAgo(rec.UpdatedAt.AsTime(), now)
		}
		v.Records = append(v.Records, row)
	}
	if resp.NextPageToken != "" {
		v.More = r.inMode("/records?" + url.Values{"kind": {v.Kind}, "pagina": {resp.NextPageToken}}.Encode())
	}
	s.render(w, r.Request, http.StatusOK, "records", s.newPage(r, "records", r.L.T("records.title"), v))
}

// kindViews are the node's kinds, by the catalogue's name when it has one.
func (s *Server) kindViews(r *request, current string) []kindView {
	var names []string
	if s.c.Kinds != nil {
		names = s.c.Kinds.Names()
	} else if st, err := pb.NewStatusServiceClient(s.c.Conn).Status(r.ctx(), &pb.StatusRequest{}); err == nil {
		names = st.Kinds
	}
	out := make([]kindView, 0, len(names))
	for _, n := range names {
		kv := kindView{Name: n, Current: n == current}
		if k := s.c.Kinds.Get(n); k != nil {
			kv.Description = r.L.KindDescription(k)
		}
		out = append(out, kv)
	}
	return out
}

// regionCodes are the regions a record can be for: the 25 safety regions and NL.
var regionCodes = func() []string {
	out := make([]string, 0, 26)
	for i := 1; i <= 25; i++ {
		out = append(out, fmt.Sprintf("VR%02d", i))
	}
	return append(out, "NL")
}()

var classChoices = []string{"public", "internal", "confidential", "secret"}

// recordFormView is the form of one own record.
type recordFormView struct {
	// Edit: an existing record (its id and version are fixed); else a new one. Name is what
	// the record is called (its title), for the heading of its edit page.
	Edit bool
	Name string
	// Cancel leaves the form unsaved: back to the record changed, or to the own records.
	Cancel string
	Action string
	Kind   string
	Kinds  []kindView
	// Envelope fields, as the form shows them.
	ID, Crisis, Region, Classification, ValidUntil, Labels string
	Version                                                int64
	Regions, Classes                                       []string
	// Fields are the body's fields by the kind's schema; without them, Body holds the whole
	// body as JSON.
	Fields []bodyField
	Body   string
	// DocDates: the kind's content has its own valid_until (a document), beside the record's.
	DocDates bool
	// Kept names the fields of the stored body that the form does not show (one another system
	// wrote): saving keeps them as they are.
	Kept []string
	// Files are the files the record names, each with a box that takes it off when the record
	// is saved; FileHint says which files the node takes, and how large they may be together.
	// FilesAgain names the files the person picked that were not stored because the record was
	// not saved: they are to be picked again.
	Files    []fileChoice
	FileHint string
	// FileAccept is the file input's accept attribute: the names of the files the node takes.
	FileAccept string
	FilesAgain string
	// filesShown: the body's attachments were read, and the form shows them under Files (not
	// under Kept).
	filesShown bool
	// Errors are the messages by form field (id, crisis, body.NAME, body...); Problem is a
	// message that names no field of the form, or says how many fields to correct; Summary lists
	// them, in the form's order.
	Errors  map[string]string
	Problem string
	Summary []formProblem
	// StaleLink is the page of the version that stands, when someone else saved the record
	// since the form was opened.
	StaleLink    string
	StaleVersion int64
	// Saved is set after a save: the stored id and version.
	Saved        bool
	SavedLink    string
	SavedID      string
	SavedVersion int64
}

func (v *recordFormView) succeededTitle() string {
	if v.Saved {
		return "form.saved_title"
	}
	return ""
}

// formProblem is a field to correct, as the summary above a form lists it: its id (the link's
// target), its label and the message at it.
type formProblem struct {
	ID, Label, Message string
}

// recordForm shows the form: for a new record (with ?kind, or first the choice of kind), or for
// an own record to change (?id).
func (s *Server) recordForm(w http.ResponseWriter, r *request) {
	if !s.writerPage(w, r) {
		return
	}
	q := r.URL.Query()
	v := &recordFormView{Regions: regionCodes, Classes: classChoices, Errors: map[string]string{}, Classification: "internal"}
	if id := q.Get("id"); r.URL.Path == "/records/wijzigen" {
		rec, err := pb.NewRecordServiceClient(s.c.Conn).Get(r.ctx(), &pb.GetRequest{Id: id, Mode: r.mode()})
		if err != nil {
			s.failCall(w, r, err)
			return
		}
		v.Edit, v.ID, v.Kind, v.Crisis, v.Region, v.Version = true, rec.Id, rec.Kind, rec.Crisis, rec.Region, rec.Version
		v.Name = s.recordName(r, rec)
		v.Classification = record.ClassificationName(rec.Classification)
		if rec.ValidUntil != nil {
			v.ValidUntil = local(rec.ValidUntil.AsTime()).Format("2006-01-02T15:04")
		}
		v.Labels = labelText(rec.Labels)
		v.Fields = bodyFieldsOf(s.c.Kinds.Get(rec.Kind))
		fillFields(v.Fields, rec.Body)
		v.Body = string(rec.Body)
		if v.Fields != nil {
			v.Kept = unshown(v.Fields, rec.Body)
		}
		v.Files, v.filesShown = fileChoices(r, rec, rec.Body, nil)
		if q.Get("opgeslagen") != "" {
			v.Saved, v.SavedID, v.SavedVersion, v.SavedLink = true, rec.Id, rec.Version, withBack(recordLink(rec), r.inMode("/records"))
		}
	} else {
		v.Kind = q.Get("kind")
		v.Crisis, v.Region = q.Get("crisis"), q.Get("region")
		v.Fields = bodyFieldsOf(s.c.Kinds.Get(v.Kind))
		v.Body = "{}"
	}
	v.Kinds = s.kindViews(r, v.Kind)
	s.renderRecordForm(w, r, http.StatusOK, v)
}

func (s *Server) renderRecordForm(w http.ResponseWriter, r *request, code int, v *recordFormView) {
	// Labelled as on the record page.
	label := fieldLabeler(r.L, s.c.Kinds.Get(v.Kind))
	for i, f := range v.Fields {
		v.Fields[i].Title = label(f.Name)
		v.Fields[i].Error = v.Errors["body."+f.Name]
	}
	if v.filesShown {
		v.Kept = slices.DeleteFunc(v.Kept, func(k string) bool { return k == record.AttachmentsField })
	}
	for i, k := range v.Kept {
		v.Kept[i] = label(k)
	}
	v.FileHint = s.fileHint(r.L)
	v.FileAccept = attach.Accept(s.fileLimits().MediaTypes)
	v.DocDates = slices.ContainsFunc(v.Fields, func(f bodyField) bool { return f.Name == "valid_until" })
	// The summary above the form lists the fields to correct in the form's order, each by its
	// label, linked to it: the content first.
	v.Summary = nil
	for _, f := range v.Fields {
		if f.Error != "" {
			v.Summary = append(v.Summary, formProblem{ID: "body." + f.Name, Label: f.Title, Message: f.Error})
		}
	}
	for _, f := range recordFormFields {
		if e, ok := v.Errors[f.ID]; ok {
			v.Summary = append(v.Summary, formProblem{ID: f.ID, Label: r.L.T(f.Label), Message: e})
		}
	}
	if v.Problem == "" && len(v.Summary) == 1 {
		v.Problem = r.L.T("recordform.not_saved")
	} else if v.Problem == "" && len(v.Summary) > 1 {
		v.Problem = r.L.T("recordform.not_saved_n", len(v.Summary))
	}
	v.Action, v.Cancel = r.inMode("/records/nieuw"), r.inMode("/records")
	title := r.L.T("recordform.new")
	if v.Edit && v.ID != "" {
		v.Cancel = recordLink(&pb.Record{Id: v.ID, Exercise: r.exercise()})
	}
	if v.Edit {
		v.Action, title = r.inMode("/records/wijzigen"), r.L.T("recordform.edit", cmp.Or(v.Name, v.ID))
	}
	s.render(w, r.Request, code, "recordform", s.newPage(r, "records", title, v))
}

// recordFormFields are the record form's fields around the body's fields, in the form's order,
// each with the key of its label: the template labels each with formLabel, and the summary of
// what to correct names them the same way.
var recordFormFields = []struct{ ID, Label string }{
	{"body", "recordform.body_json"}, {"crisis", "field.crisis"}, {"region", "field.region"},
	{"classification", "col.classification"}, {"valid_until", "record.valid_until"},
	{"id", "field.id"}, {"labels", "record.labels"}, {filesField, "recordform.files_add"},
}

// formLabel is the key of the label of the record form's field id (see recordFormFields).
func formLabel(id string) (string, error) {
	for _, f := range recordFormFields {
		if f.ID == id {
			return f.Label, nil
		}
	}
	return "", fmt.Errorf("formLabel: the record form has no field %q", id)
}

// saveRecord creates or changes an own record through RecordService.Put, with the files picked
// uploaded first through AttachmentService.Upload, as the person, and named in the body's
// attachments. A refusal shows the form again, with the service's message at the field it
// names; the record is not written, and nothing stored changes.
func (s *Server) saveRecord(w http.ResponseWriter, r *request) {
	sent, ok := s.readRecordForm(w, r)
	if !ok {
		return
	}
	defer sent.discard()
	if !s.writerPage(w, r) {
		return
	}
	f := r.PostForm
	v := &recordFormView{Regions: regionCodes, Classes: classChoices, Errors: map[string]string{},
		Edit: r.URL.Path == "/records/wijzigen", ID: strings.TrimSpace(f.Get("id")), Kind: f.Get("kind"),
		Crisis: strings.TrimSpace(f.Get("crisis")), Region: f.Get("region"), Classification: f.Get("classification"),
		ValidUntil: f.Get("valid_until"), Labels: f.Get("labels"), Body: f.Get("body")}
	v.Kinds = s.kindViews(r, v.Kind)
	if _, err := fmt.Sscan(f.Get("version"), &v.Version); v.Edit && (err != nil || v.Version < 1) {
		// Version 0 would overwrite whatever stands: a change is always of the version it read.
		v.Errors["id"] = r.L.T("recordform.version_bad")
	}
	v.Fields = bodyFieldsOf(s.c.Kinds.Get(v.Kind))
	for i := range v.Fields {
		v.Fields[i].Value = strings.TrimSpace(f.Get("body." + v.Fields[i].Name))
	}
	rec := &pb.Record{Id: v.ID, Kind: v.Kind, Crisis: v.Crisis, Region: v.Region, Version: v.Version}
	writeInMode(rec, r.mode())
	// What the form itself must read before the service can check it: the classification's
	// word, the time and the labels. The service then checks all of it again.
	var err error
	if rec.Classification, err = record.ParseClassification(v.Classification); err != nil {
		v.Errors["classification"] = r.L.T("recordform.classification_bad")
	}
	if v.ValidUntil != "" {
		t, err := time.ParseInLocation("2006-01-02T15:04", v.ValidUntil, location())
		if err != nil {
			v.Errors["valid_until"] = r.L.T("recordform.bad_time")
		} else {
			rec.ValidUntil = timestamppb.New(t)
		}
	}
	if rec.Labels, err = importfile.ParseLabels(strings.Split(v.Labels, ",")); err != nil {
		v.Errors["labels"] = r.L.T("recordform.labels_bad", err.Error())
	}
	if v.Fields != nil {
		rec.Body = bodyOf(v.Fields)
		if v.Edit {
			// What the form does not show stays as stored. A record that is gone, or another
			// version, is refused by the Put below in its own words.
			if cur, err := pb.NewRecordServiceClient(s.c.Conn).Get(r.ctx(), &pb.GetRequest{Id: v.ID, Mode: r.mode()}); err == nil {
				rec.Body, v.Kept = keepUnshown(v.Fields, cur.Body, rec.Body)
			}
		}
	} else {
		rec.Body = []byte(v.Body)
	}
	remove := map[string]bool{}
	for _, sha := range f[removeField] {
		remove[sha] = true
	}
	v.Files, v.filesShown = fileChoices(r, rec, rec.Body, remove)
	if v.Edit {
		v.Name = s.recordName(r, rec)
	}
	if v.Edit && rec.Id == "" {
		v.Errors["id"] = r.L.T("recordform.id_missing")
	}
	for _, p := range recordProblems(r.L, s.c.Kinds, rec) {
		v.fieldError(p.Field, p.Message)
	}
	// A new record never overwrites one that has its ID (a Put with version 0 would).
	if !v.Edit && rec.Id != "" && v.Errors["id"] == "" {
		if _, err := pb.NewRecordServiceClient(s.c.Conn).Get(r.ctx(), &pb.GetRequest{Id: rec.Id, Mode: r.mode()}); err == nil {
			v.Errors["id"] = r.L.T("recordform.id_taken", rec.Id)
		}
	}
	changesFiles := len(sent.files) > 0 || len(remove) > 0
	if _, _, err := filesOf(rec.Body); changesFiles && err != nil {
		// The JSON the person typed, or the stored list, which the form cannot add to.
		field := filesField
		if v.Fields == nil {
			field = "body"
		}
		v.fieldError(field, r.L.T("recordform.files_body", err.Error()))
	}
	s.checkPicked(r.L, v, sent, len(v.Files)-len(remove))
	if len(v.Errors) > 0 {
		s.renderRecordForm(w, r, http.StatusUnprocessableEntity, v)
		return
	}
	if changesFiles {
		added, ok := s.uploadPicked(r, v, sent)
		if !ok {
			s.renderRecordForm(w, r, http.StatusUnprocessableEntity, v)
			return
		}
		if rec.Body, err = withFiles(rec.Body, remove, added); err != nil {
			v.Problem = r.L.T("recordform.refused", err.Error())
			v.FilesAgain = sent.names(nil)
			s.renderRecordForm(w, r, http.StatusUnprocessableEntity, v)
			return
		}
	}
	resp, err := pb.NewRecordServiceClient(s.c.Conn).Put(r.ctx(), &pb.PutRequest{Record: rec})
	if err != nil {
		// The files went up, but no record names them: the sweep takes them, and the person
		// picks them again.
		v.FilesAgain = sent.names(nil)
		st := status.Convert(err)
		switch st.Code() {
		case codes.Aborted:
			// Someone else saved the record since this form was opened: say so in the
			// person's words, with the version that stands now. The form keeps what was typed,
			// and its version, so that saving again cannot overwrite the other change.
			v.Problem = r.L.T("recordform.refused", st.Message())
			if cur, err := pb.NewRecordServiceClient(s.c.Conn).Get(r.ctx(), &pb.GetRequest{Id: rec.Id, Mode: r.mode()}); err == nil {
				v.Problem = r.L.T("recordform.stale", cur.Version, local(cur.UpdatedAt.AsTime()).Format("2006-01-02 15:04"))
				v.StaleLink, v.StaleVersion = recordLink(cur), cur.Version
			}
			s.renderRecordForm(w, r, http.StatusConflict, v)
		case codes.InvalidArgument, codes.ResourceExhausted:
			field, msg := fieldOf(err)
			if api.Reason(err) == api.ReasonDiskLow {
				v.Problem = r.L.T("recordform.disk_low")
			} else if field == "" || !v.showsField(field) {
				v.Problem = r.L.T("recordform.refused", st.Message())
			} else {
				v.Errors[field] = msg
			}
			s.renderRecordForm(w, r, http.StatusUnprocessableEntity, v)
		default:
			s.failCall(w, r, err)
		}
		return
	}
	http.Redirect(w, r.Request, r.inMode("/records/wijzigen?"+url.Values{"id": {resp.Id}, "opgeslagen": {"1"}}.Encode()), http.StatusSeeOther)
}

// formField reads the form field a refused record's field is shown at: record.body.beds_free at
// body.beds_free (record.body.exits.0 at body.exits too), record.crisis at crisis; a body missing
// property 'x' at body.x.
var (
	formField   = regexp.MustCompile(`^record\.([a-z_]+(?:\.[^.\[]+)?)`)
	missingProp = regexp.MustCompile(`missing propert(?:y|ies) '([^']+)'`)
)

// fieldOf is the form field a refusal of a record is about (see api.Field), and what it says of
// it; "" and the whole message for a refusal that names no field of the record.
func fieldOf(err error) (field, reason string) {
	path, reason := api.Field(err)
	m := formField.FindStringSubmatch(path)
	if m == nil {
		return "", status.Convert(err).Message()
	}
	field = m[1]
	if field == "body" {
		if p := missingProp.FindStringSubmatch(reason); p != nil {
			field = "body." + p[1]
		}
	}
	return field, reason
}

// fieldError sets the message of a field the form shows, unless it has one already.
func (v *recordFormView) fieldError(field, msg string) {
	if _, ok := v.Errors[field]; !ok && v.showsField(field) {
		v.Errors[field] = msg
	}
}

// showsField reports whether the form has the field, to show a message there.
func (v *recordFormView) showsField(field string) bool {
	switch field {
	case "id", "crisis", "region", "classification", "valid_until", "labels", "version", filesField:
		return true
	case "body":
		return v.Fields == nil
	}
	for _, f := range v.Fields {
		if "body."+f.Name == field {
			return true
		}
	}
	return false
}

// labelText shows labels as key=value, comma-separated.
func labelText(labels map[string]string) string {
	var out []string
	for k, v := range labels {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// maxUploadBytes bounds an uploaded file, with its form; a larger upload is refused before it
// is read whole, and nothing of it is stored.
const maxUploadBytes = 16 << 20

// importBatch is how many rows go to the service in one PutBatch.
const importBatch = 500

type uploadView struct {
	Kinds            []kindView
	Regions, Classes []string
	MaxMB            int
	Problem          string
}

func (s *Server) importForm(w http.ResponseWriter, r *request) {
	if !s.writerPage(w, r) {
		return
	}
	v := &uploadView{Kinds: s.kindViews(r, ""), Regions: regionCodes, Classes: classChoices, MaxMB: maxUploadBytes >> 20}
	s.render(w, r.Request, http.StatusOK, "upload", s.newPage(r, "records", r.L.T("upload.title"), v))
}

// importFile reads an uploaded file and writes its rows through RecordService.PutBatch. The
// body is streamed: the CSRF token must come first, the file is read under maxUploadBytes, and
// nothing is written unless the whole file was read.
func (s *Server) importFile(w http.ResponseWriter, r *request) {
	fail := func(code int, msg string) {
		v := &uploadView{Kinds: s.kindViews(r, ""), Regions: regionCodes, Classes: classChoices, MaxMB: maxUploadBytes >> 20, Problem: msg}
		s.render(w, r.Request, code, "upload", s.newPage(r, "records", r.L.T("upload.title"), v))
	}
	if r.ContentLength > maxUploadBytes {
		// Refused on its announced size, before a byte of it is read. The connection closes:
		// the rest of the body is never read.
		w.Header().Set("Connection", "close")
		fail(http.StatusRequestEntityTooLarge, r.L.T("upload.too_large", maxUploadBytes>>20))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxUploadBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		fail(http.StatusBadRequest, r.L.T("upload.not_a_form"))
		return
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != "csrf" {
		s.checkCSRF(w, r.Request, r.L, r.Session, "")
		return
	}
	tok, _ := io.ReadAll(io.LimitReader(part, 256))
	if !s.checkCSRF(w, r.Request, r.L, r.Session, string(tok)) {
		return
	}
	if !s.writerPage(w, r) {
		return
	}
	var defaults record.JSON
	var rows []importfile.Row
	var name string
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.uploadError(w, r, err, fail)
			return
		}
		switch part.FormName() {
		case "kind", "crisis", "region", "classification":
			b, _ := io.ReadAll(io.LimitReader(part, 256))
			setDefault(&defaults, part.FormName(), strings.TrimSpace(string(b)))
		case "bestand":
			name = part.FileName()
			format := importfile.FormatOf(name)
			if format == "" {
				fail(http.StatusBadRequest, r.L.T("upload.format", name))
				return
			}
			if rows, err = importfile.ReadNamed(part, format, defaults, s.columnNames(r.L)); err != nil {
				s.uploadError(w, r, err, fail)
				return
			}
		}
	}
	if name == "" {
		fail(http.StatusBadRequest, r.L.T("upload.no_file"))
		return
	}
	for i, row := range rows {
		// A row the node would refuse is refused here, in the person's words, each field by its
		// label; the node checks the others.
		var count *importfile.FieldCountError
		var line *importfile.LineError
		var fe *record.FieldError
		switch {
		case errors.As(row.Err, &count):
			rows[i].Err = errors.New(r.L.T("upload.field_count", count.Got, count.Header))
		case errors.As(row.Err, &line):
			// A line the reader could not read as a record.
			rows[i].Err = errors.New(unreadableText(r.L, line))
		case errors.As(row.Err, &fe) && uploadColumnText[fe.Field] != [2]string{}:
			// A column the file's reader could not read.
			rows[i].Err = errors.New(r.L.T(uploadColumnText[fe.Field][0]) + ": " + r.L.T(uploadColumnText[fe.Field][1]))
		case row.Err == nil:
			if p := recordProblems(r.L, s.c.Kinds, row.Record); len(p) > 0 {
				rows[i].Err = errors.New(inWords(r.L, s.c.Kinds.Get(row.Record.Kind), p))
			}
		}
	}
	mode := r.mode()
	for _, row := range rows {
		if row.Record != nil {
			writeInMode(row.Record, mode)
		}
	}
	// The rows are written to the end even when the browser goes away meanwhile: a file stopped
	// halfway, its report lost with the redirect, would leave the person to guess what was stored.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx()), importTimeout)
	defer cancel()
	sum, err := importfile.Import(ctx, pb.NewRecordServiceClient(s.c.Conn), rows, importBatch, nil)
	if err != nil && sum.Accepted == 0 && sum.Rejected == 0 {
		s.failCall(w, r, err)
		return
	}
	sum.File = name
	rep := &uploadReport{Summary: sum, Person: r.Session.Person.String(), At: time.Now()}
	if n := len(rep.Rejections); n > maxReportRows {
		rep.Rejections = slices.Clone(rep.Rejections[:maxReportRows])
		rep.LeftOut = r.L.T("upload.left_out", maxReportRows, r.L.Number(float64(n-maxReportRows)))
	}
	if err != nil {
		rep.Stopped = status.Convert(err).Message()
	}
	id := s.imports.add(rep)
	http.Redirect(w, r.Request, r.inMode("/records/importeren/verslag?id="+url.QueryEscape(id)), http.StatusSeeOther)
}

// uploadError shows why an upload could not be read: too large, or not a file of its format.
func (s *Server) uploadError(w http.ResponseWriter, r *request, err error, fail func(int, string)) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		w.Header().Set("Connection", "close")
		fail(http.StatusRequestEntityTooLarge, r.L.T("upload.too_large", maxUploadBytes>>20))
		return
	}
	if errors.Is(err, multipart.ErrMessageTooLarge) {
		fail(http.StatusRequestEntityTooLarge, r.L.T("upload.too_large", maxUploadBytes>>20))
		return
	}
	fail(http.StatusBadRequest, r.L.T("upload.unreadable", err.Error()))
}

func setDefault(d *record.JSON, field, v string) {
	switch field {
	case "kind":
		d.Kind = v
	case "crisis":
		d.Crisis = v
	case "region":
		d.Region = v
	case "classification":
		d.Classification = v
	}
}

// unreadableText says in the person's words why the reader could not read a line as a record.
func unreadableText(l *Lang, e *importfile.LineError) string {
	switch e.Problem {
	case importfile.UnknownField:
		return l.T("upload.unknown_field", e.Field)
	case importfile.WrongType:
		return l.T("upload.wrong_type", e.Field)
	case importfile.BareQuote:
		return l.T("upload.bare_quote")
	case importfile.QuoteMissing:
		return l.T("upload.quote_missing")
	}
	return l.T("upload.not_json")
}

// uploadColumnText are the label and the message of each column of an uploaded file that its
// reader refuses (see importfile): a classification that is none, a time that is no RFC 3339
// time, labels that are no key=value pairs, a body that is no JSON object.
var uploadColumnText = map[string][2]string{
	"classification": {"col.classification", "recordform.classification_bad"},
	"valid_until":    {"record.valid_until", "upload.bad_time"},
	"updated_at":     {"record.updated", "upload.bad_time"},
	"labels":         {"record.labels", "upload.bad_labels"},
	"body":           {"record.body", "upload.bad_body"},
}

// uploadReport is what one upload did, kept for the page after it.
type uploadReport struct {
	importfile.Summary
	Person  string
	At      time.Time
	Stopped string
	// LeftOut is how many refused rows the report leaves out, past its first maxReportRows.
	LeftOut string
}

// importTimeout bounds an upload's writes, which outlive the request that brought the file.
const importTimeout = 10 * time.Minute

// maxReportRows bounds the refused rows a report keeps and shows: a file whose every row is
// refused (the wrong kind chosen, say) says enough in its first rows, and a report of all of a
// large file's would hold hundreds of megabytes for an hour.
const maxReportRows = 500

// importReports keeps the latest upload reports in memory, an hour each, for the page the
// upload redirects to (so that reloading it does not upload again).
type importReports struct {
	mu   sync.Mutex
	byID map[string]*uploadReport
}

const (
	reportTTL  = time.Hour
	maxReports = 1000
)

func newImportReports() *importReports { return &importReports{byID: map[string]*uploadReport{}} }

func (ir *importReports) add(rep *uploadReport) string {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	for id, old := range ir.byID {
		if time.Since(old.At) > reportTTL || len(ir.byID) >= maxReports {
			delete(ir.byID, id)
		}
	}
	id := randomID()
	ir.byID[key(id)] = rep
	return id
}

func (ir *importReports) get(id, person string) *uploadReport {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	rep := ir.byID[key(id)]
	if rep == nil || rep.Person != person || time.Since(rep.At) > reportTTL {
		return nil
	}
	return rep
}

// importReport shows the report of an upload: how many rows were stored, and why each other
// one was not.
func (s *Server) importReport(w http.ResponseWriter, r *request) {
	rep := s.imports.get(r.URL.Query().Get("id"), r.Session.Person.String())
	if rep == nil {
		s.failIn(w, r, http.StatusNotFound, r.L.T("error.not_found"))
		return
	}
	s.render(w, r.Request, http.StatusOK, "uploadreport", s.newPage(r, "records", r.L.T("upload.report_title", rep.File), rep))
}

// columnNames reads a CSV column named in people's words as the field it names: the record's
// columns by the form's labels (Soort, Regio, Rubricering, Geldig tot) and each kind's body
// fields by their labels (Gemeente, Vrije opvangplaatsen), in the page's language and in English,
// case and spaces aside. A label two kinds give to different fields is left as it is.
func (s *Server) columnNames(l *Lang) func(string) string {
	byLabel := map[string]string{}
	ambiguous := map[string]bool{}
	norm := func(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }
	add := func(label, field string) {
		key := norm(label)
		if key == "" {
			return
		}
		if f, ok := byLabel[key]; ok && f != field {
			ambiguous[key] = true
		}
		byLabel[key] = field
	}
	for _, lang := range []*Lang{l, s.lang("en")} {
		for field, key := range map[string]string{"id": "field.id", "kind": "field.kind", "crisis": "field.crisis",
			"region": "field.region", "classification": "col.classification", "valid_until": "record.valid_until"} {
			add(lang.T(key), field)
		}
		for _, n := range s.c.Kinds.Names() {
			k := s.c.Kinds.Get(n)
			label := fieldLabeler(lang, k)
			for _, f := range k.Fields() {
				add(label(f), f)
			}
		}
	}
	return func(column string) string {
		key := norm(column)
		if f, ok := byLabel[key]; ok && !ambiguous[key] {
			return f
		}
		return column
	}
}

// The files of a record, on its form: the files it names, each with a box that takes it off, and
// a file input that adds more. The files picked are uploaded when the record is saved, as the
// person, through the same AttachmentService.Upload as record put --attach, and only once every
// field checks and every file passes what the interface can check itself (its size, its type as
// sniffed, its name); the record is written only when every upload was taken.

const (
	// filesField is the record form's file input; removeField its boxes that take a file off.
	filesField  = "bijlagen"
	removeField = "verwijder"
)

// fileChoice is a file the record names, as the form lists it; Remove: its box is ticked.
type fileChoice struct {
	fileView
	Remove bool
}

// fileChoices are the files body names, ticked when remove has them; false when body's
// attachments cannot be read, which the form then keeps as they are (Kept).
func fileChoices(r *request, rec *pb.Record, body []byte, remove map[string]bool) ([]fileChoice, bool) {
	files, err := record.Attachments(body)
	if err != nil {
		return nil, false
	}
	var out []fileChoice
	for _, f := range fileViews(&pb.Record{Origin: rec.Origin, Id: rec.Id}, files, r) {
		out = append(out, fileChoice{fileView: f, Remove: remove[f.SHA256]})
	}
	return out, true
}

// fileLimits are the node's limits of files, its defaults filled in.
func (s *Server) fileLimits() attach.Limits {
	var l attach.Limits
	if s.c.FileLimits != nil {
		l = s.c.FileLimits()
	}
	return l.Filled()
}

// maxRecordForm bounds a record form sent with files: its fields (maxForm) and files of at most
// the node's size of one file (attachments.max_bytes), together. More files than that go in
// at a later save; the files that the CLI and the API upload one at a time have no such bound.
func (s *Server) maxRecordForm(l attach.Limits) int64 { return s.c.maxForm() + l.MaxBytes }

// fileHint says which files the node takes, in words, and how large they may be together.
func (s *Server) fileHint(l *Lang) string {
	limits := s.fileLimits()
	return l.T("recordform.files_hint", fileTypesIn(l, limits), fileSize(l, limits.MaxBytes))
}

// sentForm is a record form as sent: each file picked waits in a temporary file until it is
// uploaded.
type sentForm struct {
	files []*pickedFile
	// cut names the file that was being read when the form went over maxRecordForm: it and
	// what came after it were not read.
	cut string
	// over is how many files came beyond record.MaxAttachments, not read.
	over int
}

type pickedFile struct {
	name string
	tmp  *os.File
	size int64
	sha  string
	// head is the start of the content, to sniff its type.
	head []byte
}

// discard removes the temporary files.
func (f *sentForm) discard() {
	for _, p := range f.files {
		p.tmp.Close()
		os.Remove(p.tmp.Name())
	}
}

// names are the names of the files picked, but for refused, comma-separated.
func (f *sentForm) names(refused map[*pickedFile]bool) string {
	var out []string
	for _, p := range f.files {
		if !refused[p] {
			out = append(out, p.name)
		}
	}
	return strings.Join(out, ", ")
}

// readRecordForm reads a record form: URL-encoded as every form (readForm), or, with files,
// multipart, streamed under maxRecordForm. The CSRF token comes first, and is checked before
// anything else is read; the fields, which come before the file input, are read whole, and each
// file is kept in a temporary file. A form cut off in its files still has its fields: the form
// shows them again, with the file that went over. It sets r.PostForm to the fields; false when
// it refused the request.
func (s *Server) readRecordForm(w http.ResponseWriter, r *request) (*sentForm, bool) {
	sent := &sentForm{}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "multipart/form-data" {
		return sent, s.readForm(w, r)
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.maxRecordForm(s.fileLimits()))
	mr, err := r.MultipartReader()
	if err != nil {
		s.failIn(w, r, http.StatusBadRequest, r.L.T("error.form_unreadable", err.Error()))
		return nil, false
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != csrfField {
		s.checkCSRF(w, r.Request, r.L, r.Session, "")
		return nil, false
	}
	tok, _ := io.ReadAll(io.LimitReader(part, 256))
	if !s.checkCSRF(w, r.Request, r.L, r.Session, string(tok)) {
		return nil, false
	}
	// Before a file is read: a reader's files are refused, not first spooled to disk.
	if !s.writerPage(w, r) {
		return nil, false
	}
	values := url.Values{csrfField: {string(tok)}}
	r.PostForm = values
	left := s.c.maxForm()
	reading := "" // the file being read
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return sent, true
		}
		if err == nil && part.FileName() == "" && part.FormName() != filesField {
			var b []byte
			b, err = io.ReadAll(io.LimitReader(part, left+1))
			if left -= int64(len(b)); left < 0 {
				s.failIn(w, r, http.StatusRequestEntityTooLarge, r.L.T("error.form_too_large", fileSize(r.L, s.c.maxForm())))
				return nil, false
			}
			values.Add(part.FormName(), string(b))
		} else if err == nil {
			reading = part.FileName()
			switch {
			case part.FormName() != filesField || reading == "":
				// No file picked: the browser sends an empty one.
				_, err = io.Copy(io.Discard, part)
			case len(sent.files) >= record.MaxAttachments:
				sent.over++
				_, err = io.Copy(io.Discard, part)
			default:
				var p *pickedFile
				p, err = spool(reading, part)
				switch {
				case p != nil && err == nil:
					sent.files = append(sent.files, p)
				case p != nil:
					// Read in part (the form went over its limit in it): its size is not its
					// own, and the message on the cut names it once.
					p.tmp.Close()
					os.Remove(p.tmp.Name())
				}
			}
		}
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) && reading != "" {
			// The rest of the body is not read: the connection closes after the answer.
			w.Header().Set("Connection", "close")
			sent.cut = reading
			return sent, true
		}
		if err != nil {
			sent.discard()
			if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
				w.Header().Set("Connection", "close")
				s.failIn(w, r, http.StatusRequestEntityTooLarge, r.L.T("error.form_too_large", fileSize(r.L, tooLarge.Limit)))
			} else {
				s.failIn(w, r, http.StatusBadRequest, r.L.T("error.form_unreadable", err.Error()))
			}
			return nil, false
		}
	}
}

// spool keeps a file picked in a temporary file, with its size, hash and start.
func spool(name string, r io.Reader) (*pickedFile, error) {
	tmp, err := os.CreateTemp("", "knooppunt-bijlage-*")
	if err != nil {
		return nil, err
	}
	p := &pickedFile{name: name, tmp: tmp}
	h := sha256.New()
	if p.size, err = io.Copy(io.MultiWriter(tmp, h), r); err != nil {
		return p, err
	}
	p.sha = hex.EncodeToString(h.Sum(nil))
	p.head = make([]byte, min(p.size, attach.SniffBytes))
	_, err = tmp.ReadAt(p.head, 0)
	return p, err
}

// checkPicked checks the files picked as the node will, in the person's words, each message
// naming its file (see attach.Limits.Check): has is how many files the record keeps. The node
// checks them again as they are uploaded.
func (s *Server) checkPicked(l *Lang, v *recordFormView, sent *sentForm, has int) {
	limits := s.fileLimits()
	var problems []string
	refused := map[*pickedFile]bool{}
	for _, p := range sent.files {
		var msg string
		mediaType := attach.Sniff(p.head)
		switch {
		case p.size == 0:
			msg = l.T("recordform.file_empty", p.name)
		case p.size > limits.MaxBytes:
			msg = l.T("recordform.file_too_large", p.name, fileSize(l, p.size), fileSize(l, limits.MaxBytes))
		case mediaType == attach.Executable:
			msg = l.T("recordform.file_program", p.name)
		case record.CheckFilename("filename", p.name) != nil:
			msg = l.T("recordform.file_name", p.name)
		case attach.CheckActive("filename", p.name) != nil:
			msg = l.T("recordform.file_active", p.name, attach.Extension(p.name))
		case attach.CheckName("filename", p.name, mediaType) != nil:
			msg = l.T("recordform.file_name_type_other", p.name, fileType(l, mediaType))
			if own := attach.ExtensionsOf(mediaType); len(own) > 0 {
				msg = l.T("recordform.file_name_type", p.name, fileType(l, mediaType), strings.Join(own, ", "))
			}
		case !slices.Contains(limits.MediaTypes, mediaType):
			msg = l.T("recordform.file_type", p.name, fileType(l, mediaType), fileTypesIn(l, limits))
		}
		if msg != "" {
			problems = append(problems, msg)
			refused[p] = true
		}
	}
	if sent.cut != "" {
		problems = append(problems, l.T("recordform.files_too_large", sent.cut, fileSize(l, limits.MaxBytes)))
	}
	if n := has + len(sent.files) + sent.over; n > record.MaxAttachments {
		problems = append(problems, l.T("recordform.files_too_many", record.MaxAttachments, n))
	}
	if len(problems) > 0 {
		// One line each (the field's message keeps its line breaks): a sentence per file read
		// together made one file's refusal look like the next's.
		v.Errors[filesField] = strings.Join(problems, "\n")
	}
	if len(v.Errors) > 0 {
		v.FilesAgain = sent.names(refused)
	}
}

// fileTypesIn are the types of file the node takes, in words.
func fileTypesIn(l *Lang, limits attach.Limits) string {
	var types []string
	for _, t := range limits.MediaTypes {
		if w := fileType(l, t); !slices.Contains(types, w) {
			types = append(types, w)
		}
	}
	return strings.Join(types, ", ")
}

// uploadPicked uploads the files picked, as the person, each checked against its hash on the
// way, and returns them as the body names them. A refusal is put at the file input, naming the
// file; false then, and the record is not to be written.
func (s *Server) uploadPicked(r *request, v *recordFormView, sent *sentForm) ([]record.Attachment, bool) {
	c := pb.NewAttachmentServiceClient(s.c.Conn)
	var out []record.Attachment
	for _, p := range sent.files {
		if _, err := p.tmp.Seek(0, io.SeekStart); err != nil {
			v.Errors[filesField] = r.L.T("recordform.file_refused", p.name, err.Error())
			v.FilesAgain = sent.names(map[*pickedFile]bool{p: true})
			return nil, false
		}
		a, err := attach.Upload(r.ctx(), c, p.name, p.tmp, p.size, p.sha, nil)
		if err != nil {
			msg := r.L.T("recordform.file_refused", p.name, status.Convert(err).Message())
			if status.Code(err) == codes.ResourceExhausted {
				msg = r.L.T("recordform.file_too_large_node", p.name, fileSize(r.L, p.size))
			}
			s.log.Info("file upload refused", "person", r.Session.Person.String(), "file", p.name, "err", err)
			v.Errors[filesField] = msg
			v.FilesAgain = sent.names(map[*pickedFile]bool{p: true})
			return nil, false
		}
		out = append(out, record.Attachment{SHA256: a.Sha256, Size: a.Size, MediaType: a.MediaType, Filename: a.Filename})
	}
	return out, true
}

// filesOf reads body as a JSON object and the files it names.
func filesOf(body []byte) (map[string]json.RawMessage, []record.Attachment, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return nil, nil, errors.New("the content is no JSON object")
	}
	files, err := record.Attachments(body)
	if err != nil {
		return nil, nil, err
	}
	return obj, files, nil
}

// withFiles is body with the files in remove (by their SHA-256) taken off its attachments and
// added put on, each file once: the same content picked again keeps the name it has. A body
// left without files has no attachments field.
func withFiles(body []byte, remove map[string]bool, added []record.Attachment) ([]byte, error) {
	obj, files, err := filesOf(body)
	if err != nil {
		return nil, err
	}
	files = slices.DeleteFunc(files, func(a record.Attachment) bool { return remove[a.SHA256] })
	for _, a := range added {
		if !slices.ContainsFunc(files, func(b record.Attachment) bool { return b.SHA256 == a.SHA256 }) {
			files = append(files, a)
		}
	}
	delete(obj, record.AttachmentsField)
	if len(files) > 0 {
		raw, err := json.Marshal(files)
		if err != nil {
			return nil, err
		}
		obj[record.AttachmentsField] = raw
	}
	return json.Marshal(obj)
}
