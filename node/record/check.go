package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// DefaultMaxBody is the largest body a node accepts unless configured otherwise: 1 MiB.
const DefaultMaxBody = 1 << 20

// Limits on the parts of a record.
const (
	MaxLabels     = 64
	MaxLabelValue = 256
	// MaxIDLength is the longest record id (and exercise name), in bytes.
	MaxIDLength = 128
)

var (
	idPattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	kindName     = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
	crisisName   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	regionCode   = regexp.MustCompile(`^(VR(0[1-9]|1[0-9]|2[0-5])|NL)$`)
	labelKey     = regexp.MustCompile(`^[a-z0-9][a-z0-9._/-]{0,62}$`)
	trustDomain  = regexp.MustCompile(`^[a-z0-9._-]{1,255}$`)
	validClasses = "public, internal, confidential or secret"
)

// FieldError refuses a record because of one field.
type FieldError struct {
	// Field is the path of the field, such as record.kind or record.body.beds_free.
	Field string
	// Code is InvalidArgument, or ResourceExhausted for a body over the limit.
	Code   codes.Code
	Reason string
	// cause, when set, is what a caller may tell this refusal by (errors.Is), such as
	// ErrOpenPhrase.
	cause error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func (e *FieldError) Unwrap() error { return e.cause }

func invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Code: codes.InvalidArgument, Reason: fmt.Sprintf(format, args...)}
}

// Checker checks records against the declared kinds and the node's limits.
type Checker struct {
	Kinds *Kinds
	// Origin is the trust domain of the node's org; it becomes every own record's origin.
	Origin string
	// MaxBody is the largest body in bytes. Zero means DefaultMaxBody.
	MaxBody int
	// Scopes map the CAP scope of an alert record's body to the classification the record gets
	// when the writer leaves it unspecified (an imported CAP alert). Nil means AlertScopes.
	Scopes map[string]pb.Classification
}

// AlertScopes map a CAP scope to a classification unless the node config says otherwise
// (cap.scopes): Public is public, Restricted internal, Private confidential.
var AlertScopes = map[string]pb.Classification{
	"Public":     pb.Classification_PUBLIC,
	"Restricted": pb.Classification_INTERNAL,
	"Private":    pb.Classification_CONFIDENTIAL,
}

// classifyAlert gives an alert record written without a classification the one its CAP scope
// maps to. Any other record, or an alert that names its classification, is left as it is.
func (c *Checker) classifyAlert(r *pb.Record) {
	if r.Kind != AlertKind || r.Classification != pb.Classification_CLASSIFICATION_UNSPECIFIED {
		return
	}
	scopes := c.Scopes
	if scopes == nil {
		scopes = AlertScopes
	}
	if cl, ok := scopes[alertScope(r.Body)]; ok {
		r.Classification = cl
	}
}

// alertScope is the CAP scope an alert record's body names; "" for none, or a body that is not
// JSON.
func alertScope(body []byte) string {
	var h struct {
		Scope string `json:"scope"`
	}
	json.Unmarshal(body, &h)
	return h.Scope
}

// checkPublicAlert refuses a public alert record of CAP scope Private, an alert for the addresses
// it names: the node serves its public alerts in an open feed, as scope Public, to anyone, and
// such an alert went out with its addresses (review J, F2). A Restricted alert may be published
// on purpose (import --classification public): the record's classification decides its scope.
func checkPublicAlert(r *pb.Record) error {
	if r.Kind != AlertKind || r.Classification != pb.Classification_PUBLIC || alertScope(r.Body) != "Private" {
		return nil
	}
	return invalid("record.body.scope", "%q, an alert for the addresses it names, but the record is public, and a public alert goes into the node's open feed, to anyone: make the scope \"Public\", or classify the record as its scope says (leave the classification out, and cap.scopes gives it)", "Private")
}

