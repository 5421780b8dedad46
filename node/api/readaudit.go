package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

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
// the node's origin). The read never waits for it: the entry is appended in the background (on
// a follower, Apply forwards it to the leader and waits for its commit there), for at most
// readAuditTimeout, whether the caller still waits or not. So it may enter the log a moment
// after the answer went (the audit log's reads wait for it, as for a search's); a failure to
// keep it (no leader, a leader that does not answer) is logged at WARN (review AG, AG4: on a
// follower a read waited for the leader's commit, and hung with a leader that did not answer).
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
	cmd := &pb.Command{Cmd: &pb.Command_AppendAudit{AppendAudit: &pb.AppendAudit{Entries: []*pb.AuditEntry{entry}}}}
	done := st.Background()
	go func() {
		defer done()
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readAuditTimeout)
		defer cancel()
		if _, err := st.Apply(actx, cmd); err != nil {
			log.Warn("could not audit a read of confidential records", "via", via, "records", n, "err", err)
		}
	}()
}

// readAuditTimeout bounds the keeping of one read's entry, the call to the leader included.
const readAuditTimeout = 10 * time.Second
