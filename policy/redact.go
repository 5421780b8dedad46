package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// redactRecord returns a copy of r without the body paths. It never changes r. valid says the
// body is already known to be JSON that encoding/json decodes into a map, so that it is not
// checked again.
func redactRecord(r *pb.Record, paths []string, valid bool) (*pb.Record, error) {
	out := &pb.Record{
		Id: r.Id, Origin: r.Origin, Kind: r.Kind, Crisis: r.Crisis, Region: r.Region,
		Classification: r.Classification, Labels: r.Labels, Body: r.Body, Version: r.Version,
		UpdatedAt: r.UpdatedAt, ValidUntil: r.ValidUntil,
		// The mode goes with the record: a recipient reads it only in the same mode.
		Status: r.Status, Exercise: r.Exercise,
	}
	if len(paths) == 0 {
		return out, nil
	}
	rel := make([]string, len(paths))
	for i, p := range paths {
		rel[i] = strings.TrimPrefix(p, "body.")
	}
	redact := redactBody
	if valid {
		redact = redactValid
	}
	b, err := redact(r.Body, rel)
	if err != nil {
		return nil, fmt.Errorf("record %s: body: %w", r.Id, err)
	}
	out.Body = b
	return out, nil
}

var errBodyNotObject = errors.New("not a JSON object")

// redactBody returns body without the fields at paths, each keys from the top joined by dots. It
// works on the bytes: the fields it keeps go out exactly as they came, numbers included, and
// when none of the paths is present it returns body itself. It removes every member whose
// decoded key matches, so neither an escaped key ("contact\u005fphone") nor a repeated one
// keeps a field that a decoder would read under the redacted name.
//
// The body must be valid JSON as encoding/json reads it, and an object or null: anything else
// is an error, and the record is not sent.
func redactBody(body []byte, paths []string) ([]byte, error) {
	if !validJSON(body) {
		return nil, errors.New("not valid JSON")
	}
	return redactValid(body, paths)
}

// redactValid is redactBody of a body known to be valid JSON.
func redactValid(body []byte, paths []string) ([]byte, error) {
	v := gjson.ParseBytes(body)
	switch {
	case v.Type == gjson.Null:
		return body, nil
	case !v.IsObject():
		return nil, errBodyNotObject
	}
	out, removed := appendRedacted(make([]byte, 0, len(body)), v, paths)
	if !removed {
		return body, nil
	}
	return out, nil
}

// appendRedacted appends obj without the fields at paths to dst, and reports whether it left
// any out.
func appendRedacted(dst []byte, obj gjson.Result, paths []string) ([]byte, bool) {
	dst = append(dst, '{')
	first, removed := true, false
	obj.ForEach(func(k, v gjson.Result) bool {
		name := keyName(k)
		var sub []string
		for _, p := range paths {
			key, rest, nested := strings.Cut(p, ".")
			if key != name {
				continue
			}
			if !nested {
				removed = true
				return true // left out, with whatever sub-paths it has
			}
			sub = append(sub, rest)
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, k.Raw...)
		dst = append(dst, ':')
		var r bool
		dst, r = appendValue(dst, v, sub)
		removed = removed || r
		return true
	})
	return append(dst, '}'), removed
}

// appendValue appends v with the fields at paths left out: of an object, of every object in a
// list, or none of anything else.
func appendValue(dst []byte, v gjson.Result, paths []string) ([]byte, bool) {
	switch {
	case len(paths) > 0 && v.IsObject():
		return appendRedacted(dst, v, paths)
	case len(paths) > 0 && v.IsArray():
		return appendRedactedArray(dst, v, paths)
	}
	return append(dst, v.Raw...), false
}

// appendRedactedArray appends arr with the fields at paths left out of each object in it, at any
// depth of arrays: body.contacts.phone withholds the phone of every contact in a list, as of one
// contact in an object. Other elements go as they are.
func appendRedactedArray(dst []byte, arr gjson.Result, paths []string) ([]byte, bool) {
	dst = append(dst, '[')
	removed := false
	i := 0
	arr.ForEach(func(_, v gjson.Result) bool {
		if i > 0 {
			dst = append(dst, ',')
		}
		i++
		var r bool
		dst, r = appendValue(dst, v, paths)
		removed = removed || r
		return true
	})
	return append(dst, ']'), removed
}

// keyName is a member's key as encoding/json decodes it. An escaped key, or one that is not
// valid UTF-8 (encoding/json replaces each bad byte with U+FFFD), is decoded by encoding/json
// itself, so that the redactor and a condition read keys exactly as a decoder does.
func keyName(k gjson.Result) string {
	if !strings.Contains(k.Raw, `\`) && utf8.ValidString(k.Str) {
		return k.Str
	}
	var s string
	if err := json.Unmarshal([]byte(k.Raw), &s); err != nil {
		return k.Str // unreachable: the body is valid JSON
	}
	return s
}

// shallowLimit is the size below which a body cannot nest deeper than encoding/json's limit of
// 10,000 levels: each level takes at least two bytes.
const shallowLimit = 20000

// validJSON reports whether encoding/json would accept body, as json.Valid does. gjson's
// validator checks the same grammar (RFC 8259, strings of any bytes from 0x20 up, valid UTF-8
// or not) about four times faster, but it has no limit on nesting; a body large enough to nest
// past encoding/json's limit is also checked with json.Valid. TestValidJSONMatchesEncodingJSON
// and FuzzValidJSON hold the two to each other.
func validJSON(body []byte) bool {
	if !gjson.ValidBytes(body) {
		return false
	}
	return len(body) < shallowLimit || json.Valid(body)
}

// Present returns the redact paths (body.… as a policy writes them) that a body has, in the
// order given: what redacting them would remove. A body that is not a JSON object has none.
func Present(body []byte, paths []string) []string {
	if !validJSON(body) {
		return nil
	}
	v := gjson.ParseBytes(body)
	if !v.IsObject() {
		return nil
	}
	var out []string
	for _, p := range paths {
		if _, removed := appendRedacted(nil, v, []string{strings.TrimPrefix(p, "body.")}); removed {
			out = append(out, p)
		}
	}
	return out
}
