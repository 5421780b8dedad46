package rest

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// badEnum finds the field of a value that is none of its enum's: protojson's words for a request
// body, then the gateway's for a query parameter.
var badEnum = []*regexp.Regexp{
	regexp.MustCompile(`invalid value for enum field (\w+): `),
	regexp.MustCompile(`parsing field "([\w.]+)": "[^"]*" is not a valid value`),
}

// enumHint says which values the enum field an error names may have ("use one of PUBLIC,
// INTERNAL, CONFIDENTIAL or SECRET"), or "" when the error is of another kind.
func enumHint(msg string) string {
	for _, re := range badEnum {
		m := re.FindStringSubmatch(msg)
		if m == nil {
			continue
		}
		name := m[1][strings.LastIndex(m[1], ".")+1:]
		if values := enumFields()[name]; len(values) > 0 {
			return "use one of " + strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
		}
	}
	return ""
}

// badTime finds a query parameter the gateway could not read as a time: its field and value.
var badTime = regexp.MustCompile(`^parsing field "([\w.]+)": parsing time "((?:[^"\\]|\\.)*)" as "2006-01-02T15:04:05`)

// timeMessage says what a time in the API is, for an error that names Go's layout instead
// ("parsing time "2h" as "2006-01-02T15:04:05.999999999Z07:00"") or no more than the value, or
// "" for another error.
func timeMessage(msg string) string {
	if strings.Contains(msg, "invalid google.protobuf.Timestamp value") {
		// protojson's, for a body: it names the value and where it is, not the field.
		return msg + ": use RFC 3339 in UTC, such as 2026-12-05T10:00:00Z"
	}
	m := badTime.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	return fmt.Sprintf("%s: \"%s\" is not a time: use RFC 3339 in UTC, such as 2026-12-05T10:00:00Z", m[1], m[2])
}

// enumFields maps the name of every enum field of the API's messages, as the proto and as JSON
// names it, to the values a client may send, in their order; a name that two enums share maps
// to nothing, as the message alone cannot tell which is meant.
var enumFields = sync.OnceValue(func() map[string][]string {
	out := map[string][]string{}
	shared := map[string]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	seen := map[protoreflect.FullName]bool{}
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			if fd.Message() != nil {
				walk(fd.Message())
			}
			if fd.Enum() == nil {
				continue
			}
			var values []string
			ev := fd.Enum().Values()
			for j := range ev.Len() {
				if v := ev.Get(j); !strings.HasSuffix(string(v.Name()), "_UNSPECIFIED") {
					values = append(values, string(v.Name()))
				}
			}
			for _, name := range []string{string(fd.Name()), fd.JSONName()} {
				if have, ok := out[name]; ok && !slices.Equal(have, values) {
					shared[name] = true
				}
				out[name] = values
			}
		}
	}
	protoregistry.GlobalFiles.RangeFilesByPackage(pb.File_knooppunt_v1_record_proto.Package(), func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Messages().Len() {
			walk(fd.Messages().Get(i))
		}
		return true
	})
	for name := range shared {
		delete(out, name)
	}
	return out
})
