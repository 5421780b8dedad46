package warn

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/knooppunt/knooppunt/node/record"
)

// Conditions on a record's fields. records("sitrep") is the list of the kind's records that count
// in the region at the instant of evaluation, each with the top-level fields its kind's schema
// declares as a string, a number, an integer or a boolean:
//
//	records("sitrep").exists(r, r.severity == "high")
//	records("signal").filter(s, s.confidence >= 0.8).size() >= 2
//
// Each kind is a CEL object type, so lint refuses a field the schema does not declare, or one
// used with the wrong type, with its position. A field a record lacks reads as its type's zero
// value ("" , 0, false); has(r.field) tells them apart. The fields come from the history, which
// keeps strings up to db.MaxHistoryString bytes: a longer string reads as absent.

// MaxRecordsEstimate is how many records of a kind per region lint assumes a condition walks when
// it estimates its cost. At run time the cost limit (CostBudget) stops a walk of more.
const MaxRecordsEstimate = 250

const recordTypePrefix = "knooppunt.record."

// recordType is the CEL object type of one kind's records: its declared scalar fields.
type recordType struct {
	kind   string
	celTyp *types.Type
	fields map[string]*types.FieldType
	names  []string
	zero   map[string]any
}

// scalarFields reads the top-level scalar properties of a kind's JSON Schema.
func scalarFields(k *record.Kind) map[string]*types.Type {
	var s struct {
		Properties map[string]struct {
			Type any   `json:"type"`
			Enum []any `json:"enum"`
		} `json:"properties"`
	}
	if len(k.Schema) == 0 || json.Unmarshal(k.Schema, &s) != nil {
		return nil
	}
	out := map[string]*types.Type{}
	for name, p := range s.Properties {
		t := p.Type
		if ts, ok := t.([]any); ok {
			// ["string", "null"] is a string that may be left out.
			var nonNull []any
			for _, x := range ts {
				if x != "null" {
					nonNull = append(nonNull, x)
				}
			}
			t = nil
			if len(nonNull) == 1 {
				t = nonNull[0]
			}
		}
		if t == nil && len(p.Enum) > 0 {
			t = enumType(p.Enum)
		}
		switch t {
		case "string":
			out[name] = types.StringType
		case "integer":
			out[name] = types.IntType
		case "number":
			out[name] = types.DoubleType
		case "boolean":
			out[name] = types.BoolType
		}
	}
	return out
}

// enumType is the JSON type all of an enum's values share, or nil.
func enumType(vals []any) any {
	var t any
	for _, v := range vals {
		var vt string
		switch v.(type) {
		case string:
			vt = "string"
		case float64:
			vt = "number"
		case bool:
			vt = "boolean"
		default:
			return nil
		}
		if t != nil && t != vt {
			return nil
		}
		t = vt
	}
	return t
}

func newRecordType(k *record.Kind) *recordType {
	fields := scalarFields(k)
	if len(fields) == 0 {
		return nil
	}
	rt := &recordType{kind: k.Name, celTyp: types.NewObjectType(recordTypePrefix + k.Name), fields: map[string]*types.FieldType{}, zero: map[string]any{}}
	for name, t := range fields {
		rt.names = append(rt.names, name)
		var zero any
		switch t {
		case types.StringType:
			zero = ""
		case types.IntType:
			zero = int64(0)
		case types.DoubleType:
			zero = float64(0)
		case types.BoolType:
			zero = false
		}
		rt.zero[name] = zero
		rt.fields[name] = &types.FieldType{
			Type: t,
			IsSet: func(obj any) bool {
				m, ok := obj.(map[string]any)
				if !ok {
					return false
				}
				_, set := m[name]
				return set
			},
			GetFrom: func(obj any) (any, error) {
				m, ok := obj.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("%s: not a record of kind %s", name, k.Name)
				}
				if v, set := m[name]; set {
					return v, nil
				}
				return zero, nil
			},
		}
	}
	sort.Strings(rt.names)
	return rt
}

// value converts a version's scalars to the field types, leaving out what does not fit: a number
// where the schema says string reads as absent rather than as a wrong type.
func (rt *recordType) value(v Version) recordVal {
	m := map[string]any{}
	for name, ft := range rt.fields {
		switch ft.Type {
		case types.IntType:
			if f, ok := v.Fields[name]; ok {
				m[name] = int64(f)
			}
		case types.DoubleType:
			if f, ok := v.Fields[name]; ok {
				m[name] = f
			}
		case types.StringType:
			if s, ok := v.Values[name].(string); ok {
				m[name] = s
			}
		case types.BoolType:
			if b, ok := v.Values[name].(bool); ok {
				m[name] = b
			}
		}
	}
	return recordVal{typ: rt.celTyp, fields: m}
}

// recordVal is one record as a condition sees it.
type recordVal struct {
	typ    *types.Type
	fields map[string]any
}