// Times the store can hold: it keeps a time as nanoseconds since 1970 in an int64.
var (
	minTime = time.Unix(0, math.MinInt64).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
	// The same, to the whole second within them, as messages and docs/api.md name them: the
	// store's first second, 1677-09-21T00:12:43Z, starts before the first time it holds.
	firstSecond = minTime.Truncate(time.Second).Add(time.Second)
	lastSecond  = maxTime.Truncate(time.Second)
)

// timeRange says which times a node can hold, for a refusal of one it cannot.
func timeRange() string {
	return fmt.Sprintf("use a time between %s and %s", firstSecond.Format(time.RFC3339), lastSecond.Format(time.RFC3339))
}

// CheckTime checks a timestamp given in field: nil, or a valid time that the store can hold
// (1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z). A time outside that range would wrap around
// when stored or compared, so it is refused rather than clamped: the caller learns that the
// value was wrong. The refusal is in the node's words, never the protobuf library's (review AF,
// AF7).
func CheckTime(field string, ts *timestamppb.Timestamp) error {
	if ts == nil {
		return nil
	}
	if ts.Nanos < 0 || ts.Nanos >= 1e9 {
		return invalid(field, "nanos %d is not a fraction of a second: use 0 to 999999999", ts.Nanos)
	}
	if ts.CheckValid() != nil {
		// Before the year 1 or after 9999: no date of either can be written in RFC 3339.
		return invalid(field, "%d seconds since 1970 is outside the times a node can hold: %s", ts.Seconds, timeRange())
	}
	if t := ts.AsTime(); t.Before(minTime) || t.After(maxTime) {
		return invalid(field, "%s is outside the times a node can hold: %s", t.Format(time.RFC3339), timeRange())
	}
	return nil
}

// CheckDuration checks a duration given in field: nil, or one that a node can hold (a Go
// time.Duration, some 292 years either way). The refusal is in the node's words, never the
// protobuf library's (review AF, AF7); what range a field takes is for its caller to check.
func CheckDuration(field string, d *durationpb.Duration) error {
	switch {
	case d == nil:
		return nil
	case d.Nanos <= -1e9 || d.Nanos >= 1e9:
		return invalid(field, "nanos %d is not a fraction of a second: use -999999999 to 999999999", d.Nanos)
	case (d.Seconds > 0 && d.Nanos < 0) || (d.Seconds < 0 && d.Nanos > 0):
		return invalid(field, "%d seconds and %d nanos have opposite signs: give both the sign of the duration, such as \"-1.5s\" for seconds -1, nanos -500000000", d.Seconds, d.Nanos)
	case d.Seconds > int64(math.MaxInt64/time.Second) || d.Seconds < int64(math.MinInt64/time.Second):
		return invalid(field, "%d seconds is beyond what a node can hold, some 292 years either way: give a duration in seconds, such as \"3600s\"", d.Seconds)
	}
	return nil
}

// CheckText checks a string field that names something a person typed (an actor, a subject, a
// peer's name): valid UTF-8 of at most max bytes without a control or invisible character
// (policy.Hidden). what, when not "", says what to give instead.
func CheckText(field, s string, max int, what string) error {
	var why string
	switch {
	case len(s) > max:
		why = fmt.Sprintf("%d bytes is over the limit of %d", len(s), max)
	case !utf8.ValidString(s):
		why = "not valid UTF-8"
	default:
		if why = HiddenAt(s, policy.Hidden); why == "" {
			return nil
		}
	}
	if what != "" {
		why += ": " + what
	}
	return invalid(field, "%s", why)
}

// HiddenAt says where s holds a character that refused names, in the words every check of
// typed text refuses it with: "holds a control or invisible character (U+202E) at byte 3"; ""
// when s holds none. CheckText, a label's value, a step's reason (api.CheckReason) and a stated
// purpose (peerserver.CheckPurpose) each name their field and add what to write instead.
func HiddenAt(s string, refused func(rune) bool) string {
	i := strings.IndexFunc(s, refused)
	if i < 0 {
		return ""
	}
	c, _ := utf8.DecodeRuneInString(s[i:])
	return fmt.Sprintf("holds a control or invisible character (U+%04X) at byte %d", c, i)
}

