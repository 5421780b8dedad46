package cap

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
)

// xmldsig is the namespace of XML signatures, the only one whose elements CAP 1.2 allows in an
// alert: after its own elements, at the alert's end (the schema's xs:any).
const xmldsig = "http://www.w3.org/2000/09/xmldsig#"

// capElements are the elements CAP 1.2 allows in each of its elements, by the parent's name, in
// the order its schema's xs:sequence gives them. encoding/xml leaves out an element no field
// names, so that a misspelt <headlin> or an element of another standard in the CAP namespace
// would vanish without a word, and reads elements in any order; checkElements refuses both
// instead, naming where it stands.
var capElements = map[string][]string{
	"alert": {"identifier", "sender", "sent", "status", "msgType", "source", "scope", "restriction", "addresses", "code",
		"note", "references", "incidents", "info"},
	"info": {"language", "category", "event", "responseType", "urgency", "severity", "certainty", "audience", "eventCode",
		"effective", "onset", "expires", "senderName", "headline", "description", "instruction", "web", "contact",
		"parameter", "resource", "area"},
	"eventCode": {"valueName", "value"},
	"parameter": {"valueName", "value"},
	"geocode":   {"valueName", "value"},
	"resource":  {"resourceDesc", "mimeType", "size", "uri", "derefUri", "digest"},
	"area":      {"areaDesc", "polygon", "circle", "geocode", "altitude", "ceiling"},
}

// capRepeated are the elements CAP 1.2 allows more than once in their parent. encoding/xml keeps
// the last of any other element given twice: <status>Exercise</status><status>Actual</status>
// would be stored as an actual alert. checkElements refuses a second one instead.
var capRepeated = map[string]bool{"code": true, "info": true, "category": true, "responseType": true, "eventCode": true,
	"parameter": true, "resource": true, "area": true, "polygon": true, "circle": true, "geocode": true}

// checkElements walks the alert's elements: one in the CAP namespace that CAP 1.2 does not allow
// where it stands, or that comes out of the schema's order, is refused, named by its path
// (alert.info[0].headlin[0]), and so is text beside the elements of one that holds elements
// only, which encoding/xml drops. An XML signature at the alert's end, which the schema allows,
// is returned in foreign, as prefix-free names, since the record does not keep it; an element
// of another namespace anywhere else is refused.
func checkElements(dec *xml.Decoder) (foreign []string, err error) {
	type open struct {
		name    string
		path    string
		allowed []string // its children in order; nil for an element of text
		last    int      // the index in allowed of the latest child, len(allowed) after a signature
		lastEl  string   // and its name
		count   map[string]int
	}
	var stack []open
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return foreign, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 {
				stack = append(stack, open{name: t.Name.Local, path: t.Name.Local, allowed: capElements[t.Name.Local], count: map[string]int{}})
				continue
			}
			parent := &stack[len(stack)-1]
			path := fmt.Sprintf("%s.%s[%d]", parent.path, t.Name.Local, parent.count[t.Name.Local])
			if t.Name.Space == "" {
				// <cap:alert xmlns:cap="…"><identifier>: a child in no namespace is no CAP
				// element, though a reader that ignores namespaces would take it for one.
				return nil, fieldErr(path,
					"<%s> is in no namespace: CAP's elements are in %s; with a prefixed root (cap:alert) prefix its elements too, or declare the namespace as the default (xmlns=\"%s\")", t.Name.Local, Namespace, Namespace)
			}
			if t.Name.Space != Namespace {
				if slices.Contains(parent.allowed, t.Name.Local) {
					// encoding/xml would read <ds:status> into the alert's status, over CAP's:
					// another namespace must not speak for CAP's fields.
					return nil, fieldErr(path,
						"<%s> of namespace %s has the name of a CAP element, and would be read as one: remove it", t.Name.Local, t.Name.Space)
				}
				if len(stack) > 1 || t.Name.Space != xmldsig {
					return nil, fieldErr(path,
						"<%s> of namespace %s is not allowed here: CAP 1.2 allows no element of another namespace but an XML signature (%s) at the end of <alert>; remove it", t.Name.Local, t.Name.Space, xmldsig)
				}
				foreign = append(foreign, t.Name.Local)
				parent.last, parent.lastEl = len(parent.allowed), t.Name.Local
				if err := dec.Skip(); err != nil {
					return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
				}
				continue
			}
			parent.count[t.Name.Local]++
			i := slices.Index(parent.allowed, t.Name.Local)
			if i < 0 {
				return nil, fieldErr(path, "<%s> is no element of CAP 1.2 in <%s>: remove it, or check its name", t.Name.Local, parent.name)
			}
			if parent.count[t.Name.Local] > 1 && !capRepeated[t.Name.Local] {
				return nil, fieldErr(path, "a second <%s> in <%s>: CAP 1.2 allows one; keep the one that is meant", t.Name.Local, parent.name)
			}
			if i < parent.last {
				return nil, fieldErr(path, "<%s> must come before <%s>: CAP 1.2 fixes the order of the elements of <%s>; move it", t.Name.Local, parent.lastEl, parent.name)
			}
			parent.last, parent.lastEl = i, t.Name.Local
			stack = append(stack, open{name: t.Name.Local, path: path, allowed: capElements[t.Name.Local], count: map[string]int{}})
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			// <alert>, <info>, <resource>, <area> and the value pairs hold elements only.
			if n := len(stack); n > 0 && stack[n-1].allowed != nil && len(bytes.Trim(t, " \t\r\n")) > 0 {
				return nil, fieldErr(stack[n-1].path, "text %q stands between the elements of <%s>, which holds elements only: remove it, or move it into the element it belongs to", excerpt(t), stack[n-1].name)
			}
		}
	}
}

// excerpt is the start of stray text, for a refusal to quote.
func excerpt(t xml.CharData) string {
	s := string(bytes.TrimSpace(t))
	if r := []rune(s); len(r) > 40 {
		s = string(r[:40]) + "…"
	}
	return s
}
