// Package cap reads and writes CAP 1.2, the OASIS Common Alerting Protocol that NL-Alert and most
// alerting systems speak, and maps a CAP alert to and from a record of the built-in alert kind,
// whose body holds the CAP fields under their CAP names.
//
// cap parses untrusted XML: it refuses any DTD (so no entity is ever defined, let alone expanded,
// and nothing external is fetched), reads at most a bounded number of bytes, and checks the
// namespace, the required elements and every enumeration before anything is stored. It never
// touches the store itself: Apply writes through a RecordService client, as any client does.
package cap

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/encoding/ianaindex"

	"github.com/knooppunt/knooppunt/policy"
)

// Namespace is the XML namespace of CAP 1.2.
const Namespace = "urn:oasis:names:tc:emergency:cap:1.2"

// DefaultMaxBytes is the largest CAP document Parse reads unless told otherwise: 1 MiB.
const DefaultMaxBytes = 1 << 20

// Errors of Parse; each is wrapped in an *Error or a message that says what to fix.
var (
	// ErrTooLarge refuses a document over the size limit.
	ErrTooLarge = errors.New("cap: document too large")
	// ErrDTD refuses a document that declares a DTD: entity definitions are how entity
	// expansion attacks and external entities get in.
	ErrDTD = errors.New("cap: DTDs are not accepted")
	// ErrMalformed refuses a document that is not well-formed XML.
	ErrMalformed = errors.New("cap: not well-formed XML")
	// ErrNamespace refuses a document whose root is not a CAP 1.2 alert.
	ErrNamespace = errors.New("cap: not a CAP 1.2 alert")
	// ErrEncoding refuses a document in a character encoding the node cannot read.
	ErrEncoding = errors.New("cap: encoding")
)

// Error refuses an alert because of one field, named by its path such as alert.info[0].urgency.
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string { return "cap: " + e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) *Error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Alert is a CAP 1.2 alert. Its JSON form, with CAP's element names, is the body of an alert
// record; times are kept as CAP writes them, so that a round trip keeps them to the character.
type Alert struct {
	XMLName     xml.Name `xml:"urn:oasis:names:tc:emergency:cap:1.2 alert" json:"-"`
	Identifier  string   `xml:"identifier" json:"identifier"`
	Sender      string   `xml:"sender" json:"sender"`
	Sent        string   `xml:"sent" json:"sent"`
	Status      string   `xml:"status" json:"status"`
	MsgType     string   `xml:"msgType" json:"msgType"`
	Source      string   `xml:"source,omitempty" json:"source,omitempty"`
	Scope       string   `xml:"scope" json:"scope"`
	Restriction string   `xml:"restriction,omitempty" json:"restriction,omitempty"`
	Addresses   string   `xml:"addresses,omitempty" json:"addresses,omitempty"`
	Code        []string `xml:"code,omitempty" json:"code,omitempty"`
	Note        string   `xml:"note,omitempty" json:"note,omitempty"`
	References  string   `xml:"references,omitempty" json:"references,omitempty"`
	Incidents   string   `xml:"incidents,omitempty" json:"incidents,omitempty"`
	Info        []Info   `xml:"info,omitempty" json:"info,omitempty"`
	// Foreign names the elements of other namespaces the alert carried (an XML signature, which
	// CAP allows at its end): Parse reads them, and the record does not keep them.
	Foreign []string `xml:"-" json:"-"`
}

// Info is one info block: the alert in one language.
type Info struct {
	Language     string       `xml:"language,omitempty" json:"language,omitempty"`
	Category     []string     `xml:"category" json:"category"`
	Event        string       `xml:"event" json:"event"`
	ResponseType []string     `xml:"responseType,omitempty" json:"responseType,omitempty"`
	Urgency      string       `xml:"urgency" json:"urgency"`
	Severity     string       `xml:"severity" json:"severity"`
	Certainty    string       `xml:"certainty" json:"certainty"`
	Audience     string       `xml:"audience,omitempty" json:"audience,omitempty"`
	EventCode    []NamedValue `xml:"eventCode,omitempty" json:"eventCode,omitempty"`
	Effective    string       `xml:"effective,omitempty" json:"effective,omitempty"`
	Onset        string       `xml:"onset,omitempty" json:"onset,omitempty"`
	Expires      string       `xml:"expires,omitempty" json:"expires,omitempty"`
	SenderName   string       `xml:"senderName,omitempty" json:"senderName,omitempty"`
	Headline     string       `xml:"headline,omitempty" json:"headline,omitempty"`
	Description  string       `xml:"description,omitempty" json:"description,omitempty"`
	Instruction  string       `xml:"instruction,omitempty" json:"instruction,omitempty"`
	Web          string       `xml:"web,omitempty" json:"web,omitempty"`
	Contact      string       `xml:"contact,omitempty" json:"contact,omitempty"`
	Parameter    []NamedValue `xml:"parameter,omitempty" json:"parameter,omitempty"`
	Resource     []Resource   `xml:"resource,omitempty" json:"resource,omitempty"`
	Area         []Area       `xml:"area,omitempty" json:"area,omitempty"`
}

