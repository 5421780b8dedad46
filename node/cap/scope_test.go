package cap_test

import (
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/cap"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestPublicAlertSaysNotWhomItWasFor: a public alert record stored with a Private scope, before
// such a mix was refused, goes out as scope Public without the addresses that said whom it was
// for (review J, F2).
func TestPublicAlertSaysNotWhomItWasFor(t *testing.T) {
	r := &pb.Record{Id: "a-1", Origin: "vr-utrecht.crisis.test", Kind: cap.Kind, Crisis: "oekraine", Region: "VR09", Version: 1,
		Classification: pb.Classification_PUBLIC, UpdatedAt: timestamppb.Now(),
		Body: []byte(`{"identifier":"REST-X","sender":"lcms@vr-utrecht.nl","sent":"2026-12-06T10:40:00+01:00","status":"Actual","msgType":"Alert","scope":"Private","addresses":"a b","info":[{"category":["Safety"],"event":"Brand","urgency":"Immediate","severity":"Severe","certainty":"Observed","headline":"Grote brand"}]}`)}
	a, err := cap.FromRecord(r, cap.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Scope != "Public" || a.Addresses != "" {
		t.Errorf("the public alert goes out with scope %q, addresses %q; want Public and none", a.Scope, a.Addresses)
	}
}
