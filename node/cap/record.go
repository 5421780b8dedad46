package cap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Kind is the built-in kind of alert records.
const Kind = record.AlertKind

// Labels an imported alert's record carries.
const (
	// LabelRef is the record id that the alert last applied to the record would have had on its
	// own (RecordID of its sender and identifier): an Update or Cancel that references that alert
	// finds the record through it.
	LabelRef = "cap.ref"
	// LabelOrig is, on the record of an Update that came before the alert it references, the
	// record id of its first reference: the original, which is superseded when it comes late,
	// and which a later Update or Cancel may name alone.
	LabelOrig = "cap.orig"
	// LabelChain starts the labels (cap.was/HASH=N) by which a record says which alerts were
	// applied to it, each by the hash part of its RecordID, and its place N in the chain: the
	// alert it began with (1) and every Update since, the latest MaxChain of them. A deleted
	// record keeps them, so that an Update or a re-delivery that names one of a cancelled
	// chain's alerts is known as one (see cancelledChain).
	LabelChain = "cap.was/"
	// MaxChain bounds a record's chain labels, under record.MaxLabels: past it, the oldest go.
	MaxChain = 48
)

// chainLabel is the chain label of the alert whose record id is id.
func chainLabel(id string) string {
	return LabelChain + id[strings.LastIndexByte(id, '-')+1:]
}

// ScopeOf is the CAP scope of a record's classification when its body names none: public is
// Public, internal is Restricted, confidential and secret are Private.
func ScopeOf(c pb.Classification) string {
	switch c {
	case pb.Classification_PUBLIC:
		return "Public"
	case pb.Classification_INTERNAL:
		return "Restricted"
	}
	return "Private"
}

var statusOf = map[string]pb.Status{
	"Actual": pb.Status_ACTUAL, "Exercise": pb.Status_EXERCISE, "Test": pb.Status_TEST, "Draft": pb.Status_DRAFT,
}

// StatusOf is the record status of a CAP status. System messages belong to the alerting network
// itself and have none.
func StatusOf(s string) (pb.Status, error) {
	st, ok := statusOf[s]
	if !ok {
		return 0, fieldErr("alert.status", "%q has no record status: System messages serve the alerting network itself and are not stored; Actual, Exercise, Test and Draft are", s)
	}
	return st, nil
}

// StatusName is the CAP status of a record status.
func StatusName(s pb.Status) string {
	for name, st := range statusOf {
		if st == s {
			return name
		}
	}
	return "Actual"
}

var idUnsafe = regexp.MustCompile(`[^A-Za-z0-9._:-]+`)

// RecordID is the id of the record an alert becomes: the same sender and identifier always give
// the same id, so importing an alert twice writes one record. It keeps a readable part of the
// identifier and a hash of sender and identifier, which tells two senders' alerts apart.
func RecordID(sender, identifier string) string {
	sum := sha256.Sum256([]byte(sender + "," + identifier))
	part := strings.Trim(idUnsafe.ReplaceAllString(identifier, "-"), "-._:")
	if len(part) > 80 {
		part = part[:80]
	}
	if part != "" {
		part += "-"
	}
	return "cap-" + part + hex.EncodeToString(sum[:8])
}

// ImportOptions fill in what CAP does not say.
type ImportOptions struct {
	// Crisis and Region of a new record. Defaults: all, and NL (the whole country).
	Crisis, Region string
	// Classification overrides the scope's. Unspecified: the node derives it from the scope
	// under its cap.scopes.
	Classification pb.Classification
	// Exercise names the exercise of an Exercise alert. CAP has no field for it: empty takes the
	// alert's note, which must then be an exercise name.
	Exercise string
}

// exerciseInNote is the exercise an Exercise alert's note names: the whole note, or, when the
// note says more, what comes before its first colon (oefening-zeeland: Situatierapport …), as
// FromRecord writes it.
func exerciseInNote(note string) string {
	note = strings.TrimSpace(note)
	if name, _, ok := strings.Cut(note, ":"); ok && exerciseNameErr("alert.note", strings.TrimSpace(name)) == nil {
		return strings.TrimSpace(name)
	}
	return note
}

// exerciseNameErr checks an exercise name as the node does (record.CheckExerciseName), so that
// every exercise a node can start takes CAP alerts.
func exerciseNameErr(field, name string) *Error {
	var fe *record.FieldError
	if err := record.CheckExerciseName(field, name); errors.As(err, &fe) {
		return fieldErr(fe.Field, "%s", fe.Reason)
	}
	return nil
}

