// Package assessment owns the shared assessment of a crisis (duiding): a coordinating org's
// reading of the picture, tied to the exact picture it interprets, and the partners' responses to
// it (endorse, remark). Both are plain records (kinds assessment and assessment.response) that
// travel under the orgs' own policies. The package derives; it never does I/O: callers read the
// picture through SearchService.Picture and write records through RecordService.
package assessment

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The kinds of the assessment and of the responses to it.
const (
	Kind         = "assessment"
	ResponseKind = "assessment.response"
)

// The responses a partner can give.
const (
	Endorse = "endorse"
	Remark  = "remark"
)

// Cursor says how far the picture an assessment interprets reached into one source: the newest
// update of that source's entries, how many entries it had, and a hash of them.
type Cursor struct {
	Source  string    `json:"source"`
	Newest  time.Time `json:"newest"`
	Entries int       `json:"entries"`
	Hash    string    `json:"hash"`
}

// Picture is the fingerprint of a picture: the content hash of all its entries and the cursor of
// each source. Assessments and responses are left out, so that writing them changes nothing.
type Picture struct {
	Hash    string   `json:"hash"`
	Sources []Cursor `json:"sources"`
}

// counts says whether records of a kind are part of the picture an assessment interprets.
func counts(kind string) bool { return kind != Kind && kind != ResponseKind }

// Classification is an assessment's: what its policies share it under.
const Classification = pb.Classification_INTERNAL

// covered says whether a record is classified no higher than an assessment, which goes to every
// partner its policies name: a confidential or secret record's figures would reach partners no
// policy grants it to, inside an internal record (review AD, AD1).
func covered(r *pb.Record) bool { return r.GetClassification() <= Classification }

// assessed are the entries of the picture p an assessment stands for, of the kinds it
// interprets: each entry whose record is covered; for one that is not, the latest covered record
// that another source has in its slot (PictureEntry.disagreeing), as the picture would have shown
// without the record above the ceiling, or nothing (review AG, AG1: leaving the entry out alone
// took the other source's figure out of the sums too). A record that agrees with the one above
// the ceiling is not in the picture, so its slot is then left out. replaced says whether any
// entry was.
func assessed(p *pb.PictureResponse) (entries []*pb.PictureEntry, replaced bool) {
	for _, e := range p.GetEntries() {
		if !counts(e.Kind) {
			continue
		}
		if covered(e.GetRecord()) {
			entries = append(entries, e)
			continue
		}
		replaced = true
		var best *pb.PictureEntry
		for i, r := range e.GetDisagreeing() {
			if !covered(r) || i >= len(e.GetConflict()) {
				continue
			}
			if c := (&pb.PictureEntry{Kind: e.Kind, Region: e.Region, Key: e.Key, Source: e.Conflict[i], Record: r}); best == nil || later(c.Record, best.Record) ||
				!later(best.Record, c.Record) && (c.Source < best.Source || c.Source == best.Source && r.GetId() < best.Record.GetId()) {
				best = c
			}
		}
		if best != nil {
			entries = append(entries, best)
		}
	}
	return entries, replaced
}

// Fingerprint hashes a picture. The hash covers, for every entry in the picture's order, its
// slot (kind, region, key), its source, the record's origin, id, version, update time and body;
// two pictures with the same hash show the same records with the same contents. The result does
// not depend on the order of the entries.
func Fingerprint(p *pb.PictureResponse) Picture {
	type src struct {
		lines  []string
		newest time.Time
	}
	var all []string
	by := map[string]*src{}
	entries, _ := assessed(p)
	for _, e := range entries {
		r := e.GetRecord()
		// The whole body's hash, also of an entry whose long fields the answer left out.
		body := e.GetWholeBodySha256()
		if body == nil {
			sum := sha256.Sum256(r.GetBody())
			body = sum[:]
		}
		line := strings.Join([]string{e.Kind, e.Region, e.Key, e.Source, r.GetOrigin(), r.GetId(),
			fmt.Sprint(r.GetVersion()), fmt.Sprint(r.GetUpdatedAt().AsTime().UnixNano()), hex.EncodeToString(body)}, "\x1f")
		all = append(all, line)
		s := by[e.Source]
		if s == nil {
			s = &src{}
			by[e.Source] = s
		}
		s.lines = append(s.lines, line)
		if t := r.GetUpdatedAt().AsTime(); t.After(s.newest) {
			s.newest = t
		}
	}
	out := Picture{Hash: hashLines(all), Sources: []Cursor{}}
	for name, s := range by {
		out.Sources = append(out.Sources, Cursor{Source: name, Newest: s.newest.UTC(), Entries: len(s.lines), Hash: hashLines(s.lines)})
	}
	sort.Slice(out.Sources, func(i, j int) bool { return out.Sources[i].Source < out.Sources[j].Source })
	return out
}

