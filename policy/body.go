package policy

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"github.com/tidwall/gjson"
)

// bodyUse is how a `when` expression can reach record.body, and so what a decision must do
// with the raw body before it evaluates the expression.
type bodyUse int

const (
	// bodyNone: the expression cannot reach the body, which is not read at all.
	bodyNone bodyUse = iota
	// bodyFields: the expression reaches the body only to look keys up in it: record.body.k,
	// has(record.body.k), record.body[k] and k in record.body. A lazy view of the raw bytes
	// serves it, and no decode of the whole body is needed.
	bodyFields
	// bodyWhole: the expression can see the body as a whole: size(record.body), a
	// comprehension over it, an equality, the record passed whole. The body is decoded with
	// encoding/json first, exactly as it always was.
	bodyWhole
)

// bodyUseOf classifies an expression. It is conservative: the only way to the body is through
// `record`, so an expression cannot reach it when every use of `record` selects a field other
// than body, such as record.crisis or has(record.region); it reaches only keys of the body when
// every other use is record.body as the operand of a select, of an index or of `in`. Any other
// use (record.body alone, the record as a whole, a name the checker folded) sees the whole body.
func bodyUseOf(e celast.Expr) bodyUse {
	uses, safe := 0, 0
	bodies := map[int64]bool{} // the record.body selects: true when used for a key lookup
	isBody := func(e celast.Expr) bool {
		if e.Kind() != celast.SelectKind {
			return false
		}
		sel := e.AsSelect()
		op := sel.Operand()
		return !sel.IsTestOnly() && sel.FieldName() == "body" && op.Kind() == celast.IdentKind && op.AsIdent() == "record"
	}
	lookup := func(e celast.Expr) {
		if isBody(e) {
			bodies[e.ID()] = true
		}
	}
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.IdentKind:
			if name := e.AsIdent(); name == "record" || strings.HasPrefix(name, "record.") {
				uses++
			}
		case celast.SelectKind:
			sel := e.AsSelect()
			op := sel.Operand()
			if op.Kind() == celast.IdentKind && op.AsIdent() == "record" {
				if sel.FieldName() != "body" {
					safe++
				} else if _, seen := bodies[e.ID()]; !seen {
					bodies[e.ID()] = false
				}
			}
			lookup(op)
		case celast.CallKind:
			call := e.AsCall()
			args := call.Args()
			switch {
			case call.FunctionName() == operators.Index && len(args) == 2 && !call.IsMemberFunction():
				lookup(args[0])
			case call.FunctionName() == operators.In && len(args) == 2 && !call.IsMemberFunction():
				lookup(args[1])
			}
		}
	}))
	if uses == safe {
		return bodyNone
	}
	if uses > safe+len(bodies) {
		return bodyWhole
	}
	for _, forLookup := range bodies {
		if !forLookup {
			return bodyWhole
		}
	}
	return bodyFields
}