// ToRecord is the alert record an alert becomes. Its classification is left unspecified unless
// opts set one: the node derives it from the body's scope (record.Checker.Scopes).
func ToRecord(a *Alert, opts ImportOptions) (*pb.Record, error) {
	st, err := StatusOf(a.Status)
	if err != nil {
		return nil, err
	}
	rec := &pb.Record{
		Id: RecordID(a.Sender, a.Identifier), Kind: Kind, Crisis: opts.Crisis, Region: opts.Region,
		Classification: opts.Classification, Status: st,
		Labels: map[string]string{LabelRef: RecordID(a.Sender, a.Identifier)},
	}
	rec.Labels[chainLabel(rec.Id)] = "1"
	if rec.Crisis == "" {
		rec.Crisis = db.AllCrises
	}
	if rec.Region == "" {
		rec.Region = "NL"
	}
	if st == pb.Status_EXERCISE {
		name := opts.Exercise
		if name == "" {
			name = exerciseInNote(a.Note)
			if name == "" {
				return nil, fieldErr("alert.status", "an Exercise alert must name its exercise, and CAP has no field for it: pass --exercise NAME, or put the name in <note>")
			}
			if err := exerciseNameErr("alert.note", name); err != nil {
				return nil, fieldErr(err.Field, "%s, or pass --exercise NAME", err.Reason)
			}
		} else if err := exerciseNameErr("exercise", name); err != nil {
			return nil, err
		}
		rec.Exercise = name
	} else if opts.Exercise != "" {
		return nil, fieldErr("exercise", "the alert's status is %s, not Exercise: leave --exercise out", a.Status)
	}
	if rec.Body, err = json.Marshal(a); err != nil {
		return nil, err
	}
	return rec, nil
}

// ExportOptions fill in what a record does not say.
type ExportOptions struct {
	// Language of the info block of a sitrep. Default nl-NL.
	Language string
	// Previous is the version before the record's, as RecordService.Versions tells it: a sitrep
	// of version 2 or later is written as an Update that references it, by its identifier and
	// its time. Without it (the node keeps no history of a record that is not actual, and only
	// a window of an actual one's), the sitrep is written as an Alert, whose note says why.
	Previous *pb.RecordVersion
}

// Export is the CAP alert of a record, as FromRecord writes it, with what the record does not
// carry read through the node's RecordService: for a sitrep of version 2 or later, the version
// before it, which its Update references.
func Export(ctx context.Context, c pb.RecordServiceClient, r *pb.Record, opts ExportOptions) (*Alert, error) {
	if r.Kind == "sitrep" && r.Version > 1 && opts.Previous == nil {
		resp, err := c.Versions(ctx, &pb.VersionsRequest{Id: r.Id, Mode: db.ModeOf(r).Proto()})
		if err != nil {
			return nil, err
		}
		for _, v := range resp.Versions {
			if v.Version == r.Version-1 {
				opts.Previous = v
			}
		}
	}
	return FromRecord(r, opts)
}

// FromRecord is the CAP alert of a record: the alert its body holds for an alert record, and
// an informational alert for a sitrep. The record's status and classification decide the
// alert's status and scope: a record that is not public is never written with scope Public.
func FromRecord(r *pb.Record, opts ExportOptions) (*Alert, error) {
	var a *Alert
	switch r.Kind {
	case Kind:
		a = &Alert{}
		if err := json.Unmarshal(r.Body, a); err != nil {
			return nil, fmt.Errorf("cap: record %s: body: %w", r.Id, err)
		}
		fillHeader(a, r)
	case "sitrep":
		var err error
		if a, err = fromSitrep(r, opts); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("cap: record %s is of kind %s: only alert and sitrep records export as CAP", r.Id, r.Kind)
	}
	a.Status = StatusName(r.Status)
	// CAP has no field for an exercise: its name goes first in the note, which the importer
	// reads (exerciseInNote). An alert's own note is the sender's and stays as it came: one that
	// names no exercise was imported with --exercise, as its next importer must be.
	switch {
	case r.Status != pb.Status_EXERCISE || exerciseInNote(a.Note) == r.Exercise:
	case a.Note == "":
		a.Note = r.Exercise
	case r.Kind != Kind:
		a.Note = r.Exercise + ": " + a.Note
	}
	switch {
	case r.Classification == pb.Classification_PUBLIC:
		if a.Scope == "Private" {
			// Whom a Private alert was for is not for the public (a record stored before such
			// a mix was refused); a Public alert's addresses are its own to give.
			a.Addresses = ""
		}
		a.Scope = "Public"
	case a.Scope == "Restricted" || a.Scope == "Private":
	default:
		a.Scope = ScopeOf(r.Classification)
	}
	if err := a.Check(); err != nil {
		return nil, fmt.Errorf("record %s: %w", r.Id, err)
	}
	return a, nil
}