func hashLines(lines []string) string {
	lines = slices.Clone(lines)
	slices.Sort(lines)
	h := sha256.New()
	for _, l := range lines {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(l)))
		h.Write(n[:])
		h.Write([]byte(l))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Body is an assessment record's body.
type Body struct {
	// Text is the assessment itself: what the picture means.
	Text string `json:"text"`
	// Development is how the crisis is expected to develop.
	Development string `json:"development"`
	// Advice is what the author advises partners to do.
	Advice string `json:"advice"`
	// Picture is the fingerprint of the picture the author interpreted.
	Picture Picture `json:"picture"`
	// Sums are the picture's sums (PictureResponse.aggregates) when it was written, so that a
	// reader sees how much the picture changed since, not only that it did: at most MaxSums,
	// the national totals first. SumsLeftOut counts those beyond. Sums is nil in an assessment
	// of a release that did not keep them, and empty (not nil) for a picture without sums.
	Sums        []Sum `json:"sums"`
	SumsLeftOut int   `json:"sums_left_out,omitempty"`
}

// MaxSums bounds the sums an assessment keeps of its picture: an assessment travels whole in
// every picture (it is never shortened to fit one), and 256 sums are some 20 KiB.
const MaxSums = 256

// Sum is one of a picture's sums as an assessment keeps it: of a kind's field in a region (NL
// for the national total), the total and how many entries it added (records).
type Sum struct {
	Kind    string  `json:"kind"`
	Field   string  `json:"field"`
	Region  string  `json:"region"`
	Sum     float64 `json:"sum"`
	Records int64   `json:"records"`
}

// Moved is a sum that differs between the assessment's picture (Before, RecordsBefore) and the
// picture now (After, RecordsAfter): in its total or in how many entries it added. A sum one
// of them lacks is 0 of 0 records there.
type Moved struct {
	Kind          string  `json:"kind"`
	Field         string  `json:"field"`
	Region        string  `json:"region"`
	Before        float64 `json:"before"`
	After         float64 `json:"after"`
	RecordsBefore int64   `json:"records_before"`
	RecordsAfter  int64   `json:"records_after"`
}

// sumsOf are the sums of the picture p, of the kinds an assessment interprets, in the picture's
// order (kind, field, region, NL last): at most MaxSums, the national totals first, so that a
// picture of very many regions keeps its totals, and how many it left out. They are the
// picture's own, unless an entry is not covered: then those of the entries assessed, added up
// as the picture adds them (see added).
func sumsOf(p *pb.PictureResponse) (kept []Sum, leftOut int) {
	kept = []Sum{}
	if entries, replaced := assessed(p); replaced {
		kept = added(p, entries)
	} else {
		for _, a := range p.GetAggregates() {
			if counts(a.Kind) {
				kept = append(kept, Sum{Kind: a.Kind, Field: a.Field, Region: a.Region, Sum: a.Sum, Records: a.Records})
			}
		}
	}
	if len(kept) > MaxSums {
		slices.SortStableFunc(kept, func(a, b Sum) int {
			return cmp.Compare(regionOrder(b.Region), regionOrder(a.Region))
		})
		leftOut = len(kept) - MaxSums
		kept = kept[:MaxSums]
	}
	slices.SortFunc(kept, compareSums)
	return kept, leftOut
}