// CheckID checks a record id as it appears in field.
func CheckID(field, id string) error {
	if !utf8.ValidString(id) {
		return invalid(field, "invalid UTF-8")
	}
	if !idPattern.MatchString(id) {
		return invalid(field, "%s is not a record id: use 1 to 128 of A-Z a-z 0-9 . _ : -, starting with a letter or digit", policy.Quote(id))
	}
	return nil
}

// CheckKindName checks the form of a kind's name as it appears in field (shelter.capacity), not
// whether this node knows the kind: a partner's kind may be one it does not.
func CheckKindName(field, name string) error {
	if !kindName.MatchString(name) || len(name) > 128 {
		return invalid(field, "%s is not a kind's name: use at most 128 bytes of lower-case words of a-z 0-9 _ joined by dots, such as shelter.capacity", policy.Quote(name))
	}
	return nil
}

// CheckCrisis checks a crisis name as it appears in field.
func CheckCrisis(field, name string) error {
	if !crisisName.MatchString(name) {
		return invalid(field, "%s is not a crisis name: use 1 to 64 of a-z 0-9 . _ -, such as oekraine", policy.Quote(name))
	}
	return nil
}

// CheckRegion checks a region code as it appears in field. A record's NL is about the country
// as a whole; a filter's NL keeps those records, not every region's (review I, F17).
func CheckRegion(field, code string) error {
	if !regionCode.MatchString(code) {
		if strings.HasPrefix(field, "record.") {
			return invalid(field, "%s is not a region: use a safety-region code VR01 to VR25, or NL for the country as a whole", policy.Quote(code))
		}
		return invalid(field, "%s is not a region: use a safety-region code VR01 to VR25, or NL for the records about the country as a whole; leave it out for every region", policy.Quote(code))
	}
	return nil
}

// CheckPut checks a record a client wants to write and normalises it for the store: the origin
// is set, the body compacted, and fields the node owns are cleared. It never changes a record it
// refuses in a way the caller could observe, beyond those fields.
func (c *Checker) CheckPut(r *pb.Record) error {
	if r == nil {
		return invalid("record", "missing")
	}
	for _, f := range []struct{ name, value string }{
		{"record.id", r.Id}, {"record.origin", r.Origin}, {"record.kind", r.Kind},
		{"record.crisis", r.Crisis}, {"record.region", r.Region},
	} {
		if !utf8.ValidString(f.value) {
			return invalid(f.name, "invalid UTF-8")
		}
	}
	if r.Id != "" {
		if err := CheckID("record.id", r.Id); err != nil {
			return err
		}
	}
	if r.Origin != "" && r.Origin != c.Origin {
		return invalid("record.origin", "%q is not this node's org %q: leave it empty, the node sets it", r.Origin, c.Origin)
	}
	if r.Kind == "" {
		return invalid("record.kind", "missing: use one of %s", QuoteAll(c.Kinds.Names()))
	}
	kind := c.Kinds.Get(r.Kind)
	if kind == nil {
		return invalid("record.kind", "unknown kind %q: use one of %s, or declare it in the node config", r.Kind, QuoteAll(c.Kinds.Names()))
	}
	if err := CheckCrisis("record.crisis", r.Crisis); err != nil {
		return err
	}
	if err := CheckRegion("record.region", r.Region); err != nil {
		return err
	}
	c.classifyAlert(r)
	if err := CheckClassification("record.classification", r.Classification, false); err != nil {
		return err
	}
	if err := checkPublicAlert(r); err != nil {
		return err
	}
	if r.Version < 0 {
		return invalid("record.version", "%d is negative: send the version you last read, or 0", r.Version)
	}
	if r.Tombstone {
		return invalid("record.tombstone", "a Put cannot delete: call Delete")
	}
	if err := checkLabels("record.labels", r.Labels, harmfulInLabel); err != nil {
		return err
	}
	if err := CheckTime("record.valid_until", r.ValidUntil); err != nil {
		return err
	}
	if err := checkStatus("record.status", "record.exercise", r.Status, r.Exercise); err != nil {
		return err
	}
	body, err := c.checkBody(kind, r.Body)
	if err != nil {
		return err
	}
	if _, err := Attachments(body); err != nil {
		return err
	}
	var doc struct {
		SupersededBy string `json:"superseded_by"`
	}
	if json.Unmarshal(body, &doc) == nil && doc.SupersededBy != "" && doc.SupersededBy == r.Id {
		// It would read as replaced, and send the reader to itself for what replaced it.
		return invalid("record.body.superseded_by", "%q is this record itself: name the record that replaces it", doc.SupersededBy)
	}
	r.Body = body
	r.Origin = c.Origin
	r.UpdatedAt = nil
	return nil
}

