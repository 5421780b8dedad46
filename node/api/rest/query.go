package rest

import (
	"fmt"
	"net/url"
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
	return p.DefaultQueryParser.Parse(msg, values, filter)
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