// bodyFits reports whether encoding/json decodes body into a map[string]any without an error:
// it is valid JSON, an object or null, and every number in it fits a float64. When it reports
// false, the caller decodes with encoding/json for the error itself.
func bodyFits(body []byte) bool {
	if !validJSON(body) {
		return false
	}
	i := 0
	for i < len(body) && isSpace(body[i]) {
		i++
	}
	if body[i] != '{' && body[i] != 'n' {
		return false // an array, a string, a number, true or false
	}
	// encoding/json fails on a number out of the range of a float64, anywhere in the body.
	// One without an exponent and of at most 300 bytes is always in range.
	for ; i < len(body); i++ {
		switch c := body[i]; {
		case c == '"':
			for i++; body[i] != '"'; i++ {
				if body[i] == '\\' {
					i++
				}
			}
		case c == '-' || c >= '0' && c <= '9':
			j, exp := i, false
			for ; j < len(body) && isNumberByte(body[j]); j++ {
				exp = exp || body[j] == 'e' || body[j] == 'E'
			}
			if exp || j-i > 300 {
				if _, err := strconv.ParseFloat(string(body[i:j]), 64); err != nil {
					return false
				}
			}
			i = j - 1
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// bodyView is record.body for a condition that only looks keys up in it (bodyFields): a CEL
// map over the raw bytes of a body that bodyFits. A key lookup reads the one member it needs,
// the last of that name as encoding/json keeps it, and decodes its value exactly as
// encoding/json and CEL's type adapter do. Everything else it answers from the whole body,
// decoded with encoding/json once and held as the standard CEL map, so that it means exactly
// what the map of a full decode means.
type bodyView struct {
	raw  string // the body, a JSON object or null that bodyFits
	null bool

	looked []bodyMember  // the keys looked up so far, found or not
	full   traits.Mapper // the standard map of the decoded body, once something needs it
	err    error         // a decode that failed: the decision must fail
}

type bodyMember struct {
	key string
	val ref.Val // nil: no such key
}

var _ traits.Mapper = (*bodyView)(nil)

// newBodyView returns the view of body, which must fit (bodyFits).
func newBodyView(body []byte) *bodyView {
	raw := string(body)
	return &bodyView{raw: raw, null: strings.Trim(raw, " \t\r\n") == "null"}
}

// lookup returns the value of the member named key, or nil if there is none.
func (v *bodyView) lookup(key string) ref.Val {
	for _, m := range v.looked {
		if m.key == key {
			return m.val
		}
	}
	var val ref.Val
	if !v.null {
		var last gjson.Result
		gjson.Parse(v.raw).ForEach(func(k, m gjson.Result) bool {
			if keyName(k) == key {
				last = m // encoding/json keeps the last of repeated keys
			}
			return true
		})
		if last.Exists() {
			val = v.value(last)
		}
	}
	v.looked = append(v.looked, bodyMember{key, val})
	return val
}

// value converts a member's value to what the adapter makes of encoding/json's decoding.
func (v *bodyView) value(m gjson.Result) ref.Val {
	switch m.Type {
	case gjson.Null:
		return types.NullValue
	case gjson.True:
		return types.True
	case gjson.False:
		return types.False
	case gjson.Number:
		f, err := strconv.ParseFloat(m.Raw, 64)
		if err != nil {
			return v.fail(err) // unreachable: the body fits
		}
		return types.Double(f)
	case gjson.String:
		if !strings.Contains(m.Raw, `\`) && utf8.ValidString(m.Str) {
			return types.String(m.Str)
		}
	}
	// An escaped or invalid string, an object, an array: decoded by encoding/json itself.
	var x any
	if err := json.Unmarshal([]byte(m.Raw), &x); err != nil {
		return v.fail(err) // unreachable: the body fits
	}
	return celAdapter.NativeToValue(x)
}

func (v *bodyView) fail(err error) ref.Val {
	if v.err == nil {
		v.err = err
	}
	return types.WrapErr(err)
}

// whole returns the standard map of the decoded body, decoding it on first need. A decode that
// fails, which bodyFits rules out, leaves an empty map and the error, which fails the decision.
func (v *bodyView) whole() traits.Mapper {
	if v.full != nil {
		return v.full
	}
	var body map[string]any
	err := json.Unmarshal([]byte(v.raw), &body)
	if err == nil {
		v.full, err = bodyMap(body)
	}
	if err != nil {
		v.fail(err)
		v.full = types.NewStringInterfaceMap(celAdapter, nil)
	}
	return v.full
}

// Find implements traits.Mapper: by key for a string, from the whole body otherwise.
func (v *bodyView) Find(key ref.Val) (ref.Val, bool) {
	if k, ok := key.(types.String); ok && v.full == nil {
		val := v.lookup(string(k))
		return val, val != nil
	}
	return v.whole().Find(key)
}

// Get implements traits.Indexer.
func (v *bodyView) Get(key ref.Val) ref.Val {
	if val, found := v.Find(key); found {
		return val
	}
	return v.whole().Get(key) // the standard error for a missing key
}

// Contains implements traits.Container.
func (v *bodyView) Contains(key ref.Val) ref.Val {
	if k, ok := key.(types.String); ok && v.full == nil {
		return types.Bool(v.lookup(string(k)) != nil)
	}
	return v.whole().Contains(key)
}

// Iterator implements traits.Iterable, from the whole body.
func (v *bodyView) Iterator() traits.Iterator {
	return v.whole().Iterator()
}

// Size implements traits.Sizer, from the whole body.
func (v *bodyView) Size() ref.Val {
	return v.whole().Size()
}

// ConvertToNative implements ref.Val, from the whole body.
func (v *bodyView) ConvertToNative(typeDesc reflect.Type) (any, error) {
	return v.whole().ConvertToNative(typeDesc)
}

// ConvertToType implements ref.Val: the whole body, as the standard map converts.
func (v *bodyView) ConvertToType(typeVal ref.Type) ref.Val {
	return v.whole().ConvertToType(typeVal)
}

// Equal implements ref.Val, from the whole body.
func (v *bodyView) Equal(other ref.Val) ref.Val {
	if o, ok := other.(*bodyView); ok {
		other = o.whole()
	}
	return v.whole().Equal(other)
}

// Type implements ref.Val: a map, as the standard map's.
func (v *bodyView) Type() ref.Type { return types.MapType }

// Value implements ref.Val: the decoded body, as the standard map's.
func (v *bodyView) Value() any {
	return v.whole().Value()
}
