package record_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestPublicAlertKeepsItsScope: a public alert record of CAP scope Private is refused at
// record.body.scope: the node serves public alerts in an open feed as scope Public, and a Private
// alert's addresses went out with it (review J, F2). A Restricted one may be published on
// purpose; the same Private alert with no classification takes the one its scope maps to; and a
// public alert of scope Public passes.
func TestPublicAlertKeepsItsScope(t *testing.T) {
	c := newChecker(t)
	alert := func(scope string, cl pb.Classification) *pb.Record {
		return &pb.Record{Id: "a-1", Kind: record.AlertKind, Crisis: "oekraine", Region: "VR09", Classification: cl,
			Body: []byte(`{"identifier":"REST-X","sender":"lcms@vr-utrecht.nl","sent":"2026-12-06T10:40:00+01:00","status":"Actual","msgType":"Alert","scope":"` + scope + `","addresses":"a b","info":[{"category":["Safety"],"event":"Brand","urgency":"Immediate","severity":"Severe","certainty":"Observed","headline":"Grote brand"}]}`)}
	}
	err := c.CheckPut(alert("Private", pb.Classification_PUBLIC))
	var fe *record.FieldError
	if !errors.As(err, &fe) || fe.Field != "record.body.scope" || !strings.Contains(fe.Reason, "open feed") {
		t.Errorf("a public alert of scope Private: %v, want it refused at record.body.scope", err)
	}
	if err := c.CheckPut(alert("Restricted", pb.Classification_PUBLIC)); err != nil {
		t.Errorf("a public alert of scope Restricted, published on purpose: %v", err)
	}
	r := alert("Private", pb.Classification_CLASSIFICATION_UNSPECIFIED)
	if err := c.CheckPut(r); err != nil || r.Classification != pb.Classification_CONFIDENTIAL {
		t.Errorf("a Private alert with no classification: %v, classified %v; want it confidential", err, r.Classification)
	}
	if err := c.CheckPut(alert("Public", pb.Classification_PUBLIC)); err != nil {
		t.Errorf("a public alert of scope Public: %v", err)
	}
	// A time in UTC with Z, which CAP does not write, is said in words, not as the pattern.
	z := alert("Public", pb.Classification_PUBLIC)
	z.Body = []byte(strings.Replace(string(z.Body), "2026-12-06T10:40:00+01:00", "2026-12-06T09:40:00Z", 1))
	if err := c.CheckPut(z); !errors.As(err, &fe) || fe.Field != "record.body.sent" ||
		fe.Reason != `"2026-12-06T09:40:00Z" is not a CAP time: write YYYY-MM-DDThh:mm:ss±hh:mm, such as 2026-12-06T10:00:00+01:00 (CAP writes UTC as +00:00, not Z) (kind alert)` {
		t.Errorf("an alert sent at a time with Z: %v, want it refused at record.body.sent saying what a CAP time is", err)
	}
}
