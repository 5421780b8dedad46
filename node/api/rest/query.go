package rest

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// strictQuery is grpc-gateway's query parser, except that a parameter that names no field of the
// request is refused: the default drops it, so that a misspelt filter (max_classificaton, regoin)
// returned what the filter was there to keep out. api.md promises that a field the message does
// not have is refused, not dropped, in a query string as in a body.
type strictQuery struct{ runtime.DefaultQueryParser }

func (p *strictQuery) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	md := msg.ProtoReflect().Descriptor()
	for key := range values {
		if err := queryField(md, key); err != nil {
			return err
		}
	}
	if err := p.DefaultQueryParser.Parse(msg, values, filter); err != nil {
		return queryValue(md, values, err)
	}
	return nil
}

// gatewayField is how the gateway's query parser names the parameter whose value it refused,
// in front of strconv's or its own words (review AF, AF7).
var gatewayField = regexp.MustCompile(`^parsing field "([^"]+)": `)

// queryValue says what a query parameter's refused value should be, in the node's words: a
// whole number, true or false, a number; a message's fields by their dotted names. An error it
// does not know (an enum's, a time's: the error handler words those) is given back as it is.
func queryValue(md protoreflect.MessageDescriptor, values url.Values, err error) error {
	m := gatewayField.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	key := m[1]
	var fd protoreflect.FieldDescriptor
	for part := range strings.SplitSeq(key, ".") {
		if md == nil {
			return err
		}
		if fd = md.Fields().ByName(protoreflect.Name(part)); fd == nil {
			fd = md.Fields().ByJSONName(part)
		}
		if fd == nil {
			return err
		}
		md = fd.Message()
	}
	v := values.Get(key)
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind, protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return fmt.Errorf("%s: %q is not a whole number: give one, such as %s=100", key, v, key)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return fmt.Errorf("%s: %q is not a number", key, v)
	case protoreflect.BoolKind:
		return fmt.Errorf("%s: %q is not true or false", key, v)
	case protoreflect.MessageKind:
		if !wellKnown(md) {
			return fmt.Errorf("%s: an object, not a value: give its fields as %s.FIELD=…, FIELD one of %s", key, key, strings.Join(fieldNames(md), ", "))
		}
	}
	return err
}

// queryField checks that key, a query parameter's name (fields by proto or JSON name, joined by
// dots, a map's key in brackets), names a field of md.
func queryField(md protoreflect.MessageDescriptor, key string) error {
	name, _, _ := strings.Cut(key, "[")
	m := md
	for i, part := range strings.Split(name, ".") {
		var fd protoreflect.FieldDescriptor
		if m != nil {
			if fd = m.Fields().ByName(protoreflect.Name(part)); fd == nil {
				fd = m.Fields().ByJSONName(part)
			}
		}
		if fd == nil {
			if m == nil {
				return fmt.Errorf("query parameter %q: %s is not a message: it has no field %q", key, strings.Join(strings.Split(name, ".")[:i], "."), part)
			}
			return fmt.Errorf("query parameter %q: %s has no field %q: use one of %s", key, m.Name(), part, strings.Join(fieldNames(m), ", "))
		}
		m = fd.Message()
	}
	return nil
}
