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

// redactRecord returns a copy of r without the body paths, and those of the paths r's body has:
// what its copy lacks. It never changes r. valid says the body is already known to be JSON that
// encoding/json decodes into a map, so that it is not checked again.
func redactRecord(r *pb.Record, paths []string, valid bool) (*pb.Record, []string, error) {
	out := &pb.Record{
		Id: r.Id, Origin: r.Origin, Kind: r.Kind, Crisis: r.Crisis, Region: r.Region,
		Classification: r.Classification, Labels: r.Labels, Body: r.Body, Version: r.Version,
		UpdatedAt: r.UpdatedAt, ValidUntil: r.ValidUntil,
		// The mode goes with the record: a recipient reads it only in the same mode.
		Status: r.Status, Exercise: r.Exercise,
	}
	if len(paths) == 0 {
		return out, nil, nil
	}
	if !valid && !validJSON(r.Body) {
		return nil, nil, fmt.Errorf("record %s: body: %w", r.Id, errBodyNotJSON)
	}
	b, t, err := redactValid(r.Body, paths, "body.")
	if err != nil {
		return nil, nil, fmt.Errorf("record %s: body: %w", r.Id, err)
	}
	out.Body = b
	return out, t.present(paths), nil
}

var (
	errBodyNotJSON   = errors.New("not valid JSON")
	errBodyNotObject = errors.New("not a JSON object")
)

// redactValid returns body without the fields at paths, each keys from the top joined by dots,
// each starting with prefix. It works on the bytes: the fields it keeps go out exactly as they
// came, numbers included, and when none of the paths is present it returns body itself. It
// removes every member whose decoded key matches, so neither an escaped key
// ("contact\u005fphone") nor a repeated one keeps a field that a decoder would read under the
// redacted name. It returns the paths' tree too, which says which of them the body has
// (present).
//
// The body must be valid JSON as encoding/json reads it (validJSON), and an object or null:
// anything else is an error, and the record is not sent.
func redactValid(body []byte, paths []string, prefix string) ([]byte, *pathTree, error) {
	v := gjson.ParseBytes(body)
	switch {
	case v.Type == gjson.Null:
		return body, nil, nil
	case !v.IsObject():
		return nil, nil, errBodyNotObject
	}
	t := newPathTree(paths, prefix)
	out, removed := t.object(make([]byte, 0, len(body)), v, 0, true)
	if !removed {
		return body, t, nil
	}
	return out, t, nil
}

// pathTree is a set of paths (keys joined by dots) as a tree of their keys, so that one walk of
// a body meets every path at once, however many there are, and looks each member's key up
// once. Its nodes are in one slice, and a walk marks in them what it met.
type pathTree struct {
	// nodes[0] is the body itself.
	nodes []pathNode
	// leaf is each path's node.
	leaf []int32
}

// pathNode is a field some path goes to or through.
type pathNode struct {
	key string
	// end is set when a path ends here: the field is removed.
	end bool
	// met is set once a walk met the field where a path ends: removed, or inside a removed one.
	met bool
	// first is the first field inside it, next the next one beside it: indexes in nodes, 0 for
	// none. n counts the fields inside it; index holds them by key once there are more than a
	// few.
	first, next, n int32
	index          map[string]int32
}

func newPathTree(paths []string, prefix string) *pathTree {
	n := 1
	for _, p := range paths {
		n += 1 + strings.Count(p, ".")
	}
	t := &pathTree{nodes: make([]pathNode, 1, n), leaf: make([]int32, len(paths))}
	for i, p := range paths {
		at, rest := int32(0), strings.TrimPrefix(p, prefix)
		for {
			key, more, nested := strings.Cut(rest, ".")
			at = t.add(at, key)
			if !nested {
				break
			}
			rest = more
		}
		t.nodes[at].end = true
		t.leaf[i] = at
	}
	return t
}

// child is the node of the field key inside the node at, 0 when no path goes there.
func (t *pathTree) child(at int32, key string) int32 {
	if n := &t.nodes[at]; n.index != nil {
		return n.index[key]
	}
	for c := t.nodes[at].first; c != 0; c = t.nodes[c].next {
		if t.nodes[c].key == key {
			return c
		}
	}
	return 0
}

// add returns the node of the field key inside the node at, adding it if it has none.
func (t *pathTree) add(at int32, key string) int32 {
	if c := t.child(at, key); c != 0 {
		return c
	}
	c := int32(len(t.nodes))
	t.nodes = append(t.nodes, pathNode{key: key, next: t.nodes[at].first})
	n := &t.nodes[at]
	n.first = c
	n.n++
	switch {
	case n.index != nil:
		n.index[key] = c
	case n.n > 8:
		n.index = make(map[string]int32, 2*n.n)
		for d := n.first; d != 0; d = t.nodes[d].next {
			n.index[t.nodes[d].key] = d
		}
	}
	return c
}

// present is those of paths, the tree's, that a walk met, in order.
func (t *pathTree) present(paths []string) []string {
	if t == nil {
		return nil
	}
	var out []string
	for i, p := range paths {
		if t.nodes[t.leaf[i]].met {
			out = append(out, p)
		}
	}
	return out
}

// object appends obj, the field at node at, without the fields of the paths to dst, when emit is
// set, and reports whether it left any out.
func (t *pathTree) object(dst []byte, obj gjson.Result, at int32, emit bool) ([]byte, bool) {
	if emit {
		dst = append(dst, '{')
	}
	first, removed := true, false
	obj.ForEach(func(k, v gjson.Result) bool {
		c := t.child(at, keyName(k))
		if c != 0 && t.nodes[c].end {
			removed = true
			t.nodes[c].met = true
			if t.nodes[c].first != 0 {
				t.value(nil, v, c, false) // the paths inside it, which go with it
			}
			return true // left out, with whatever fields it has
		}
		if emit {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, k.Raw...)
			dst = append(dst, ':')
		}
		if c == 0 {
			if emit {
				dst = append(dst, v.Raw...)
			}
			return true
		}
		var r bool
		dst, r = t.value(dst, v, c, emit)
		removed = removed || r
		return true
	})
	if emit {
		dst = append(dst, '}')
	}
	return dst, removed
}

// value appends v, the field at node at, with the fields of the paths left out: of an object, of
// every object in a list, at any depth of lists (body.contacts.phone withholds the phone of every
// contact in a list, as of one contact in an object), or none of anything else.
func (t *pathTree) value(dst []byte, v gjson.Result, at int32, emit bool) ([]byte, bool) {
	switch {
	case v.IsObject():
		return t.object(dst, v, at, emit)
	case v.IsArray():
		if emit {
			dst = append(dst, '[')
		}
		removed, i := false, 0
		v.ForEach(func(_, e gjson.Result) bool {
			if emit && i > 0 {
				dst = append(dst, ',')
			}
			i++
			var r bool
			dst, r = t.value(dst, e, at, emit)
			removed = removed || r
			return true
		})
		if emit {
			dst = append(dst, ']')
		}
		return dst, removed
	}
	if emit {
		dst = append(dst, v.Raw...)
	}
	return dst, false
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
// order given: what redacting each of them alone would remove. A body that is not a JSON object
// has none. It walks the body once, however many the paths.
func Present(body []byte, paths []string) []string {
	if len(paths) == 0 || !validJSON(body) {
		return nil
	}
	v := gjson.ParseBytes(body)
	if !v.IsObject() {
		return nil
	}
	t := newPathTree(paths, "body.")
	t.object(nil, v, 0, false)
	return t.present(paths)
}