// CheckExerciseName checks an exercise name in field: the rules of a record id, such as
// oefening-2026-12-vr09.
func CheckExerciseName(field, name string) error {
	if !utf8.ValidString(name) {
		return invalid(field, "invalid UTF-8")
	}
	if !idPattern.MatchString(name) {
		return invalid(field, "%s is not an exercise name: use 1 to 128 of A-Z a-z 0-9 . _ : -, starting with a letter or digit, such as oefening-2026-12-vr09", policy.Quote(name))
	}
	return nil
}

// CheckMode checks the mode of a read in field (nil: actual): an exercise mode names its
// exercise, and no other mode names one.
func CheckMode(field string, m *pb.Mode) error {
	return checkStatus(field+".status", field+".exercise", m.GetStatus(), m.GetExercise())
}

// checkStatus checks a status and the exercise that goes with it.
func checkStatus(statusField, exerciseField string, st pb.Status, exercise string) error {
	if _, ok := pb.Status_name[int32(st)]; !ok {
		return invalid(statusField, "%d is not a status: use ACTUAL, EXERCISE, TEST or DRAFT", st)
	}
	if st == pb.Status_EXERCISE {
		if exercise == "" {
			return invalid(exerciseField, "missing: an exercise record names its exercise, such as oefening-2026-12-vr09")
		}
		return CheckExerciseName(exerciseField, exercise)
	}
	if exercise != "" {
		return invalid(exerciseField, "%q is named, but the status is %s: only an EXERCISE record or read names an exercise", exercise, st)
	}
	return nil
}

// CheckClassification checks a classification in field. With optional, unspecified is allowed.
func CheckClassification(field string, cl pb.Classification, optional bool) error {
	if cl == pb.Classification_CLASSIFICATION_UNSPECIFIED && optional {
		return nil
	}
	if cl == pb.Classification_CLASSIFICATION_UNSPECIFIED {
		// In the API's JSON the names are the enum's: PUBLIC, INTERNAL and so on.
		return invalid(field, "missing: set it to %s (in REST JSON PUBLIC, INTERNAL, CONFIDENTIAL or SECRET)", validClasses)
	}
	if cl < pb.Classification_PUBLIC || cl > pb.Classification_SECRET {
		return invalid(field, "%d is not a classification: use %s", int32(cl), validClasses)
	}
	return nil
}

// CheckLabelSelector checks the labels of a selector in field.
func CheckLabelSelector(field string, labels map[string]string) error {
	return checkLabels(field, labels, harmfulInLabel)
}

// CheckReceivedLabels checks the labels of a record a peer sent as an own record's are checked,
// but for the characters of their values: a node of an earlier release took any UTF-8 there, and
// a partner's record it wrote so is still taken (review AG, AG3).
func CheckReceivedLabels(field string, labels map[string]string) error {
	return checkLabels(field, labels, nil)
}

