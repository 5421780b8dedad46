package ui

import (
	"html/template"
	"maps"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// versionView is one row of a record page's versions: what the history keeps of one version,
// and what changed from the version before it.
type versionView struct {
	Version int64
	Age     string
	Date    template.HTML
	Deleted bool
	Values  []keptValue
	// Changed names (labels) the values that differ from the version before, in the order of
	// Values; First marks the oldest
	// version kept, which has none before it.
	Changed []string
	First   bool
}

// keptValue is one value the history keeps of a version; Changed marks one that differs from
// the version before, Gone one the version before had and this one has not.
type keptValue struct {
	Name, Value   string
	Changed, Gone bool
	// Label is the field's name for people (fieldLabeler).
	Label string
}

// versions reads the versions of rec that the node's history keeps, newest first, leaving out
// the fields the source withheld from the current version: an earlier version never shows
// what the latest one does not grant. A record the history does not know (a partner's record
// that was read live, never cached) has none. Values go in order (the kind's schema's order) and
// by label, as on the record page.
func (s *Server) versions(r *request, rec *pb.Record, withheld map[string]bool, order []string, label func(string) string) ([]versionView, error) {
	origin := rec.Origin
	if origin == s.c.Org {
		origin = ""
	}
	resp, err := pb.NewRecordServiceClient(s.c.Conn).Versions(r.ctx(), &pb.VersionsRequest{Id: rec.Id, Origin: origin, Mode: r.mode()})
	if status.Code(err) == codes.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := time.Now()
	kept := make([]map[string]string, len(resp.Versions))
	for i, v := range resp.Versions {
		kept[i] = map[string]string{}
		for k, val := range v.Fields.GetFields() {
			if !withheld[k] {
				kept[i][k] = keptText(r.L, k, val)
			}
		}
	}
	fields := func(m map[string]string) []string {
		names := slices.Collect(maps.Keys(m))
		sortFields(names, order)
		return names
	}
	out := make([]versionView, 0, len(resp.Versions))
	for i, v := range resp.Versions {
		vv := versionView{Version: v.Version, Deleted: v.Deleted, First: i == len(resp.Versions)-1}
		if v.UpdatedAt != nil {
			at := v.UpdatedAt.AsTime()
			vv.Age, vv.Date = age(r.L, int64(now.Sub(at)/time.Second)), r.L.When(at)
		}
		var before map[string]string
		if !vv.First {
			before = kept[i+1]
		}
		if !v.Deleted {
			for _, k := range fields(kept[i]) {
				val := kept[i][k]
				was, ok := before[k]
				changed := before != nil && (!ok || was != val)
				vv.Values = append(vv.Values, keptValue{Name: k, Label: label(k), Value: val, Changed: changed})
				if changed {
					vv.Changed = append(vv.Changed, label(k))
				}
			}
			for _, k := range fields(before) {
				if _, ok := kept[i][k]; !ok {
					vv.Values = append(vv.Values, keptValue{Name: k, Label: label(k), Gone: true, Changed: true})
					vv.Changed = append(vv.Changed, label(k))
				}
			}
		}
		out = append(out, vv)
	}
	return out, nil
}

// yesNo is a yes/no value in the page's language.
func yesNo(l *Lang, b bool) string {
	if b {
		return l.T("recordform.yes")
	}
	return l.T("recordform.no")
}

// keptText shows the kept value of field: a figure, a yes/no value and a value from a fixed
// list (a severity) as people of the page's language read them.
func keptText(l *Lang, field string, v *structpb.Value) string {
	switch x := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		return l.Number(x.NumberValue)
	case *structpb.Value_BoolValue:
		return yesNo(l, x.BoolValue)
	case *structpb.Value_StringValue:
		return l.Value(field, x.StringValue)
	}
	return ""
}
