package ui

import (
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// nodeActor is the actor of the entries the node writes itself (store.NodeActor).
const nodeActor = "node"

// auditRequest is the audit log's filters, from the page's query, as typed (v) and as a request:
// an actor without spiffe:// is a person of this organisation, by the user name the pages show
// (officer-b), and the subject matches the start of an entry's (xss-test finds xss-test@1). A
// since that does not read is said at its field (v.SinceError), and the page lists nothing.
func (s *Server) auditRequest(r *request) (v *auditView, req *pb.ListAuditRequest) {
	q := r.URL.Query()
	v = &auditView{Action: q.Get("action"), Actor: strings.TrimSpace(q.Get("actor")), Subject: strings.TrimSpace(q.Get("subject")),
		Since: strings.TrimSpace(q.Get("sinds"))}
	req = &pb.ListAuditRequest{Action: v.Action, Actor: v.Actor, Subject: v.Subject, SubjectPrefix: true}
	if a := v.Actor; a != "" && !strings.Contains(a, "://") && !strings.Contains(a, " ") && a != nodeActor {
		req.Actor = "spiffe://" + s.c.Org + "/user/" + a
	}
	if v.Since != "" {
		for _, layout := range []string{"2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
			if t, err := time.ParseInLocation(layout, v.Since, location()); err == nil {
				req.Since = timestamppb.New(t)
				break
			}
		}
		if req.Since == nil {
			v.SinceError = r.L.T("audit.since_bad")
		}
	}
	return v, req
}

// auditCSVMax bounds the entries one download of the audit log holds.
const auditCSVMax = 10000

// auditCSV serves the entries the audit page's filters select as a CSV file, oldest first, at
// most auditCSVMax: seq, time (RFC 3339), action, actor, subject, and the detail as stored, with
// the hash of each entry and the one before it, so that the file can be checked against the chain.
func (s *Server) auditCSV(w http.ResponseWriter, r *request) {
	v, req := s.auditRequest(r)
	if v.SinceError != "" {
		s.failIn(w, r, http.StatusBadRequest, r.L.T("error.field", "sinds", v.SinceError))
		return
	}
	req.Limit = auditCSVMax
	resp, err := pb.NewAuditServiceClient(s.c.Conn).List(r.ctx(), req)
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	var buf bytes.Buffer
	out := csv.NewWriter(&buf)
	out.Write([]string{"seq", "at", "action", "actor", "subject", "detail", "prev_hash", "hash"})
	for _, e := range resp.Entries {
		out.Write([]string{strconv.FormatInt(e.Seq, 10), e.At.AsTime().Format(time.RFC3339Nano), e.Action, e.Actor, e.Subject, e.Detail,
			hex.EncodeToString(e.PrevHash), hex.EncodeToString(e.Hash)})
	}
	out.Flush()
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": "auditlog-" + s.c.Name + "-" + time.Now().Format("2006-01-02") + ".csv"}))
	w.Write(buf.Bytes())
}
