package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// NewDecoder reads a request body as the gateway's own decoder does, and names the field of a
// value protojson refused without naming it: a string where a list belongs ("kinds":"sitrep"),
// a list or a number where an object belongs. protojson says only where in the body the value
// is (review X).
func (j *jsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	d := json.NewDecoder(r)
	wrapped := runtime.DecoderWrapper{Decoder: d, UnmarshalOptions: j.UnmarshalOptions}
	return runtime.DecoderFunc(func(v any) error {
		m, ok := v.(proto.Message)
		if !ok {
			// A body that is one field of the request (body: "record"): the gateway hands the
			// field's address.
			rv := reflect.ValueOf(v)
			if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Pointer || !rv.Elem().Type().Implements(messageType) {
				return wrapped.Decode(v)
			}
			if rv.Elem().IsNil() {
				rv.Elem().Set(reflect.New(rv.Elem().Type().Elem()))
			}
			m = rv.Elem().Interface().(proto.Message)
		}
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return err
		}
		if err := objectBody(raw, m.ProtoReflect().Descriptor()); err != nil {
			return err
		}
		err := j.UnmarshalOptions.Unmarshal(raw, m)
		if err == nil {
			return nil
		}
		return nameField(raw, m.ProtoReflect().Descriptor(), err)
	})
}

var messageType = reflect.TypeFor[proto.Message]()

// objectBody refuses a body that is not a JSON object, in words that say what to send:
// protojson's are "unexpected token null" (review AF, AF7).
func objectBody(raw []byte, md protoreflect.MessageDescriptor) error {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 || b[0] == '{' {
		return nil
	}
	what := "a number"
	switch b[0] {
	case 'n':
		what = "null"
	case '[':
		what = "a JSON array"
	case '"':
		what = "a string"
	case 't', 'f':
		what = "true or false"
	}
	return fmt.Errorf("request body: %s, where the request is a JSON object: send {…} with the fields of %s (%s)", what, md.Name(), strings.Join(fieldNames(md), ", "))
}

// unknownField is protojson's word for a field the message has not.
var unknownField = regexp.MustCompile(`unknown field "([^"]*)"`)

// protojsonAt finds where protojson says the value it refused is: "(line 1:10)".
var protojsonAt = regexp.MustCompile(`\(line (\d+):(\d+)\)`)

// nameField puts the path of the value that err points at in front of err's message, with what
// the field takes where the value's JSON type is not that, when protojson's message does not
// name the field itself. Any other error is given back as it is.
func nameField(body []byte, md protoreflect.MessageDescriptor, err error) error {
	msg := err.Error()
	if u := unknownField.FindStringSubmatch(msg); u != nil && fieldByName(md, u[1]) == nil {
		// A key of the request itself, not of an object inside it: the fields the request has
		// say what was meant.
		var top map[string]json.RawMessage
		if json.Unmarshal(body, &top) == nil && top[u[1]] != nil {
			return fmt.Errorf("%s: %s has no field %q: use one of %s", u[1], md.Name(), u[1], strings.Join(fieldNames(md), ", "))
		}
	}
	at := protojsonAt.FindStringSubmatch(msg)
	if at == nil {
		return err
	}
	line, _ := strconv.Atoi(at[1])
	col, _ := strconv.Atoi(at[2])
	off := offsetOf(body, line, col)
	if off < 0 {
		return err
	}
	path, fd, elem := valueAt(body, off, md)
	if fd == nil || strings.Contains(msg, "field "+string(fd.Name())) || strings.Contains(msg, "field "+fd.JSONName()) {
		return err
	}
	named := path + ": " + msg
	if hint := wants(fd, elem, body[off]); hint != "" {
		named += ": " + hint
	}
	return errors.New(named)
}

// offsetOf is the byte offset of line and column (from 1, columns in characters) in body, as
// protojson counts them, or -1.
func offsetOf(body []byte, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(body[off:], '\n')
		if i < 0 {
			return -1
		}
		off += i + 1
	}
	for c := 1; c < col; c++ {
		if off >= len(body) {
			return -1
		}
		_, size := utf8.DecodeRune(body[off:])
		off += size
	}
	if off >= len(body) {
		return -1
	}
	return off
}

