package search

import (
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/tidwall/gjson"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/assessment"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// largeValue is the size in bytes of a body field's JSON value that a picture too large for its
// bound leaves out first: long texts, not a title, a municipality or a number.
const largeValue = 1 << 10

// fitPicture keeps a picture within max bytes, so that a crisis with many large records (a
// partner's long situation reports) still has a picture, and one that the client takes in. It
// leaves out first the records of the sources that disagree with an entry (disagreeing), all of
// an entry's at once, entry by entry from the largest down: the entry still names those sources
// (conflict), and its own record stays whole. Then it
// leaves out values of the largest bodies first: in a first pass the values over largeValue, in
// a second every value, entry by entry from the largest body down, until the picture fits; an
// alert's body stays whole, and so do a shared assessment's and its responses'. Each
// entry names the fields it left out (fields_left_out) and the hash of its whole body. Sums, disagreements and stale flags were
// made of the whole records before. A picture that does not fit even with empty bodies is
// refused with RESOURCE_EXHAUSTED.
func fitPicture(resp *pb.PictureResponse, max int) error {
	size := proto.Size(resp)
	if size <= max {
		return nil
	}
	others := make([]int, 0, len(resp.Entries))
	othersSize := make([]int, len(resp.Entries))
	for i, e := range resp.Entries {
		for _, r := range e.Disagreeing {
			othersSize[i] += proto.Size(r)
		}
		if len(e.Disagreeing) > 0 {
			others = append(others, i)
		}
	}
	slices.SortStableFunc(others, func(a, b int) int { return othersSize[b] - othersSize[a] })
	for _, i := range others {
		if size <= max {
			return nil
		}
		e := resp.Entries[i]
		before := proto.Size(e)
		e.Disagreeing = nil
		size -= before - proto.Size(e)
	}
	order := make([]int, len(resp.Entries))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return len(resp.Entries[b].GetRecord().GetBody()) - len(resp.Entries[a].GetRecord().GetBody())
	})
	for _, limit := range []int{largeValue, 0} {
		for _, i := range order {
			if size <= max {
				return nil
			}
			e := resp.Entries[i]
			// An alert stays whole: the picture shows those in force, with their text. So do a
			// shared assessment and the responses to it, which are read out of the picture
			// (node/assessment) and are bounded by their own checks.
			if e.Record == nil || e.Kind == record.AlertKind || e.Kind == assessment.Kind || e.Kind == assessment.ResponseKind {
				continue
			}
			body, left, ok := leaveOut(e.Record.Body, limit)
			if !ok || len(left) == 0 {
				continue
			}
			before := proto.Size(e)
			oldBody, oldLeft, oldSum := e.Record.Body, e.FieldsLeftOut, e.WholeBodySha256
			if e.WholeBodySha256 == nil {
				sum := sha256.Sum256(e.Record.Body)
				e.WholeBodySha256 = sum[:]
			}
			// The records are this call's own, read for it: no other reader holds them.
			e.Record.Body = body
			e.FieldsLeftOut = append(slices.Clip(e.FieldsLeftOut), left...)
			if after := proto.Size(e); after < before {
				size -= before - after
			} else {
				// Small values named cost more than they saved: the entry stays as it was.
				e.Record.Body, e.FieldsLeftOut, e.WholeBodySha256 = oldBody, oldLeft, oldSum
			}
		}
	}
	if size <= max {
		return nil
	}
	return api.FieldStatus(codes.ResourceExhausted, "crisis", fmt.Sprintf("its picture holds %d entries, %d bytes with every body that may be left out left out: more than one answer carries (%d bytes); search it by kind or region instead", len(resp.Entries), size, max))
}

// leaveOut is body, a JSON object, without the values of its top-level fields that are longer
// than limit bytes but its file list (every one when limit is 0), in the order the body has
// them, each kept member as it was written, and the names of the fields it left out. ok is false
// for a body that is no JSON object.
func leaveOut(body []byte, limit int) (out []byte, left []string, ok bool) {
	r := gjson.ParseBytes(body)
	if !r.IsObject() {
		return nil, nil, false
	}
	out = append(make([]byte, 0, len(body)), '{')
	r.ForEach(func(k, v gjson.Result) bool {
		// A file list stays in the first pass: lists say that a record has files.
		if len(v.Raw) > limit && (limit == 0 || k.String() != record.AttachmentsField) {
			left = append(left, k.String())
			return true
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(append(append(out, k.Raw...), ':'), v.Raw...)
		return true
	})
	return append(out, '}'), left, true
}
