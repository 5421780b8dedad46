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
// INTERNAL, CONFIDENTIAL or SECRET"), or "" when the error is of another kind. It gives the
// message back with the field by its proto name where protojson named it by its JSON name
// (maxClassification), as every other message of the API names fields (review X, X6).
func enumHint(msg string) (named, hint string) {
	for i, re := range badEnum {
		m := re.FindStringSubmatchIndex(msg)
		if m == nil {
			continue
		}
		field := msg[m[2]:m[3]]
		name := field[strings.LastIndex(field, ".")+1:]
		values := enumFields()[name]
		if len(values) == 0 {
			continue
		}
		named = msg
		if proto := protoNames()[field]; i == 0 && proto != "" {
			named = msg[:m[2]] + proto + msg[m[3]:]
		}
		return named, "use one of " + strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
	}
	return msg, ""
}

// protoNames maps the JSON name of every field of the API's messages whose JSON name is not its
// proto name (maxClassification) to the proto name (max_classification); a JSON name that two
// fields of other proto names share maps to nothing.
var protoNames = sync.OnceValue(func() map[string]string {
	out := map[string]string{}
	shared := map[string]bool{}
	eachMessage(func(md protoreflect.MessageDescriptor) {
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			json, proto := fd.JSONName(), string(fd.Name())
			if json == proto {
				continue
			}
			if have, ok := out[json]; ok && have != proto {
				shared[json] = true
			}
			out[json] = proto
		}
	})
	for name := range shared {
		delete(out, name)
	}
	return out
})

// durationMessage says what a duration in the API is, for protojson's error that names no more
// than the value, or "" for another error.
func durationMessage(msg string) string {
	if strings.Contains(msg, "invalid google.protobuf.Duration value") {
		return msg + `: a duration is seconds with an s, such as "86400s" for a day (not "24h")`
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
	eachMessage(func(md protoreflect.MessageDescriptor) {
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
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
	})
	for name := range shared {
		delete(out, name)
	}
	return out
})

// eachMessage calls f with every message of the API, and every message their fields hold, once.
func eachMessage(f func(md protoreflect.MessageDescriptor)) {
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		f(md)
		for i := range md.Fields().Len() {
			if m := md.Fields().Get(i).Message(); m != nil {
				walk(m)
			}
		}
	}
	protoregistry.GlobalFiles.RangeFilesByPackage(pb.File_knooppunt_v1_record_proto.Package(), func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Messages().Len() {
			walk(fd.Messages().Get(i))
		}
		return true
	})
}