// harmfulInLabel names the characters a label's value may not hold, as they read otherwise than
// they are in a listing and on a terminal: C0 and C1 controls but tab (a line break, an escape),
// the bidi controls (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069), the line and
// paragraph separators (U+2028, U+2029) and the tag characters (U+E0000 to U+E007F). Other
// invisible characters are parts of what people write: "⚠️" ends in U+FE0F, and U+200D joins
// an emoji of a family; earlier releases took them, and records hold them (review AG, AG3).
func harmfulInLabel(c rune) bool {
	return c != '\t' && unicode.IsControl(c) || unicode.Is(unicode.Bidi_Control, c) ||
		c == '\u2028' || c == '\u2029' || c >= 0xE0000 && c <= 0xE007F
}

// checkLabels checks labels in field; refused, when not nil, names what a value may not hold.
func checkLabels(field string, labels map[string]string, refused func(rune) bool) error {
	if len(labels) > MaxLabels {
		return invalid(field, "%d labels is over the limit of %d", len(labels), MaxLabels)
	}
	for k, v := range labels {
		if !utf8.ValidString(k) {
			return invalid(field, "invalid UTF-8 in the key %s", policy.Quote(k))
		}
		if !labelKey.MatchString(k) {
			return invalid(field+"."+k, "%s is not a label key: use 1 to 63 of a-z 0-9 . _ / -, starting with a letter or digit", policy.Quote(k))
		}
		if !utf8.ValidString(v) {
			return invalid(field+"."+k, "invalid UTF-8")
		}
		if len(v) > MaxLabelValue {
			return invalid(field+"."+k, "value is %d bytes, over the limit of %d", len(v), MaxLabelValue)
		}
		if refused == nil {
			continue
		}
		if why := HiddenAt(v, refused); why != "" {
			return invalid(field+"."+k, "the value %s: write it as plain text on one line", why)
		}
	}
	return nil
}

// jsonSpace is the white space JSON allows between tokens.
const jsonSpace = " \t\r\n"

// checkBody checks that the body is a UTF-8 JSON object within the size limit and the kind's
// schema, and returns it compacted.
func (c *Checker) checkBody(kind *Kind, body []byte) ([]byte, error) {
	limit := c.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	if len(body) > limit {
		return nil, &FieldError{Field: "record.body", Code: codes.ResourceExhausted,
			Reason: fmt.Sprintf("%d bytes is over the limit of %d bytes", len(body), limit)}
	}
	// Only JSON's own white space makes a body blank: bytes.TrimSpace would also take U+00A0
	// and U+0085, which are not JSON, and turn such a body into {}.
	if len(bytes.Trim(body, jsonSpace)) == 0 {
		body = []byte("{}")
	}
	if !utf8.Valid(body) {
		return nil, invalid("record.body", "invalid UTF-8")
	}
	if !json.Valid(body) {
		return nil, notJSON(body)
	}
	if trimmed := bytes.Trim(body, jsonSpace); trimmed[0] != '{' {
		return nil, invalid("record.body", "must be a JSON object, such as {\"beds_free\": 12}")
	}
	// Before the schema: its check costs what a number's exponent says, and readers disagree on
	// a key given twice.
	if fe := scanBody(body, "record.body"); fe != nil {
		return nil, fe
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return nil, invalid("record.body", "not JSON: %v", err)
	}
	if fe := kind.checkBody(doc); fe != nil {
		return nil, fe
	}
	obj, _ := doc.(map[string]any)
	if fe := kind.checkAggregates(obj); fe != nil {
		return nil, fe
	}
	if fe := checkDocDates(obj); fe != nil {
		return nil, fe
	}
	var out bytes.Buffer
	if err := json.Compact(&out, body); err != nil {
		return nil, invalid("record.body", "not JSON: %v", err)
	}
	return out.Bytes(), nil
}

// notJSON refuses a body that is not JSON, saying where: a body may be tens of kilobytes.
func notJSON(body []byte) *FieldError {
	var v any
	err := json.Unmarshal(body, &v)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return invalid("record.body", "not JSON: %v", err)
	}
	// Offset is the bytes read when the error was found: the offending byte is the last of them.
	at := max(se.Offset, 1)
	line := 1 + bytes.Count(body[:at-1], []byte("\n"))
	col := at - int64(bytes.LastIndexByte(body[:at-1], '\n')+1)
	return invalid("record.body", "not JSON: %v, at byte %d (line %d, column %d)", err, at, line, col)
}

