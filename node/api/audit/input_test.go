package audit_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestAuditListRefuses: a filter no entry can match is refused, naming the field, as before_seq
// and crisis were, rather than answered with nothing (review AF, AF8); since is refused in the
// node's words (review AF, AF7).
func TestAuditListRefuses(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Replicas: 1})
	r := c.Leader(t, 10*time.Second, c.Replicas...)
	audit := pb.NewAuditServiceClient(r.Local(t))
	const times = "use a time between 1677-09-21T00:12:44Z and 2262-04-11T23:47:16Z"
	huge := strings.Repeat("a", 1<<20)

	for _, tc := range []struct {
		name  string
		req   *pb.ListAuditRequest
		field string
		msg   string
	}{
		{"after_seq -1", &pb.ListAuditRequest{AfterSeq: -1}, "after_seq", "after_seq: -1 is negative: use 0 for no bound, or the seq of an entry"},
		{"after_seq min", &pb.ListAuditRequest{AfterSeq: -9223372036854775808}, "after_seq", "after_seq: -9223372036854775808 is negative"},
		{"before_seq -1", &pb.ListAuditRequest{BeforeSeq: -1}, "before_seq", "before_seq: -1 is negative: use 0 for no bound, or the seq of an entry"},
		{"actor of invalid UTF-8", &pb.ListAuditRequest{Actor: "ab\xffcd"}, "actor", "actor: not valid UTF-8: give it as `audit list` shows it"},
		{"actor with NUL", &pb.ListAuditRequest{Actor: "spiffe://x.test/user/a\x00"}, "actor", "actor: holds a control or invisible character (U+0000) at byte 22"},
		{"actor of 1 MiB", &pb.ListAuditRequest{Actor: huge}, "actor", "actor: 1048576 bytes is over the limit of 2048"},
		{"subject with NUL", &pb.ListAuditRequest{Subject: "\x00"}, "subject", "subject: holds a control or invisible character (U+0000) at byte 0"},
		{"subject of 1 MiB", &pb.ListAuditRequest{Subject: huge}, "subject", "subject: 1048576 bytes is over the limit of 2048"},
		{"purpose of invalid UTF-8", &pb.ListAuditRequest{Purpose: "\xff"}, "purpose", "purpose: not valid UTF-8"},
		{"purpose with NUL", &pb.ListAuditRequest{Purpose: "opvang\x00"}, "purpose", "purpose: holds a control or invisible character (U+0000) at byte 6"},
		{"purpose of 1 MiB", &pb.ListAuditRequest{Purpose: huge}, "purpose", "purpose: 1048576 bytes is over the limit of"},
		{"crisis of invalid UTF-8", &pb.ListAuditRequest{Crisis: "\xff"}, "crisis", `crisis: "\xff" is not a crisis name`},
		{"crisis of 1 MiB", &pb.ListAuditRequest{Crisis: huge}, "crisis", `crisis: "` + strings.Repeat("a", 80) + `…" is not a crisis name`},
		{"since the year 1", &pb.ListAuditRequest{Since: timestamppb.New(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))}, "since", "since: 0001-01-01T00:00:00Z is outside the times a node can hold: " + times},
		{"since the year 9999", &pb.ListAuditRequest{Since: timestamppb.New(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))}, "since", "since: 9999-01-01T00:00:00Z is outside the times a node can hold: " + times},
		{"since the year 0", &pb.ListAuditRequest{Since: &timestamppb.Timestamp{Seconds: -62167219200}}, "since", "since: -62167219200 seconds since 1970 is outside the times a node can hold: " + times},
		{"since with nanos -1", &pb.ListAuditRequest{Since: &timestamppb.Timestamp{Seconds: 1700000000, Nanos: -1}}, "since", "since: nanos -1 is not a fraction of a second: use 0 to 999999999"},
		{"action of 1 MiB", &pb.ListAuditRequest{Action: huge}, "action", `action: "` + strings.Repeat("a", 80) + `…" is no audit action`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := audit.List(clustertest.Call(t), tc.req)
			clustertest.WantRefused(t, err, codes.InvalidArgument, tc.field, tc.msg)
		})
	}
	// What a filter can match still lists.
	if _, err := audit.List(clustertest.Call(t), &pb.ListAuditRequest{Actor: "spiffe://" + clustertest.Org + "/user/x", Subject: "seed-1",
		Purpose: "spreiding en opvang", Crisis: "oekraine", Since: timestamppb.New(time.Now().Add(-time.Hour)), AfterSeq: 1}); err != nil {
		t.Fatalf("List with filters that can match: %v", err)
	}
}