// added are the sums of entries, of the fields the picture p sums of each kind (its aggregates),
// as the picture adds them up (federation/search): a number of the body's top level, within
// record.MaxAggregate, to its region and to NL once.
func added(p *pb.PictureResponse, entries []*pb.PictureEntry) []Sum {
	fields := map[string][]string{}
	for _, a := range p.GetAggregates() {
		if !slices.Contains(fields[a.Kind], a.Field) {
			fields[a.Kind] = append(fields[a.Kind], a.Field)
		}
	}
	sums := map[[3]string]*Sum{}
	for _, e := range entries {
		if len(fields[e.Kind]) == 0 {
			continue
		}
		var body map[string]any
		dec := json.NewDecoder(bytes.NewReader(e.GetRecord().GetBody()))
		dec.UseNumber()
		if dec.Decode(&body) != nil {
			continue
		}
		for _, f := range fields[e.Kind] {
			v, ok := record.AggregateValue(body, f)
			if !ok {
				continue
			}
			for _, region := range record.SumRegions(e.Region) {
				k := [3]string{e.Kind, f, region}
				if sums[k] == nil {
					sums[k] = &Sum{Kind: e.Kind, Field: f, Region: region}
				}
				sums[k].Sum += v
				sums[k].Records++
			}
		}
	}
	out := make([]Sum, 0, len(sums))
	for _, s := range sums {
		out = append(out, *s)
	}
	return out
}

// regionOrder places the national total after the regions, as the picture does.
func regionOrder(r string) string {
	if r == "NL" {
		return "~"
	}
	return r
}

func compareSums(a, b Sum) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Field, b.Field), cmp.Compare(regionOrder(a.Region), regionOrder(b.Region)))
}

// moved are the sums that differ between was, the sums an assessment kept (of which leftOut
// were left out), and now, the picture's now, in the picture's order. A sum now that was not
// kept counts as moved from 0 only when none was left out: else it may be one of those.
func moved(was []Sum, leftOut int, now []Sum) []Moved {
	type key struct{ kind, field, region string }
	type pair struct{ before, after *Sum }
	by := map[key]*pair{}
	// Another org's assessment may hold more than New keeps: at most MaxSums of them count.
	for i := range was[:min(len(was), MaxSums)] {
		s := &was[i]
		by[key{s.Kind, s.Field, s.Region}] = &pair{before: s}
	}
	for i := range now {
		s := &now[i]
		k := key{s.Kind, s.Field, s.Region}
		switch p := by[k]; {
		case p != nil:
			p.after = s
		case leftOut == 0:
			by[k] = &pair{after: s}
		}
	}
	out := []Moved{}
	for k, p := range by {
		var b, a Sum
		if p.before != nil {
			b = *p.before
		}
		if p.after != nil {
			a = *p.after
		}
		if same(b.Sum, a.Sum) && b.Records == a.Records {
			continue
		}
		out = append(out, Moved{Kind: k.kind, Field: k.field, Region: k.region, Before: b.Sum, After: a.Sum, RecordsBefore: b.Records, RecordsAfter: a.Records})
	}
	slices.SortFunc(out, func(a, b Moved) int {
		return compareSums(Sum{Kind: a.Kind, Field: a.Field, Region: a.Region}, Sum{Kind: b.Kind, Field: b.Field, Region: b.Region})
	})
	return out
}

// same says whether two sums are one: the same figures added in another order (on another
// node) may differ in the last bits of a fraction.
func same(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*max(math.Abs(a), math.Abs(b))
}

// ResponseBody is an assessment.response record's body.
type ResponseBody struct {
	AssessmentOrigin  string `json:"assessment_origin"`
	AssessmentID      string `json:"assessment_id"`
	AssessmentVersion int64  `json:"assessment_version"`
	Response          string `json:"response"` // endorse or remark
	Text              string `json:"text,omitempty"`
}

// MaxText bounds each text of an assessment and of a remark.
const MaxText = 4000

// Errors.
var (
	ErrEmpty   = errors.New("assessment: empty")
	ErrTooLong = errors.New("assessment: too long")
)

// ID is the record id of an org's assessment of a crisis: every publication is a new version of
// it, so the current assessment is its latest version.
func ID(crisis string) string { return "assessment-" + crisis }

// IDIn is the record id of an org's assessment of a crisis in mode (nil: actual, ID). A record
// keeps its mode, so an exercise's assessment of the crisis is a record of its own beside the
// actual one: "assessment-CRISIS:EXERCISE", or, when that is longer than a record id may be, the
// crisis and the mode hashed (review AL, AL11).
func IDIn(crisis string, mode *pb.Mode) string {
	if mode.GetStatus() == pb.Status_ACTUAL {
		return ID(crisis)
	}
	in := mode.GetExercise()
	if in == "" {
		in = strings.ToLower(mode.GetStatus().String())
	}
	id := ID(crisis) + ":" + in
	if len(id) > record.MaxIDLength {
		sum := sha256.Sum256([]byte(crisis + "\x00" + mode.GetStatus().String() + "\x00" + in))
		id = "assessment-" + hex.EncodeToString(sum[:16])
	}
	return id
}