// NamedValue is an eventCode, parameter or geocode: a value in a system named by valueName.
type NamedValue struct {
	ValueName string `xml:"valueName" json:"valueName"`
	Value     string `xml:"value" json:"value"`
}

// Resource is a file that goes with an info block.
type Resource struct {
	ResourceDesc string `xml:"resourceDesc" json:"resourceDesc"`
	MimeType     string `xml:"mimeType" json:"mimeType"`
	Size         string `xml:"size,omitempty" json:"size,omitempty"`
	URI          string `xml:"uri,omitempty" json:"uri,omitempty"`
	DerefURI     string `xml:"derefUri,omitempty" json:"derefUri,omitempty"`
	Digest       string `xml:"digest,omitempty" json:"digest,omitempty"`
}

// Area is where an info block applies: a description and polygons, circles and geocodes.
type Area struct {
	AreaDesc string       `xml:"areaDesc" json:"areaDesc"`
	Polygon  []string     `xml:"polygon,omitempty" json:"polygon,omitempty"`
	Circle   []string     `xml:"circle,omitempty" json:"circle,omitempty"`
	Geocode  []NamedValue `xml:"geocode,omitempty" json:"geocode,omitempty"`
	Altitude string       `xml:"altitude,omitempty" json:"altitude,omitempty"`
	Ceiling  string       `xml:"ceiling,omitempty" json:"ceiling,omitempty"`
}

// The enumerations of CAP 1.2, in the specification's order.
var (
	Statuses      = []string{"Actual", "Exercise", "System", "Test", "Draft"}
	MsgTypes      = []string{"Alert", "Update", "Cancel", "Ack", "Error"}
	Scopes        = []string{"Public", "Restricted", "Private"}
	Categories    = []string{"Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other"}
	ResponseTypes = []string{"Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"}
	Urgencies     = []string{"Immediate", "Expected", "Future", "Past", "Unknown"}
	Severities    = []string{"Extreme", "Severe", "Moderate", "Minor", "Unknown"}
	Certainties   = []string{"Observed", "Likely", "Possible", "Unlikely", "Unknown"}
)

// TimeLayout is CAP's date-time form: seconds, and an explicit offset (never Z).
const TimeLayout = "2006-01-02T15:04:05-07:00"

var (
	timePattern = regexp.MustCompile(`^\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$`)
	decimal     = regexp.MustCompile(`^[-+]?(\d+(\.\d*)?|\.\d+)$`)
	integer     = regexp.MustCompile(`^[-+]?\d+$`)
	point       = `[-+]?\d+(\.\d+)?,[-+]?\d+(\.\d+)?`
	polygonRE   = regexp.MustCompile(`^` + point + `(\s+` + point + `){3,}$`)
	circleRE    = regexp.MustCompile(`^` + point + `\s+\d+(\.\d+)?$`)
	languageRE  = regexp.MustCompile(`^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$`)
)

// Parse reads one CAP 1.2 alert of at most max bytes (DefaultMaxBytes when max <= 0) and checks
// it. It refuses a DTD, a document that is not well-formed, the wrong root or namespace, an
// element out of the schema's order or where it has none, text between elements, a missing
// required element and a value outside an enumeration, each with an error that names what to fix. A leading byte order mark is skipped,
// and a document that declares another encoding than UTF-8 (ISO-8859-1, windows-1252, …) is
// decoded from it, or refused with ErrEncoding when the node does not know it. An empty <code>
// is left out: it flags nothing, and the alert is written without it.
func Parse(r io.Reader, max int64) (*Alert, error) {
	if max <= 0 {
		max = DefaultMaxBytes
	}
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("cap: read: %w", err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: over the limit of %d bytes", ErrTooLarge, max)
	}
	// Windows tools write UTF-8 with a byte order mark, which XML allows and encoding/xml does
	// not skip.
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	dec := xml.NewDecoder(bytes.NewReader(data))
	var refused error
	dec.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		r, err := charsetReader(label, in)
		refused = err
		return r, err
	}
	root, err := prolog(dec)
	if refused != nil {
		return nil, refused
	}
	if err != nil {
		return nil, err
	}
	if root.Name.Local != "alert" || root.Name.Space != Namespace {
		return nil, fmt.Errorf("%w: the root element is <%s> in namespace %q: use <alert xmlns=%q>", ErrNamespace, root.Name.Local, root.Name.Space, Namespace)
	}
	var a Alert
	if err := dec.DecodeElement(&a, &root); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := epilog(dec, root.Name.Local); err != nil {
		return nil, err
	}
	if a.Code = slices.DeleteFunc(a.Code, func(c string) bool { return c == "" }); len(a.Code) == 0 {
		a.Code = nil
	}
	// Once more, element by element: what encoding/xml left out without a word.
	check := xml.NewDecoder(bytes.NewReader(data))
	check.CharsetReader = charsetReader
	if a.Foreign, err = checkElements(check); err != nil {
		return nil, err
	}
	if err := a.Check(); err != nil {
		return nil, err
	}
	return &a, nil
}

