package api

import (
	"context"
	"encoding/json"
	"log/slog"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/store"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// ReadAudited is the lowest classification whose reads the audit log keeps: who read a
// confidential or secret record, own or a partner's, through RecordService Get, List, Versions
// or Watch, or a file it names, as searches are kept (review AD, AD2: such reads left no trace).
const ReadAudited = pb.Classification_CONFIDENTIAL

// MaxReadIDs bounds the records one record.read entry names; it counts them all.
const MaxReadIDs = 50

// AuditRead appends one record.read entry when recs holds a record classified ReadAudited or
// higher: the caller in ctx, the call (via), how many such records it answered with, the highest
// classification among them, and the first MaxReadIDs of them, a partner's as ORIGIN/ID (own is
// the node's origin). Like a search's entry it enters the Raft log before the answer goes, and
// the call does not wait for its commit; a failure to keep it is logged.
func AuditRead(ctx context.Context, st *store.Store, log *slog.Logger, own, via string, recs ...*pb.Record) {
	var ids []string
	n, top := 0, ReadAudited
	for _, r := range recs {
		if r.GetClassification() < ReadAudited || r.GetTombstone() {
			continue
		}
		n++
		top = max(top, r.GetClassification())
		if len(ids) < MaxReadIDs {
			id := r.GetId()
			if o := r.GetOrigin(); o != "" && o != own {
				id = o + "/" + id
			}
			ids = append(ids, id)
		}
	}
	if n == 0 {
		return
	}
	caller, _ := CallerFrom(ctx)
	detail, _ := json.Marshal(map[string]any{"via": via, "records": n, "classification": record.ClassificationName(top), "ids": ids})
	subject := ""
	if n == 1 {
		subject = ids[0]
	}
	entry := &pb.AuditEntry{At: timestamppb.Now(), Actor: caller.String(), Action: db.AuditRecordRead, Subject: subject, Detail: string(detail)}
	wait := st.ApplyAsync(context.WithoutCancel(ctx), &pb.Command{Cmd: &pb.Command_AppendAudit{AppendAudit: &pb.AppendAudit{Entries: []*pb.AuditEntry{entry}}}})
	go func() {
		if _, err := wait(); err != nil {
			log.Warn("could not audit a read of confidential records", "via", via, "records", n, "err", err)
		}
	}()
}