// InMode makes rec, an assessment New built, or a response NewResponse built, a record of mode
// (nil: actual): an assessment takes its id in the mode (IDIn); a response's id names the
// assessment's already.
func InMode(rec *pb.Record, mode *pb.Mode) {
	if mode == nil {
		return
	}
	rec.Status, rec.Exercise = mode.GetStatus(), mode.GetExercise()
	if rec.GetKind() == Kind {
		rec.Id = IDIn(rec.GetCrisis(), mode)
	}
}

// New builds the assessment record of a crisis for the picture p, with its fingerprint and its
// sums. Empty texts are refused, naming the field.
func New(p *pb.PictureResponse, text, development, advice string) (*pb.Record, error) {
	for _, f := range []struct{ name, v string }{{"text", text}, {"development", development}, {"advice", advice}} {
		if strings.TrimSpace(f.v) == "" {
			return nil, fmt.Errorf("%w: %s: write what the picture means, how it will develop, and what you advise", ErrEmpty, f.name)
		}
		if len(f.v) > MaxText {
			return nil, fmt.Errorf("%w: %s: %d bytes, the bound is %d", ErrTooLong, f.name, len(f.v), MaxText)
		}
	}
	sums, leftOut := sumsOf(p)
	body, err := json.Marshal(Body{Text: text, Development: development, Advice: advice, Picture: Fingerprint(p), Sums: sums, SumsLeftOut: leftOut})
	if err != nil {
		return nil, err
	}
	return &pb.Record{Id: ID(p.GetCrisis()), Kind: Kind, Crisis: p.GetCrisis(), Region: "NL",
		Classification: Classification, Body: body}, nil
}

// ResponseID is the id of an org's response of one sort to an assessment: one endorsement and one
// remark per responding org and assessment, each updated in place. The responder is part of the
// id so that the picture, which keys records by kind, region and id, shows every org's response;
// the assessment's origin, so that endorsing one org's assessment leaves the endorsement of
// another's as it was. Responses read by their body's assessment_origin and assessment_id, so a
// response of the older form RESPONSE:RESPONDER:ID still counts.
func ResponseID(response, responder string, assessment *pb.Record) string {
	id := fmt.Sprintf("%s:%s:%s:%s", response, responder, assessment.GetOrigin(), assessment.GetId())
	if len(id) > 128 {
		sum := sha256.Sum256([]byte(responder + "\x00" + assessment.GetOrigin() + "\x00" + assessment.GetId()))
		id = response + ":" + hex.EncodeToString(sum[:16])
	}
	return id
}

// NewResponse builds the record of org responder's response to an assessment.
func NewResponse(assessment *pb.Record, responder, response, text string) (*pb.Record, error) {
	switch response {
	case Endorse:
	case Remark:
		if strings.TrimSpace(text) == "" {
			return nil, fmt.Errorf("%w: text: a remark needs its text", ErrEmpty)
		}
	default:
		return nil, fmt.Errorf("assessment: response %q: use endorse or remark", response)
	}
	if len(text) > MaxText {
		return nil, fmt.Errorf("%w: text: %d bytes, the bound is %d", ErrTooLong, len(text), MaxText)
	}
	body, err := json.Marshal(ResponseBody{AssessmentOrigin: assessment.GetOrigin(), AssessmentID: assessment.GetId(),
		AssessmentVersion: assessment.GetVersion(), Response: response, Text: text})
	if err != nil {
		return nil, err
	}
	return &pb.Record{Id: ResponseID(response, responder, assessment), Kind: ResponseKind, Crisis: assessment.GetCrisis(),
		Region: assessment.GetRegion(), Classification: pb.Classification_INTERNAL, Body: body}, nil
}

// Response is one partner's response as a view shows it.
type Response struct {
	Org      string    `json:"org"`
	Response string    `json:"response"`
	Text     string    `json:"text,omitempty"`
	Version  int64     `json:"assessment_version"`
	At       time.Time `json:"at"`
	// Outdated is set when the response is to an earlier version of the assessment.
	Outdated bool `json:"outdated,omitempty"`
}

