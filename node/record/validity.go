package record

import (
	"encoding/json"
	"time"
	_ "time/tzdata" // docZone loads on a host without a zone database

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The validity of a document: a Q&A, guidance or permit rule that is no longer, or not yet, in
// force. Search and the picture mark such records; they never hide them, because a reader may
// need to know what was said before.
const (
	Superseded  = "superseded"
	Expired     = "expired"
	NotYetValid = "not_yet_valid"
)

// Validity says whether a record is in force at now: "" when it is, or Superseded when its body
// names a superseded_by, Expired when its body's valid_until or the record's valid_until has
// passed, NotYetValid when its body's valid_from lies ahead. Superseded wins over the others.
// Dates are RFC 3339 times or plain dates (YYYY-MM-DD, which run to the end of the day in UTC);
// a date that does not parse is ignored: a node refuses to write one (Checker.CheckPut), but a
// peer's record is not checked so far.
func Validity(r *pb.Record, now time.Time) string {
	// Members by their exact keys, as ValidityOfBody and the write check read them: decoding into
	// a struct would also take "Valid_Until".
	var members map[string]json.RawMessage
	if len(r.GetBody()) > 0 {
		_ = json.Unmarshal(r.GetBody(), &members) // a body that is not an object has no validity fields
	}
	str := func(k string) string {
		var v string
		_ = json.Unmarshal(members[k], &v) // absent, or not a string: none
		return v
	}
	return docDates{SupersededBy: str("superseded_by"), ValidFrom: str("valid_from"), ValidUntil: str("valid_until")}.validity(r, now)
}

// ValidityOfBody is Validity for a record whose body the caller decoded already (nil when it is
// not an object).
func ValidityOfBody(body map[string]any, r *pb.Record, now time.Time) string {
	str := func(k string) string { v, _ := body[k].(string); return v }
	return docDates{SupersededBy: str("superseded_by"), ValidFrom: str("valid_from"), ValidUntil: str("valid_until")}.validity(r, now)
}

// docDates are the body fields a document's validity reads.
type docDates struct {
	SupersededBy, ValidFrom, ValidUntil string
}

func (b docDates) validity(r *pb.Record, now time.Time) string {
	if b.SupersededBy != "" {
		return Superseded
	}
	if r.GetValidUntil() != nil && !r.GetValidUntil().AsTime().After(now) {
		return Expired
	}
	if t, ok := docTime(b.ValidUntil, true); ok && !t.After(now) {
		return Expired
	}
	if t, ok := docTime(b.ValidFrom, false); ok && t.After(now) {
		return NotYetValid
	}
	return ""
}

// docZone is where a plain date in a document is a day: the Netherlands, whose crisis partners
// write them. A guidance valid until 2026-12-31 holds until midnight there, not at 01:00.
var docZone = func() *time.Location {
	z, err := time.LoadLocation("Europe/Amsterdam") // time/tzdata is linked in: see below
	if err != nil {
		panic(err)
	}
	return z
}()

// docTime parses an RFC 3339 time or a date. A date is a day in docZone: as an end, the end of
// that day.
func docTime(s string, end bool) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	t, err := time.ParseInLocation(time.DateOnly, s, docZone)
	if err != nil {
		return time.Time{}, false
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, true
}
