package api

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/node/config"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// storedRecords answers Get with the one record it holds, as a cache would.
type storedRecords struct {
	pb.UnimplementedRecordServiceServer
	r *pb.Record
}

func (s storedRecords) Get(context.Context, *pb.GetRequest) (*pb.Record, error) { return s.r, nil }

// TestInProcessReplies: a reply on the channel equals the handler's, unknown fields included.
// By default it is a deep copy that the caller may change without touching the handler's
// message; with ShareReplies it shares that message's memory instead of copying it.
func TestInProcessReplies(t *testing.T) {
	rec := &pb.Record{Id: "s1", Kind: "shelter.capacity", Labels: map[string]string{"source": "coa"}, Body: []byte(`{"beds_free":14}`), Version: 3}
	rec.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7))
	c := config.Default()
	c.Roles = []config.RoleBinding{{ID: "spiffe://" + c.Org + "/user/rita", Role: config.RoleReader}}
	access, err := NewAccess(c)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := AsPerson(context.Background(), spiffeid.RequireFromString("spiffe://"+c.Org+"/user/rita"))
	for _, share := range []bool{false, true} {
		ch := NewInProcess(NewAuthorizer(access, log), LogUnary(log))
		if share {
			ch.ShareReplies()
		}
		pb.RegisterRecordServiceServer(ch, storedRecords{r: rec})
		got, err := pb.NewRecordServiceClient(ch).Get(ctx, &pb.GetRequest{Id: "s1"})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, rec) || string(got.ProtoReflect().GetUnknown()) != string(rec.ProtoReflect().GetUnknown()) {
			t.Fatalf("share=%v: reply %v, want %v", share, got, rec)
		}
		if shared := &got.Body[0] == &rec.Body[0]; shared != share {
			t.Errorf("share=%v: the reply's body is the handler's: %v", share, shared)
		}
		if !share {
			got.Labels["source"] = "changed"
			if rec.Labels["source"] != "coa" {
				t.Errorf("a change to the copied reply reached the handler's record: %v", rec.Labels)
			}
		}
	}
}

// TestShareInto: every field of a generated message, a oneof among them, is shared.
func TestShareInto(t *testing.T) {
	src := &pb.FeedEvent{Seq: 9, Event: &pb.FeedEvent_Retraction{Retraction: &pb.Retraction{RecordId: "s1"}}}
	dst := &pb.FeedEvent{Seq: 1, Event: &pb.FeedEvent_Heartbeat{Heartbeat: &pb.Heartbeat{}}}
	if !shareInto(dst, src) || !proto.Equal(dst, src) || dst.GetRetraction() != src.GetRetraction() {
		t.Errorf("shareInto: %v, want %v", dst, src)
	}
	if shareInto(dst, &pb.Record{}) {
		t.Error("shareInto across two message types")
	}
}
