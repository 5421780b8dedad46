package webhooks_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestWebhookInputRefused: a value that cannot be a webhook's id is INVALID_ARGUMENT naming its
// field, and only a well-formed one is looked up and NOT_FOUND (review AF, AF5); a filter that
// names a value twice is refused as a search filter's is, and an overlap protobuf cannot hold is
// refused in the node's words (review AF, AF7 and AF8). Nothing is added.
func TestWebhookInputRefused(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Replicas: 1})
	r := c.Leader(t, 10*time.Second, c.Replicas...)
	hooks := pb.NewWebhookServiceClient(r.Local(t))
	const url = "https://hooks.example.nl/x"
	huge := strings.Repeat("a", 1<<20)

	for _, tc := range []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
		msg   string
	}{
		{"remove, invalid UTF-8", func() error {
			_, err := hooks.Remove(clustertest.Call(t), &pb.RemoveWebhookRequest{Id: "\xff"})
			return err
		},
			codes.InvalidArgument, "id", `id: "\xff" is not a webhook id, such as wh_0123456789abcdef: see knooppunt webhook list`},
		{"remove, 1 MiB", func() error {
			_, err := hooks.Remove(clustertest.Call(t), &pb.RemoveWebhookRequest{Id: huge})
			return err
		},
			codes.InvalidArgument, "id", `id: "` + strings.Repeat("a", 80) + `…" is not a webhook id`},
		{"remove, none such", func() error {
			_, err := hooks.Remove(clustertest.Call(t), &pb.RemoveWebhookRequest{Id: "wh_nope"})
			return err
		},
			codes.NotFound, "id", `id: no webhook "wh_nope": see knooppunt webhook list`},
		{"rotate, NUL", func() error {
			_, err := hooks.Rotate(clustertest.Call(t), &pb.RotateWebhookRequest{Id: "wh_\x00"})
			return err
		},
			codes.InvalidArgument, "id", `id: "wh_\x00" is not a webhook id`},
		{"failures, NUL", func() error {
			_, err := hooks.Failures(clustertest.Call(t), &pb.WebhookFailuresRequest{Webhook: "\x00"})
			return err
		}, codes.InvalidArgument, "webhook", `webhook: "\x00" is not a webhook id`},
		{"retry, spaces", func() error {
			_, err := hooks.Retry(clustertest.Call(t), &pb.RetryWebhookRequest{Webhook: "   "})
			return err
		},
			codes.InvalidArgument, "webhook", `webhook: "   " is not a webhook id`},
		{"rotate, an overlap of opposite signs", func() error {
			_, err := hooks.Rotate(clustertest.Call(t), &pb.RotateWebhookRequest{Id: "wh_nope", Overlap: &durationpb.Duration{Seconds: 1, Nanos: -5}})
			return err
		}, codes.InvalidArgument, "overlap", `overlap: 1 seconds and -5 nanos have opposite signs: give both the sign of the duration`},
		{"rotate, an overlap of out-of-range nanos", func() error {
			_, err := hooks.Rotate(clustertest.Call(t), &pb.RotateWebhookRequest{Id: "wh_nope", Overlap: &durationpb.Duration{Nanos: 2e9}})
			return err
		}, codes.InvalidArgument, "overlap", `overlap: nanos 2000000000 is not a fraction of a second`},
		{"add, a kind twice", func() error {
			_, err := hooks.Add(clustertest.Call(t), &pb.AddWebhookRequest{Url: url, Kinds: []string{"sitrep", "qa", "sitrep"}})
			return err
		}, codes.InvalidArgument, "kinds[2]", `kinds[2]: "sitrep" is named already, at kinds[0]: name each kind once`},
		{"add, a crisis twice", func() error {
			_, err := hooks.Add(clustertest.Call(t), &pb.AddWebhookRequest{Url: url, Crises: []string{"oekraine", "oekraine"}})
			return err
		}, codes.InvalidArgument, "crises[1]", `crises[1]: "oekraine" is named already, at crises[0]: name each crisis once`},
		{"add, a region twice", func() error {
			_, err := hooks.Add(clustertest.Call(t), &pb.AddWebhookRequest{Url: url, Regions: []string{"VR09", "NL", "VR09"}})
			return err
		}, codes.InvalidArgument, "regions[2]", `regions[2]: "VR09" is named already, at regions[0]: name each region once`},
		{"add, an unknown kind", func() error {
			_, err := hooks.Add(clustertest.Call(t), &pb.AddWebhookRequest{Url: url, Kinds: []string{huge}})
			return err
		}, codes.InvalidArgument, "kinds[0]", `kinds[0]: "` + strings.Repeat("a", 80) + `…" is not a kind of this node`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clustertest.WantRefused(t, tc.call(), tc.code, tc.field, tc.msg)
		})
	}
	if list, err := hooks.List(clustertest.Call(t), &pb.ListWebhooksRequest{}); err != nil || len(list.Webhooks) != 0 {
		t.Fatalf("webhooks after the refusals: %v, %v; want none", list, err)
	}
}