// valueAt walks body to the value that starts at off: its path ("kinds", "record.labels",
// "records[2].kind"), the field it is the value of, and whether it is an element of that field's
// list or map rather than the field's whole value.
func valueAt(body []byte, off int, md protoreflect.MessageDescriptor) (path string, fd protoreflect.FieldDescriptor, elem bool) {
	type level struct {
		path  string
		md    protoreflect.MessageDescriptor // the message an object is; nil for a map or a list
		fd    protoreflect.FieldDescriptor   // the field whose value the container is
		list  bool
		index int
		key   string // the key read, its value not yet (haveKey)
		// haveKey says a key was read and its value not yet: "" is a key too.
		haveKey bool
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var stack []level
	// read moves the innermost container past the value just read.
	read := func() {
		if len(stack) == 0 {
			return
		}
		top := &stack[len(stack)-1]
		if top.list {
			top.index++
		} else {
			top.key, top.haveKey = "", false
		}
	}
	for {
		start := int(d.InputOffset())
		for start < len(body) && bytes.IndexByte([]byte(" \t\r\n,:"), body[start]) >= 0 {
			start++
		}
		if start > off {
			return "", nil, false
		}
		// The path and field of the value about to be read, and the message it is if an object.
		var (
			p   string
			f   protoreflect.FieldDescriptor
			el  bool
			sub = md
			key bool
		)
		if len(stack) > 0 {
			top := stack[len(stack)-1]
			switch {
			case top.list:
				p, f, el = top.path+"["+strconv.Itoa(top.index)+"]", top.fd, true
				sub = nil
				if f != nil && f.Kind() == protoreflect.MessageKind {
					sub = f.Message()
				}
			case !top.haveKey:
				key = true
			case top.md == nil: // a map's value
				p, f, el = top.path+"."+top.key, top.fd, true
				sub = nil
				if f != nil && f.MapValue().Kind() == protoreflect.MessageKind {
					sub = f.MapValue().Message()
				}
			default:
				p, f = top.key, fieldByName(top.md, top.key)
				if top.path != "" {
					p = top.path + "." + top.key
				}
				sub = nil
				if f != nil && !f.IsList() && !f.IsMap() && f.Kind() == protoreflect.MessageKind {
					sub = f.Message()
				}
			}
		}
		tok, err := d.Token()
		if err != nil {
			return "", nil, false
		}
		if start == off && !key {
			return p, f, el
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				l := level{path: p, md: sub, fd: f}
				if f != nil && f.IsMap() && !el {
					l.md = nil
				}
				stack = append(stack, l)
			case '[':
				stack = append(stack, level{path: p, fd: f, list: true})
			default:
				stack = stack[:len(stack)-1]
				read()
			}
		case string:
			if key {
				stack[len(stack)-1].key, stack[len(stack)-1].haveKey = t, true
				continue
			}
			read()
		default:
			read()
		}
	}
}

// fieldByName is md's field of the JSON or proto name, or nil.
func fieldByName(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	if md == nil {
		return nil
	}
	if fd := md.Fields().ByJSONName(name); fd != nil {
		return fd
	}
	return md.Fields().ByTextName(name)
}

// wants says what the field fd takes, or an element of its list or map (elem), where the value
// starts with first and is not of that JSON type; "" when it is, or the field takes a scalar.
func wants(fd protoreflect.FieldDescriptor, elem bool, first byte) string {
	switch {
	case !elem && fd.IsList() && first != '[':
		return fmt.Sprintf("%s is a list: send a JSON array, such as [%s]", fd.Name(), example(fd.Kind()))
	case !elem && fd.IsMap() && first != '{':
		return fmt.Sprintf(`%s is a map: send a JSON object, such as {"key": %s}`, fd.Name(), example(fd.MapValue().Kind()))
	case fd.IsMap() && elem && fd.MapValue().Kind() == protoreflect.MessageKind && first != '{',
		!fd.IsMap() && (elem || !fd.IsList()) && fd.Kind() == protoreflect.MessageKind && !wellKnown(fd.Message()) && first != '{':
		return fmt.Sprintf("%s is an object: send a JSON object, {…}", what(fd, elem))
	}
	return ""
}

// what names a field's value, or each element of it.
func what(fd protoreflect.FieldDescriptor, elem bool) string {
	if elem {
		return "each element of " + string(fd.Name())
	}
	return string(fd.Name())
}

// wellKnown is whether protojson writes md as a JSON value other than an object: a timestamp,
// a duration, a wrapper.
func wellKnown(md protoreflect.MessageDescriptor) bool {
	return md.FullName().Parent() == "google.protobuf"
}

func example(k protoreflect.Kind) string {
	switch k {
	case protoreflect.StringKind, protoreflect.BytesKind:
		return `"…"`
	case protoreflect.MessageKind:
		return "{…}"
	}
	return "…"
}
