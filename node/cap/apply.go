package cap

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// What Apply did with an alert.
const (
	Created   = "created"
	Updated   = "updated"
	Cancelled = "cancelled"
)

// Result says what Apply did.
type Result struct {
	Action  string `json:"action"`
	ID      string `json:"id"`
	Version int64  `json:"version"`
	// Note says what the caller may want to know, such as an Update that referenced no stored
	// alert and was stored as a new one.
	Note string `json:"note,omitempty"`
}

// Apply stores an alert through a node's RecordService as CAP means it: an Alert is a record of
// its own (the same alert twice is the same record); an Update rewrites the record of the latest
// alert it references, keeping its id, crisis and region; a Cancel deletes it. Nothing is written
// unless the whole alert maps to a valid record. An error from the node is returned as its gRPC
// status.
func Apply(ctx context.Context, c pb.RecordServiceClient, a *Alert, opts ImportOptions) (Result, error) {
	rec, err := ToRecord(a, opts)
	if err != nil {
		return Result{}, err
	}
	switch a.MsgType {
	case "Alert":
		return put(ctx, c, rec, Created, "")
	case "Update", "Cancel":
	default:
		return Result{}, fieldErr("alert.msgType", "%s messages answer other alerting systems and are not stored: import Alert, Update or Cancel", a.MsgType)
	}
	refs, err := a.ReferenceList()
	if err != nil {
		return Result{}, err
	}
	if len(refs) == 0 {
		return Result{}, fieldErr("alert.references", "missing: a %s names the alerts it refers to as sender,identifier,sent", a.MsgType)
	}
	target, err := findReferenced(ctx, c, refs)
	if err != nil {
		return Result{}, err
	}
	if a.MsgType == "Cancel" {
		if target == nil {
			return Result{}, status.Errorf(codes.NotFound, "alert.references: no stored alert matches %s: nothing to cancel", a.References)
		}
		res, err := c.Delete(ctx, &pb.DeleteRequest{Id: target.Id, Version: target.Version})
		if err != nil {
			return Result{}, err
		}
		return Result{Action: Cancelled, ID: target.Id, Version: res.Version}, nil
	}
	if target == nil {
		return put(ctx, c, rec, Created, "it references no stored alert: stored as a new one")
	}
	rec.Id, rec.Version = target.Id, target.Version
	if opts.Crisis == "" {
		rec.Crisis = target.Crisis
	}
	if opts.Region == "" {
		rec.Region = target.Region
	}
	return put(ctx, c, rec, Updated, "")
}

func put(ctx context.Context, c pb.RecordServiceClient, rec *pb.Record, action, note string) (Result, error) {
	res, err := c.Put(ctx, &pb.PutRequest{Record: rec})
	if err != nil {
		return Result{}, err
	}
	return Result{Action: action, ID: res.Id, Version: res.Version, Note: note}, nil
}

// findReferenced is the stored alert record of the latest reference that has one: the record
// the referenced alert created, or the one a later Update of it rewrote (LabelRef). It is nil
// when no reference has a record.
func findReferenced(ctx context.Context, c pb.RecordServiceClient, refs []Reference) (*pb.Record, error) {
	for i := len(refs) - 1; i >= 0; i-- {
		id := RecordID(refs[i].Sender, refs[i].Identifier)
		r, err := c.Get(ctx, &pb.GetRequest{Id: id, Consistency: "strong"})
		switch status.Code(err) {
		case codes.OK:
			if r.Kind == Kind && !r.Tombstone {
				return r, nil
			}
		case codes.NotFound:
		default:
			return nil, err
		}
		resp, err := c.List(ctx, &pb.ListRequest{Kind: Kind, LabelSelector: LabelRef + "=" + id, Consistency: "strong", PageSize: 10})
		if err != nil {
			return nil, err
		}
		for _, r := range resp.Records {
			var h struct{ Sender string }
			if json.Unmarshal(r.Body, &h) == nil && h.Sender == refs[i].Sender {
				return r, nil
			}
		}
	}
	return nil, nil
}

// Describe is a one-line account of a result, for people.
func (r Result) Describe() string {
	s := fmt.Sprintf("%s %s (version %d)", r.Action, r.ID, r.Version)
	if r.Note != "" {
		s += ": " + strings.TrimSpace(r.Note)
	}
	return s
}