// Takeover is a slot of the picture whose entry is now a newer record of Source, over the
// differing records of the sources in Over.
type Takeover struct {
	Kind   string   `json:"kind"`
	Region string   `json:"region"`
	Key    string   `json:"key"`
	Source string   `json:"source"`
	Over   []string `json:"over"`
}

// View is the current assessment of a crisis next to the picture a node shows now.
type View struct {
	Record *pb.Record `json:"-"`
	Origin string     `json:"origin"`
	ID     string     `json:"id"`
	// Version and WrittenAt are the assessment's record version and update time.
	Version   int64     `json:"version"`
	WrittenAt time.Time `json:"written_at"`
	Body      Body      `json:"assessment"`
	// Changed says that the picture changed since the assessment was written. On the author's
	// own node it compares the content hash; elsewhere, where policies show a different part of
	// every source, it is set when a source changed.
	Changed bool `json:"picture_changed"`
	// ChangedSources names the sources that changed: that wrote or shared a record the picture
	// shows since the assessment was written, or one of whose records left the picture here since
	// (deleted or withdrawn: PictureResponse.removals). A source whose records another source's
	// newer records outrank in their slots wrote nothing, and is not among them (TakenOver).
	ChangedSources []string `json:"changed_sources"`
	// TakenOver names the slots whose entry is a changed source's new record and where another
	// source has a record that differs and is not shown: the slot's entry is now the changed
	// source's. On the author's node only sources whose entries differ from the assessment's
	// picture are named (one whose entries are the same did not hold the slot then).
	TakenOver []Takeover `json:"slots_taken_over"`
	// CannotTell names the sources, not among the changed ones, whose copy here may be behind
	// what they hold (they did not answer just now, or this node is still taking in what they
	// share): whether they changed cannot be told from here.
	CannotTell []string `json:"cannot_tell"`
	// NotReceived are the sources of the assessment's picture of which the picture here shows
	// no entry, and that withdrew or deleted none since: this node does not receive what they
	// shared with the author, and the figures here may differ from the assessment's.
	NotReceived []Cursor `json:"not_received"`
	// Exact is set when Changed came from comparing content hashes (the author's node).
	Exact bool `json:"exact"`
	// Now is the fingerprint of the picture as shown now.
	Now Picture `json:"picture_now"`
	// SumsKept says that the assessment kept its picture's sums (Body.Sums); one of an earlier
	// release did not, and SumsMoved is then empty: how much changed cannot be said.
	SumsKept bool `json:"sums_kept"`
	// SumsMoved are the sums (of a kind's field in a region) whose total or number of records
	// differs between the assessment's picture and the one here, in the picture's order: how
	// much the picture changed. On a partner's node, shown less of some sources than the author
	// (its policies), a sum may differ for that too, changed or not (see NotReceived).
	SumsMoved []Moved `json:"sums_moved"`
	// Minor says that the picture changed, but none of its sums moved: the change is in what
	// the picture does not add up (a text, a note, a date). Never set without SumsKept.
	Minor bool `json:"minor_change"`
	// Endorsed lists the orgs that endorsed it; Remarks the remarks, oldest first.
	Endorsed []Response `json:"endorsed"`
	Remarks  []Response `json:"remarks"`
}

// found is an assessment or a response in a picture, with when this node took it in: unset for
// its own records, and for one the picture gives beside another origin's in its entry.
type found struct {
	rec      *pb.Record
	received *timestamppb.Timestamp
}

// records are the records of a kind in a picture: its entries' and the records of other origins
// that an entry gives beside its own (disagreeing), where the picture keys records of one id
// from several origins as one entry.
func records(p *pb.PictureResponse, kind string) []found {
	var out []found
	for _, e := range p.GetEntries() {
		if e.Kind != kind {
			continue
		}
		out = append(out, found{e.GetRecord(), e.GetReceivedAt()})
		for _, r := range e.GetDisagreeing() {
			out = append(out, found{r, nil})
		}
	}
	return out
}

// later says whether record a is a later writing than b: updated later, or at the same time with
// a higher version.
func later(a, b *pb.Record) bool {
	ta, tb := a.GetUpdatedAt().AsTime(), b.GetUpdatedAt().AsTime()
	if !ta.Equal(tb) {
		return ta.After(tb)
	}
	return a.GetVersion() > b.GetVersion()
}