func (r recordVal) ConvertToNative(t reflect.Type) (any, error) {
	return nil, fmt.Errorf("a record of %s cannot be converted to %v", r.typ.TypeName(), t)
}

func (r recordVal) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return r.typ
	}
	return types.NewErr("a record of %s cannot be converted to %s", r.typ.TypeName(), t.TypeName())
}

func (r recordVal) Equal(o ref.Val) ref.Val {
	other, ok := o.(recordVal)
	return types.Bool(ok && other.typ.TypeName() == r.typ.TypeName() && reflect.DeepEqual(other.fields, r.fields))
}

func (r recordVal) Type() ref.Type { return r.typ }
func (r recordVal) Value() any     { return r.fields }

// recordProvider adds the kinds' record types to CEL's registry.
type recordProvider struct {
	*types.Registry
	byName map[string]*recordType
}

func newRecordProvider(kinds *record.Kinds) (*recordProvider, error) {
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	p := &recordProvider{Registry: reg, byName: map[string]*recordType{}}
	for _, n := range kinds.Names() {
		if rt := newRecordType(kinds.Get(n)); rt != nil {
			p.byName[rt.celTyp.TypeName()] = rt
		}
	}
	return p, nil
}

func (p *recordProvider) FindStructType(name string) (*types.Type, bool) {
	if rt, ok := p.byName[name]; ok {
		return types.NewTypeTypeWithParam(rt.celTyp), true
	}
	return p.Registry.FindStructType(name)
}

func (p *recordProvider) FindStructFieldNames(name string) ([]string, bool) {
	if rt, ok := p.byName[name]; ok {
		return slices.Clone(rt.names), true
	}
	return p.Registry.FindStructFieldNames(name)
}

func (p *recordProvider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if rt, ok := p.byName[name]; ok {
		ft, ok := rt.fields[field]
		return ft, ok
	}
	return p.Registry.FindStructFieldType(name, field)
}

// recordsFn is the function records(kind) expands to: one per kind, as each returns its own type.
func recordsFn(kind string) string { return "__records_" + kind }

// recordsFunctions declares records(kind)'s functions for every kind with fields.
func recordsFunctions(p *recordProvider, ec *evalCtx) []cel.EnvOption {
	names := make([]string, 0, len(p.byName))
	for n := range p.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []cel.EnvOption
	for _, n := range names {
		rt := p.byName[n]
		out = append(out, cel.Function(recordsFn(rt.kind), cel.Overload("warn_records_"+rt.kind, []*cel.Type{cel.TimestampType}, cel.ListType(rt.celTyp),
			cel.UnaryBinding(func(arg ref.Val) ref.Val {
				at := arg.(types.Timestamp).Time
				k := listKey{rt.kind, ec.crisis, ec.region, at.UnixNano()}
				list, ok := ec.h.lists[k]
				if !ok {
					vs := ec.h.Records(rt.kind, ec.crisis, ec.region, at)
					elems := make([]ref.Val, len(vs))
					for i, v := range vs {
						elems[i] = rt.value(v)
					}
					list = types.NewRefValList(types.DefaultTypeAdapter, elems)
					if ec.h.listed += len(elems); ec.h.listed > maxListed {
						clear(ec.h.lists)
						ec.h.listed = len(elems)
					}
					ec.h.lists[k] = list
				}
				ec.note(fmt.Sprintf("records(%q)", rt.kind), at, float64(list.(traits.Sizer).Size().(types.Int)))
				return list
			}))))
	}
	return out
}

// Records are the kind's records that counted in the region at the instant: each record's latest
// version at or before it, unless that version deletes the record, in the order of origin and id.
// An empty crisis means every crisis.
func (h *History) Records(kind, crisis, region string, at time.Time) []Version {
	if at.Before(h.since) {
		at = h.since
	}
	idx, ok := h.records[kind]
	if !ok {
		idx = map[recordKey][]Version{}
		for _, v := range h.byKind[kind] {
			rk := recordKey{v.Origin, v.ID}
			idx[rk] = append(idx[rk], v) // in the order they counted
		}
		h.records[kind] = idx
		keys := make([]recordKey, 0, len(idx))
		for k := range idx {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].origin != keys[j].origin {
				return keys[i].origin < keys[j].origin
			}
			return keys[i].id < keys[j].id
		})
		h.recordKeys[kind] = keys
	}
	var out []Version
	for _, rk := range h.recordKeys[kind] {
		vs := idx[rk]
		i := sort.Search(len(vs), func(i int) bool { return vs[i].At.After(at) })
		if i == 0 {
			continue
		}
		v := vs[i-1]
		if !v.Tombstone && v.Region == region && (crisis == "" || v.Crisis == crisis) {
			out = append(out, v)
		}
	}
	return out
}