// charsetReader decodes a document whose XML declaration names an encoding other than UTF-8,
// such as ISO-8859-1 or windows-1252, which older alerting systems write. A document that was
// read this far byte by byte is no UTF-16 or UTF-32 one, whatever it declares.
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	enc, err := ianaindex.IANA.Encoding(label)
	if err != nil || enc == nil {
		return nil, fmt.Errorf("%w %s: this node does not read it: send the alert as UTF-8", ErrEncoding, label)
	}
	switch name, _ := ianaindex.IANA.Name(enc); {
	case name == "UTF-8":
		return in, nil // another spelling of it, such as utf8
	case strings.HasPrefix(name, "UTF-"):
		return nil, fmt.Errorf("%w %s: the document is not written in it: declare UTF-8, or send the alert as UTF-8", ErrEncoding, label)
	}
	return enc.NewDecoder().Reader(in), nil
}

// prolog reads up to the root element and returns it. A DTD (or any other declaration) is
// refused here, where XML allows one: encoding/xml never defines or expands an entity a DTD
// declares, but a document that brings one is refused outright rather than half read.
func prolog(dec *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return xml.StartElement{}, fmt.Errorf("%w: no root element: the document is empty", ErrMalformed)
		}
		if err != nil {
			return xml.StartElement{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return xml.StartElement{}, fmt.Errorf("%w: the document declares <!%s>: send the alert without a DOCTYPE", ErrDTD, firstWord(t))
		case xml.StartElement:
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return xml.StartElement{}, fmt.Errorf("%w: text before the root element", ErrMalformed)
			}
		}
	}
}

// epilog reads what follows the root element: comments and white space only.
func epilog(dec *xml.Decoder, root string) error {
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return fmt.Errorf("%w: the document declares <!%s>: send the alert without a DOCTYPE", ErrDTD, firstWord(t))
		case xml.StartElement:
			return fmt.Errorf("%w: a second root element <%s> after <%s>: send one alert per document", ErrMalformed, t.Name.Local, root)
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return fmt.Errorf("%w: text after the root element", ErrMalformed)
			}
		}
	}
}

func firstWord(d xml.Directive) string {
	s := strings.TrimSpace(string(d))
	if i := strings.IndexAny(s, " \t\r\n["); i > 0 {
		s = s[:i]
	}
	if len(s) > 20 {
		s = s[:20]
	}
	return s
}