// All finds each origin's current assessment in a picture (the latest of its assessment records)
// and compares each with the picture: self is the trust domain of the node that shows it, and
// behind the sources whose copy here may be behind (see search.Behind). The node's own comes
// first, then the others, the latest written first. An assessment whose body is not one is left
// out; All fails only when every one is. It returns none when the picture holds no assessment.
func All(p *pb.PictureResponse, self string, behind []string) ([]*View, error) {
	latest := map[string]found{}
	for _, f := range records(p, Kind) {
		o := f.rec.GetOrigin()
		if cur, ok := latest[o]; !ok || later(f.rec, cur.rec) {
			latest[o] = f
		}
	}
	now := Fingerprint(p)
	sums, _ := sumsOf(p)
	responses := records(p, ResponseKind)
	var out []*View
	var errs []error
	for _, f := range latest {
		v, err := compare(p, now, sums, f, self, behind, responses)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, v)
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(out, func(i, j int) bool {
		if a, b := out[i].Origin == self, out[j].Origin == self; a != b {
			return a
		}
		if !out[i].WrittenAt.Equal(out[j].WrittenAt) {
			return out[i].WrittenAt.After(out[j].WrittenAt)
		}
		return out[i].Origin < out[j].Origin
	})
	return out, nil
}

// Current is the first of All: the node's own assessment when the picture holds one, else the
// latest written. It returns nil when the picture holds no assessment.
func Current(p *pb.PictureResponse, self string, behind []string) (*View, error) {
	all, err := All(p, self, behind)
	if err != nil || len(all) == 0 {
		return nil, err
	}
	return all[0], nil
}