// CheckRecord checks an alert record about to be stored as what the feed and export must write
// of it, as an import is checked: a body that is no CAP 1.2 alert (an identifier with a space, a
// polygon of words, a reference of another form) would be stored and then left out of the feed
// and refused by export, without a word to its writer. Its status must be the record's own mode
// (Actual for an actual record): the record's status is what goes out, so a System or Test body
// in an actual record would go out, to the public, as an Actual alert.
func CheckRecord(r *pb.Record) error {
	var body struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return fmt.Errorf("cap: body: %w", err)
	}
	if want := StatusName(r.Status); body.Status != want {
		return fmt.Errorf("alert.status: %q, but this is an %s record, which goes out as %q: write the body's status as the record's mode (an exercise's record with --exercise, a test's with --status test); CAP System messages are not stored", body.Status, strings.ToLower(want), want)
	}
	_, err := FromRecord(r, ExportOptions{})
	return err
}

// fillHeader fills what an alert record's body leaves out from the record itself.
func fillHeader(a *Alert, r *pb.Record) {
	if a.Identifier == "" {
		a.Identifier = fmt.Sprintf("%s.%s.v%d", r.Origin, r.Id, r.Version)
	}
	if a.Sender == "" {
		a.Sender = r.Origin
	}
	if a.Sent == "" {
		a.Sent = FormatTime(r.UpdatedAt.AsTime())
	}
	if a.MsgType == "" {
		a.MsgType = "Alert"
	}
}

// FormatTime writes t as a CAP date-time.
func FormatTime(t time.Time) string {
	return t.Round(time.Second).Format(TimeLayout)
}

var sitrepSeverity = map[string]string{"low": "Minor", "medium": "Moderate", "high": "Severe", "critical": "Extreme"}

// fromSitrep writes a situation report as an informational alert: the first version as an
// Alert, every later one as an Update that references the version before it (opts.Previous),
// so that a receiver applies it to the record the earlier versions made.
func fromSitrep(r *pb.Record, opts ExportOptions) (*Alert, error) {
	var s struct {
		Title, Summary, Severity string
	}
	if err := json.Unmarshal(r.Body, &s); err != nil {
		return nil, fmt.Errorf("cap: record %s: body: %w", r.Id, err)
	}
	lang := opts.Language
	if lang == "" {
		lang = "nl-NL"
	}
	sev := sitrepSeverity[s.Severity]
	if sev == "" {
		sev = "Unknown"
	}
	a := &Alert{
		Identifier: sitrepIdentifier(r.Origin, r.Id, r.Version), Sender: r.Origin,
		Sent: FormatTime(r.UpdatedAt.AsTime()), MsgType: "Alert",
		Note: fmt.Sprintf("Situation report %s, version %d, crisis %s.", r.Id, r.Version, r.Crisis),
		Info: []Info{{
			Language: lang, Category: []string{"Other"}, Event: "Situation report", ResponseType: []string{"None"},
			Urgency: "Unknown", Severity: sev, Certainty: "Observed", SenderName: r.Origin,
			Headline: s.Title, Description: s.Summary,
			Parameter: []NamedValue{{ValueName: "knooppunt:crisis", Value: r.Crisis}, {ValueName: "knooppunt:record", Value: r.Id}},
			Area:      []Area{RegionArea(r.Region)},
		}},
	}
	switch prev := opts.Previous; {
	case r.Version <= 1:
	case prev != nil && prev.Version == r.Version-1 && !prev.Deleted && prev.UpdatedAt != nil:
		a.MsgType = "Update"
		a.References = fmt.Sprintf("%s,%s,%s", r.Origin, sitrepIdentifier(r.Origin, r.Id, prev.Version), FormatTime(prev.UpdatedAt.AsTime()))
	case prev != nil && prev.Deleted:
		// The record was deleted and written anew: a new alert, not an Update of the old one.
	default:
		// CAP has an Update name when the version it updates was sent; a guess would mislead.
		a.Note += fmt.Sprintf(" Not written as an Update of version %d: the node no longer knows when that was sent.", r.Version-1)
	}
	return a, nil
}

// sitrepIdentifier is the CAP identifier of one version of a sitrep: each version is an alert
// of its own.
func sitrepIdentifier(origin, id string, version int64) string {
	return fmt.Sprintf("%s.%s.v%d", origin, id, version)
}

// RegionArea is the area of a safety region (VR01 to VR25), or of the whole country (NL).
func RegionArea(region string) Area {
	if region == "NL" || region == "" {
		return Area{AreaDesc: "Nederland", Geocode: []NamedValue{{ValueName: "ISO 3166-1", Value: "NL"}}}
	}
	return Area{AreaDesc: "Veiligheidsregio " + region, Geocode: []NamedValue{{ValueName: "veiligheidsregio", Value: region}}}
}