// Check checks an alert against CAP 1.2: required elements, enumerations, date-times, and the
// forms of references, polygons and circles. Parse calls it; so does Marshal, so that what is
// written is valid too.
func (a *Alert) Check() error {
	if err := a.checkHeader(); err != nil {
		return err
	}
	for i := range a.Info {
		if err := a.Info[i].check(fmt.Sprintf("alert.info[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

func (a *Alert) checkHeader() error {
	for _, f := range []struct{ name, v string }{
		{"identifier", a.Identifier}, {"sender", a.Sender}, {"sent", a.Sent},
		{"status", a.Status}, {"msgType", a.MsgType}, {"scope", a.Scope},
	} {
		if strings.TrimSpace(f.v) == "" {
			return fieldErr("alert."+f.name, "missing: CAP 1.2 requires <%s>", f.name)
		}
	}
	for _, f := range []struct{ name, v string }{{"identifier", a.Identifier}, {"sender", a.Sender}, {"references", a.References}} {
		if f.name != "references" && strings.ContainsAny(f.v, " \t\r\n,<&") {
			return fieldErr("alert."+f.name, "%q holds a space, comma, < or &, which CAP 1.2 forbids", f.v)
		}
		// Invisible characters, and spaces other than the ASCII space that separates references,
		// would make a sender or identifier read as another's: a partner's alert as this
		// organisation's own (review C, F3).
		if i := strings.IndexFunc(f.v, func(c rune) bool { return policy.Hidden(c) || c != ' ' && unicode.IsSpace(c) }); i >= 0 {
			return fieldErr("alert."+f.name, "holds the invisible or space character %U at byte %d, which would make it read as another: remove it", []rune(f.v[i:])[0], i)
		}
	}
	if err := checkTime("alert.sent", a.Sent); err != nil {
		return err
	}
	for _, e := range []struct {
		name, v string
		in      []string
	}{{"status", a.Status, Statuses}, {"msgType", a.MsgType, MsgTypes}, {"scope", a.Scope, Scopes}} {
		if err := checkEnum("alert."+e.name, e.v, e.in); err != nil {
			return err
		}
	}
	if _, err := a.ReferenceList(); err != nil {
		return err
	}
	return nil
}

func (in *Info) check(field string) error {
	if in.Language != "" && !languageRE.MatchString(in.Language) {
		return fieldErr(field+".language", "%q is not a language code: use RFC 3066, such as nl-NL", in.Language)
	}
	if len(in.Category) == 0 {
		return fieldErr(field+".category", "missing: CAP 1.2 requires at least one <category>, one of %s", strings.Join(Categories, ", "))
	}
	for j, c := range in.Category {
		if err := checkEnum(fmt.Sprintf("%s.category[%d]", field, j), c, Categories); err != nil {
			return err
		}
	}
	if strings.TrimSpace(in.Event) == "" {
		return fieldErr(field+".event", "missing: CAP 1.2 requires <event>, such as Flood")
	}
	for j, r := range in.ResponseType {
		if err := checkEnum(fmt.Sprintf("%s.responseType[%d]", field, j), r, ResponseTypes); err != nil {
			return err
		}
	}
	for _, e := range []struct {
		name, v string
		in      []string
	}{{"urgency", in.Urgency, Urgencies}, {"severity", in.Severity, Severities}, {"certainty", in.Certainty, Certainties}} {
		if e.v == "" {
			return fieldErr(field+"."+e.name, "missing: CAP 1.2 requires <%s>, one of %s", e.name, strings.Join(e.in, ", "))
		}
		if err := checkEnum(field+"."+e.name, e.v, e.in); err != nil {
			return err
		}
	}
	for _, t := range []struct{ name, v string }{{"effective", in.Effective}, {"onset", in.Onset}, {"expires", in.Expires}} {
		if t.v != "" {
			if err := checkTime(field+"."+t.name, t.v); err != nil {
				return err
			}
		}
	}
	for _, nv := range []struct {
		name string
		vs   []NamedValue
	}{{"eventCode", in.EventCode}, {"parameter", in.Parameter}} {
		for j, v := range nv.vs {
			if err := v.check(fmt.Sprintf("%s.%s[%d]", field, nv.name, j)); err != nil {
				return err
			}
		}
	}
	for j, r := range in.Resource {
		f := fmt.Sprintf("%s.resource[%d]", field, j)
		if strings.TrimSpace(r.ResourceDesc) == "" {
			return fieldErr(f+".resourceDesc", "missing: CAP 1.2 requires <resourceDesc>")
		}
		if strings.TrimSpace(r.MimeType) == "" {
			return fieldErr(f+".mimeType", "missing: CAP 1.2 requires <mimeType>, such as image/png")
		}
		if r.Size != "" && !integer.MatchString(r.Size) {
			return fieldErr(f+".size", "%q is not a whole number of bytes", r.Size)
		}
	}
	for j := range in.Area {
		if err := in.Area[j].check(fmt.Sprintf("%s.area[%d]", field, j)); err != nil {
			return err
		}
	}
	return nil
}

func (ar *Area) check(field string) error {
	if strings.TrimSpace(ar.AreaDesc) == "" {
		return fieldErr(field+".areaDesc", "missing: CAP 1.2 requires <areaDesc>")
	}
	for k, p := range ar.Polygon {
		f := fmt.Sprintf("%s.polygon[%d]", field, k)
		p = strings.TrimSpace(p)
		if !polygonRE.MatchString(p) {
			return fieldErr(f, "not a polygon: use four or more lat,lon pairs separated by spaces, the first and last the same")
		}
		ps := strings.Fields(p)
		if ps[0] != ps[len(ps)-1] {
			return fieldErr(f, "not closed: the first pair %s and the last %s must be the same", ps[0], ps[len(ps)-1])
		}
		for _, pt := range ps {
			if err := ar.checkPoint(f, "point", pt); err != nil {
				return err
			}
		}
	}
	for k, c := range ar.Circle {
		f := fmt.Sprintf("%s.circle[%d]", field, k)
		if !circleRE.MatchString(strings.TrimSpace(c)) {
			return fieldErr(f, "%q is not a circle: use lat,lon and a radius in km, such as 51.5,3.6 10", c)
		}
		if err := ar.checkPoint(f, "centre", strings.Fields(c)[0]); err != nil {
			return err
		}
	}
	for k, g := range ar.Geocode {
		if err := g.check(fmt.Sprintf("%s.geocode[%d]", field, k)); err != nil {
			return err
		}
	}
	for _, d := range []struct{ name, v string }{{"altitude", ar.Altitude}, {"ceiling", ar.Ceiling}} {
		if d.v != "" && !decimal.MatchString(d.v) {
			return fieldErr(field+"."+d.name, "%q is not a decimal number of feet", d.v)
		}
	}
	if ar.Ceiling != "" && ar.Altitude == "" {
		return fieldErr(field+".ceiling", "a ceiling needs an altitude")
	}
	return nil
}

// checkPoint checks that a lat,lon pair that matched the point pattern lies on the earth (WGS 84):
// swapped or projected coordinates would otherwise put the alert somewhere else, or nowhere.
func (ar *Area) checkPoint(field, what, pt string) error {
	lat, lon, _ := strings.Cut(pt, ",")
	la, err1 := strconv.ParseFloat(lat, 64)
	lo, err2 := strconv.ParseFloat(lon, 64)
	if err1 != nil || err2 != nil || la < -90 || la > 90 || lo < -180 || lo > 180 {
		return fieldErr(field, "the %s %s of area %q is not on the earth: give latitude,longitude in WGS 84, the latitude -90 to 90 and the longitude -180 to 180", what, pt, ar.AreaDesc)
	}
	return nil
}

func (v NamedValue) check(field string) error {
	if strings.TrimSpace(v.ValueName) == "" {
		return fieldErr(field+".valueName", "missing: CAP 1.2 requires <valueName>")
	}
	return nil
}

func checkEnum(field, v string, in []string) error {
	if slices.Contains(in, v) {
		return nil
	}
	return fieldErr(field, "%q is not one of %s", v, strings.Join(in, ", "))
}

// checkTime checks a CAP date-time: its form, and that it is a time XML Schema's dateTime
// takes (review C, F1). One that only looked right (month 13, 30 February, year 0000, +99:99) was
// stored, and then written into documents that fail the CAP schema; an expires time that could
// not be read never passed, so the alert stayed in force and in the public feed.
func checkTime(field, v string) error {
	if !timePattern.MatchString(v) {
		return fieldErr(field, "%q is not a CAP date-time: use YYYY-MM-DDThh:mm:ss with an offset such as +01:00 (-00:00 for UTC)", v)
	}
	t, err := time.Parse(TimeLayout, v)
	if err != nil {
		why := err.Error()
		var pe *time.ParseError
		if errors.As(err, &pe) && pe.Message != "" {
			why = strings.TrimPrefix(pe.Message, ": ")
		}
		return fieldErr(field, "%q is not a date and time that exists: %s", v, why)
	}
	if t.Year() < 1 {
		return fieldErr(field, "%q: year 0000 does not exist in CAP's calendar (XML Schema's): the first year is 0001", v)
	}
	if h, m := v[20:22], v[23:25]; h > "14" || h == "14" && m != "00" {
		return fieldErr(field, "%q: the offset %s is beyond the ±14:00 that XML Schema allows", v, v[19:])
	}
	return nil
}

// Reference is one entry of references: the sender, identifier and sent time of an earlier alert.
type Reference struct {
	Sender, Identifier, Sent string
}

// ReferenceList reads the references, space-separated sender,identifier,sent triples.
func (a *Alert) ReferenceList() ([]Reference, error) {
	var out []Reference
	for i, f := range strings.Fields(a.References) {
		p := strings.Split(f, ",")
		if len(p) != 3 || p[0] == "" || p[1] == "" {
			return nil, fieldErr("alert.references", "entry %d %q is not sender,identifier,sent", i+1, f)
		}
		out = append(out, Reference{Sender: p[0], Identifier: p[1], Sent: p[2]})
	}
	return out, nil
}

// Marshal writes the alert as a CAP 1.2 document, after checking it.
func (a *Alert) Marshal() ([]byte, error) {
	if err := a.Check(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(a); err != nil {
		return nil, fmt.Errorf("cap: write: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}