// compare compares the assessment cur with the picture p, whose fingerprint is fp and whose sums
// are sums (all of them), and gives it the responses to it among responses.
func compare(p *pb.PictureResponse, fp Picture, sums []Sum, cur found, self string, behind []string, responses []found) (*View, error) {
	r := cur.rec
	v := &View{Record: r, Origin: r.GetOrigin(), ID: r.GetId(), Version: r.GetVersion(), WrittenAt: r.GetUpdatedAt().AsTime().UTC(),
		ChangedSources: []string{}, TakenOver: []Takeover{}, CannotTell: []string{}, NotReceived: []Cursor{}, SumsMoved: []Moved{},
		Endorsed: []Response{}, Remarks: []Response{}}
	if err := json.Unmarshal(r.GetBody(), &v.Body); err != nil {
		return nil, fmt.Errorf("assessment %s of %s: %w", r.GetId(), r.GetOrigin(), err)
	}
	v.Now = fp
	was := map[string]Cursor{}
	for _, c := range v.Body.Picture.Sources {
		was[c.Source] = c
	}
	now := map[string]Cursor{}
	for _, c := range v.Now.Sources {
		now[c.Source] = c
	}
	// A record deleted or withdrawn at its source leaves no newer update behind. A removal's
	// time is this node's, when it took the removal in; it counts when it is later than the
	// assessment's writing (the author's clock) or than this node's taking it in (its own
	// clock), whichever is earlier: a clock behind the author's hides none. A removal that
	// reached this node late (its subscription was down) may count that the author's picture
	// never held: it errs towards "changed".
	since := v.WrittenAt
	if cur.received != nil && cur.received.AsTime().Before(since) {
		since = cur.received.AsTime()
	}
	changed := map[string]bool{}
	for _, rm := range p.GetRemovals() {
		if counts(rm.Kind) && rm.At.AsTime().After(since) {
			changed[rm.Source] = true
		}
	}
	// An entry is new when its source wrote it, or shared it, since the assessment. A source
	// whose records another source's newer records outrank in their slots wrote nothing: its
	// entries are merely fewer, and it is not changed.
	var isNew func(e *pb.PictureEntry) bool
	if v.Origin == self {
		// On the author's node every time is this node's: a partner's record is new when this
		// node took it in after the assessment was written, its own when it was written after.
		// A record the picture did not show then (another source's outranked it) and shows now
		// came before, and is not new.
		v.Exact = true
		v.Changed = v.Now.Hash != v.Body.Picture.Hash
		isNew = func(e *pb.PictureEntry) bool {
			at := e.GetRecord().GetUpdatedAt()
			if e.ReceivedAt != nil {
				at = e.ReceivedAt
			}
			return at.AsTime().After(v.WrittenAt)
		}
	} else {
		// Elsewhere, where policies show a different part of every source, by the source's own
		// clock: an entry updated after the newest of its source the author's picture held. Not
		// one updated before the assessment was written that this node held before it took the
		// assessment in (by its own clock): the author's picture did not show it (another
		// source's record outranked it, which has left since), but it was there.
		isNew = func(e *pb.PictureEntry) bool {
			t := e.GetRecord().GetUpdatedAt().AsTime()
			w, ok := was[e.Source]
			if !ok {
				return t.After(v.WrittenAt)
			}
			if !t.After(w.Newest) {
				return false
			}
			in := t
			if e.ReceivedAt != nil {
				in = e.ReceivedAt.AsTime()
			}
			return t.After(v.WrittenAt) || in.After(since)
		}
	}
	var fresh []*pb.PictureEntry
	for _, e := range p.GetEntries() {
		if counts(e.Kind) && isNew(e) {
			fresh = append(fresh, e)
			changed[e.Source] = true
		}
	}
	if v.Exact {
		// What a source's records show is the same as in the assessment's picture: whatever
		// its removals or its times say, it did not change the picture.
		for src := range changed {
			if now[src].Hash == was[src].Hash {
				delete(changed, src)
			}
		}
	} else {
		v.Changed = len(changed) > 0
	}
	for src := range changed {
		v.ChangedSources = append(v.ChangedSources, src)
	}
	// A changed source's new entry whose slot holds another source's differing record: that
	// record is outranked now. On the author's node only when what that source's records show
	// differs from the assessment's picture (its record may have held the slot then).
	for _, e := range fresh {
		if !changed[e.Source] {
			continue
		}
		t := Takeover{Kind: e.Kind, Region: e.Region, Key: e.Key, Source: e.Source}
		for _, src := range e.Conflict {
			if v.Exact && was[src].Hash == now[src].Hash {
				continue
			}
			t.Over = append(t.Over, src)
		}
		if len(t.Over) > 0 {
			v.TakenOver = append(v.TakenOver, t)
		}
	}
	slices.Sort(v.ChangedSources)
	// A source of the assessment's picture of which the picture here shows nothing, and that
	// withdrew or deleted nothing since, is one this node does not receive.
	for _, c := range v.Body.Picture.Sources {
		if _, ok := now[c.Source]; !ok && !changed[c.Source] {
			v.NotReceived = append(v.NotReceived, c)
		}
	}
	for _, src := range behind {
		if !slices.Contains(v.ChangedSources, src) && !slices.Contains(v.CannotTell, src) {
			v.CannotTell = append(v.CannotTell, src)
		}
	}
	slices.Sort(v.CannotTell)
	if v.Body.Sums != nil {
		v.SumsKept = true
		v.SumsMoved = moved(v.Body.Sums, v.Body.SumsLeftOut, sums)
		v.Minor = v.Changed && len(v.SumsMoved) == 0
	}
	// One response of each sort per org: a responder that holds one of the older form
	// (RESPONSE:RESPONDER:ID) and one of the newer counts once, by the later.
	type read struct {
		rec *pb.Record
		b   ResponseBody
	}
	latest := map[[2]string]read{}
	for _, f := range responses {
		var b ResponseBody
		if json.Unmarshal(f.rec.GetBody(), &b) != nil || b.AssessmentOrigin != v.Origin || b.AssessmentID != v.ID {
			continue
		}
		k := [2]string{f.rec.GetOrigin(), b.Response}
		if cur, ok := latest[k]; !ok || later(f.rec, cur.rec) {
			latest[k] = read{f.rec, b}
		}
	}
	for _, x := range latest {
		rec, b := x.rec, x.b
		resp := Response{Org: rec.GetOrigin(), Response: b.Response, Text: b.Text, Version: b.AssessmentVersion,
			At: rec.GetUpdatedAt().AsTime().UTC(), Outdated: b.AssessmentVersion < v.Version}
		switch b.Response {
		case Endorse:
			v.Endorsed = append(v.Endorsed, resp)
		case Remark:
			v.Remarks = append(v.Remarks, resp)
		}
	}
	sort.Slice(v.Endorsed, func(i, j int) bool { return v.Endorsed[i].Org < v.Endorsed[j].Org })
	sort.Slice(v.Remarks, func(i, j int) bool { return v.Remarks[i].At.Before(v.Remarks[j].At) })
	return v, nil
}
