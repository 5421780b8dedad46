package search

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/node/assessment"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func TestLeaveOut(t *testing.T) {
	long := strings.Repeat("x", largeValue)
	body := []byte(`{"title":"Opvang","summary":"` + long + `","beds_free":12,"nested":{"a":["` + long + `"]},"municipality":"GM0344"}`)
	out, left, ok := leaveOut(body, largeValue)
	if !ok || string(out) != `{"title":"Opvang","beds_free":12,"municipality":"GM0344"}` || !slices.Equal(left, []string{"summary", "nested"}) {
		t.Errorf("leaveOut at %d: %s, %q, %v", largeValue, out, left, ok)
	}
	if out, left, ok := leaveOut(body, 0); !ok || string(out) != `{}` || len(left) != 5 {
		t.Errorf("leaveOut at 0: %s, %q, %v", out, left, ok)
	}
	if out, left, ok := leaveOut([]byte(`{"a\"b":"`+long+`","c":1}`), largeValue); !ok || string(out) != `{"c":1}` || !slices.Equal(left, []string{`a"b`}) {
		t.Errorf("a key with a quote: %s, %q, %v", out, left, ok)
	}
	files := `[{"name":"` + long + `.pdf","sha256":"ab","size":1}]`
	if out, left, ok := leaveOut([]byte(`{"attachments":`+files+`,"text":"`+long+`"}`), largeValue); !ok || string(out) != `{"attachments":`+files+`}` || !slices.Equal(left, []string{"text"}) {
		t.Errorf("a long file list: %.80s, %q, %v", out, left, ok)
	}
	if out, _, ok := leaveOut([]byte(`{"a<b>&c":1,"d":"`+long+`"}`), largeValue); !ok || string(out) != `{"a<b>&c":1}` {
		t.Errorf("a key with <, > and &: %s, %v", out, ok)
	}
	if _, _, ok := leaveOut([]byte(`[1,2]`), 0); ok {
		t.Error("a body that is no object was taken")
	}
}

// TestFitPicture: a picture over its bound loses the large values of its largest bodies first,
// says which of each entry, and keeps the small values and every entry; one that does not fit
// even so is refused, naming the crisis.
func TestFitPicture(t *testing.T) {
	entry := func(id string, summary int) *pb.PictureEntry {
		return &pb.PictureEntry{Kind: "sitrep", Key: id, Source: "a.crisis.test", Record: &pb.Record{Id: id,
			Body: fmt.Appendf(nil, `{"title":"%s","summary":"%s"}`, id, strings.Repeat("x", summary))}}
	}
	alert, assessed, response := entry("alert", 90_000), entry("assessment", 85_000), entry("response", 82_000)
	alert.Kind, assessed.Kind, response.Kind = record.AlertKind, assessment.Kind, assessment.ResponseKind
	resp := &pb.PictureResponse{Crisis: "c", Entries: []*pb.PictureEntry{entry("small", 100), entry("big", 50_000), entry("bigger", 80_000), alert, assessed, response, entry("mid", 20_000)}}
	whole := proto.Clone(resp).(*pb.PictureResponse)
	if err := fitPicture(resp, proto.Size(resp)); err != nil || !proto.Equal(resp, whole) {
		t.Fatalf("a picture at its bound changed: %v", err)
	}
	// Room for all but the largest body but the alert's and the assessment's and its
	// response's, which stay whole: that one alone loses its summary.
	max := proto.Size(resp) - 70_000
	if err := fitPicture(resp, max); err != nil {
		t.Fatal(err)
	}
	// A shared assessment's fingerprint of the picture is that of the whole records.
	if got, want := assessment.Fingerprint(resp), assessment.Fingerprint(whole); got.Hash != want.Hash {
		t.Errorf("the fingerprint of the shortened picture is %s, of the whole one %s", got.Hash, want.Hash)
	}
	if size := proto.Size(resp); size > max {
		t.Errorf("%d bytes, over %d", size, max)
	}
	for _, e := range resp.Entries {
		want := []string(nil)
		if e.Key == "bigger" {
			want = []string{"summary"}
		}
		if !slices.Equal(e.FieldsLeftOut, want) || !strings.HasPrefix(string(e.Record.Body), `{"title":"`+e.Key+`"`) {
			t.Errorf("%s: left out %q, body %.40s", e.Key, e.FieldsLeftOut, e.Record.Body)
		}
	}
	// Room for no body at all: the picture says so.
	tiny := &pb.PictureResponse{Crisis: "c", Entries: []*pb.PictureEntry{entry("a", 10), entry("b", 10)}}
	err := fitPicture(tiny, 20)
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.HasPrefix(st.Message(), "crisis: its picture holds 2 entries") || !strings.Contains(st.Message(), "(20 bytes)") {
		t.Errorf("a picture that cannot fit: %v", err)
	}
}

// TestFitPictureLeavesOutDisagreeingFirst: a picture over its bound first leaves out the records
// of the sources that disagree with an entry, all of an entry's at once and the largest first,
// before any entry's body loses a value; each entry still names those sources.
func TestFitPictureLeavesOutDisagreeingFirst(t *testing.T) {
	entry := func(id string, summary int, others ...int) *pb.PictureEntry {
		e := &pb.PictureEntry{Kind: "sitrep", Key: id, Source: "a.crisis.test", Record: &pb.Record{Id: id,
			Body: fmt.Appendf(nil, `{"title":"%s","summary":"%s"}`, id, strings.Repeat("x", summary))}}
		for i, n := range others {
			src := fmt.Sprintf("%c.crisis.test", 'b'+i)
			e.Conflict = append(e.Conflict, src)
			e.Disagreeing = append(e.Disagreeing, &pb.Record{Id: id, Origin: src, Body: fmt.Appendf(nil, `{"title":"%s","summary":"%s"}`, id, strings.Repeat("y", n))})
		}
		return e
	}
	resp := &pb.PictureResponse{Crisis: "c", Entries: []*pb.PictureEntry{entry("small", 100, 200), entry("big", 50_000, 30_000, 20_000), entry("mid", 20_000, 10_000)}}
	// Room for all but the 50,000 bytes of big's disagreeing records: those alone go.
	max := proto.Size(resp) - 45_000
	if err := fitPicture(resp, max); err != nil {
		t.Fatal(err)
	}
	if size := proto.Size(resp); size > max {
		t.Errorf("%d bytes, over %d", size, max)
	}
	for _, e := range resp.Entries {
		wantOthers := map[string]int{"small": 1, "big": 0, "mid": 1}[e.Key]
		if len(e.Disagreeing) != wantOthers || len(e.FieldsLeftOut) != 0 || e.Conflict == nil {
			t.Errorf("%s: %d records of disagreeing sources, want %d; left out %q; conflict %q", e.Key, len(e.Disagreeing), wantOthers, e.FieldsLeftOut, e.Conflict)
		}
	}
	// Room for less than the entries whole: every disagreeing record goes before a body is
	// shortened.
	max = proto.Size(resp) - 15_000
	if err := fitPicture(resp, max); err != nil {
		t.Fatal(err)
	}
	for _, e := range resp.Entries {
		want := []string(nil)
		if e.Key == "big" {
			want = []string{"summary"}
		}
		if len(e.Disagreeing) != 0 || !slices.Equal(e.FieldsLeftOut, want) || len(e.Conflict) == 0 {
			t.Errorf("%s: %d records of disagreeing sources, left out %q, conflict %q", e.Key, len(e.Disagreeing), e.FieldsLeftOut, e.Conflict)
		}
	}
}