// MaxAggregate is the largest magnitude of a value in a field that a kind aggregates: beyond
// 2^53 a float64 sum loses units, and a few such values make it infinite.
const MaxAggregate = 1 << 53

var maxAggregate = new(big.Float).SetInt64(MaxAggregate)

// checkAggregates refuses a number above MaxAggregate in magnitude in a field that k sums on the
// picture, and a pair of them out of the order k's AtMost says. obj is the decoded body (numbers
// as json.Number).
func (k *Kind) checkAggregates(obj map[string]any) *FieldError {
	for _, f := range k.Aggregate {
		n, ok := obj[f].(json.Number)
		if !ok {
			continue
		}
		v, err := exact(n)
		if err == nil && v.Abs(v).Cmp(maxAggregate) <= 0 {
			continue
		}
		return invalid("record.body."+f, "%s is over the limit of %d (2^53) in magnitude of a field the picture sums (kind %s)", shortNumber(string(n)), MaxAggregate, k.Name)
	}
	if broken := k.brokenAtMost(obj); len(broken) > 0 {
		pair := broken[0]
		return invalid("record.body."+pair[0], "%s is more than %s, %s, which it can never be (kind %s): check both figures", shortNumber(string(obj[pair[0]].(json.Number))), pair[1], shortNumber(string(obj[pair[1]].(json.Number))), k.Name)
	}
	return nil
}

// AtMostBroken lists the AtMost pairs whose first field body holds as more than its second,
// which CheckPut refuses (the first of them): for a form that says them all, each at its field.
func (k *Kind) AtMostBroken(body []byte) [][2]string {
	if k == nil || len(k.AtMost) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if dec.Decode(&obj) != nil {
		return nil
	}
	return k.brokenAtMost(obj)
}

// brokenAtMost lists the AtMost pairs whose first field obj (numbers as json.Number) holds as
// more than its second, read exactly. A pair of which either field is not a number is left to
// the schema, or its absence.
func (k *Kind) brokenAtMost(obj map[string]any) [][2]string {
	var out [][2]string
	for _, pair := range k.AtMost {
		var vs [2]*big.Float
		for i, f := range pair {
			if n, ok := obj[f].(json.Number); ok {
				vs[i], _ = exact(n)
			}
		}
		if vs[0] != nil && vs[1] != nil && vs[0].Cmp(vs[1]) > 0 {
			out = append(out, pair)
		}
	}
	return out
}

// exact reads a JSON number exactly, not as a float64: 9007199254740993 rounds to 2^53.
func exact(n json.Number) (*big.Float, error) {
	v, _, err := big.ParseFloat(string(n), 10, 256, big.ToNearestEven)
	return v, err
}

// checkDocDates refuses a valid_from or valid_until in a body (of any kind: Validity reads them
// in every body) that is a string but not a date Validity reads, such as 2026-02-30: a document
// with such a valid_until would never show as expired.
func checkDocDates(obj map[string]any) *FieldError {
	for _, f := range []string{"valid_from", "valid_until"} {
		s, ok := obj[f].(string)
		if !ok || s == "" {
			continue
		}
		if _, ok := docTime(s, false); !ok {
			return invalid("record.body."+f, "%q is not a date: use an RFC 3339 time, such as 2026-12-31T18:00:00+01:00, or a plain date, such as 2026-12-31", s)
		}
	}
	return nil
}

// CheckOrigin checks a trust-domain name such as vr-utrecht.crisis.test.
func CheckOrigin(field, td string) error {
	if !trustDomain.MatchString(td) {
		return invalid(field, "%s is not a trust domain: use lower-case letters, digits, dots, dashes and underscores", policy.Quote(td))
	}
	return nil
}
