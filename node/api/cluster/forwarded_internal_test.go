package cluster

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/federation/witness"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

const (
	testUpload = "0b6e4c1e-8f5a-4d0c-9a43-2f1e7b9c5d21"
	testPeer   = "ncc.crisis.test"
)

// forwardedAsSent are the forwardable commands as the node's code builds them on a follower
// (node/api/cluster audit, node/refused.go, node/identity.go, federation/search,
// federation/peerserver, federation/witness, node/attach).
func forwardedAsSent(t *testing.T) map[string]*pb.Command {
	now := timestamppb.Now()
	audit := func(action, actor, subject string) *pb.Command {
		return &pb.Command{Cmd: &pb.Command_AppendAudit{AppendAudit: &pb.AppendAudit{Entries: []*pb.AuditEntry{
			{At: now, Actor: actor, Action: action, Subject: subject, Detail: `{"count":1}`}}}}}
	}
	signer := identitytest.SVID(t, identitytest.NewCA(t, testPeer), "/node/r1", identity.SVIDOptions{})
	head, err := witness.Sign(signer, 12, bytes.Repeat([]byte{7}, 32), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*pb.Command{
		"backup":                audit(db.AuditBackup, "local socket", "r2"),
		"backup by an admin":    audit(db.AuditBackup, "spiffe://vr-utrecht.crisis.test/user/admin", "r2"),
		"cluster.remove":        audit(db.AuditClusterRemove, "local socket", `"r4/x"`),
		"access.denied":         audit(db.AuditAccessDenied, "spiffe://vr-utrecht.crisis.test/user/anna", "/knooppunt.v1.PolicyService/Approve"),
		"federation.denied":     audit(db.AuditFederationDenied, "spiffe://ncc.crisis.test/node/r1", "/knooppunt.v1.FederationService/Query"),
		"federation.nothing":    audit(db.AuditFederationNothing, "(other callers)", ""),
		"search":                audit(db.AuditSearch, "spiffe://vr-utrecht.crisis.test/user/anna", "oekraine"),
		"confidential read":     audit(db.AuditRecordRead, "spiffe://vr-utrecht.crisis.test/user/anna", "geheim-1"),
		"file disclosed":        audit(db.AuditFileDisclosure, "spiffe://ncc.crisis.test/node/r1", "rec-1"),
		"tls.refused":           audit(db.AuditHandshakeRefused, "(no SPIFFE ID)", "handshake"),
		"tls.refused, cut":      audit(db.AuditHandshakeRefused, "spiffe://x.test/"+strings.Repeat("a", 240)+"…", "handshake"),
		"config.reload":         audit(db.AuditConfigReload, "config file of replica r2", "ncc.crisis.test"),
		"config.reload stopped": audit(db.AuditConfigReload, "config file of replica r2, edited while it was stopped", "role"),
		"audit.disputed":        audit(db.AuditDisputed, testPeer, "entry 4"),
		"chunk":                 {Cmd: &pb.Command_FileChunk{FileChunk: &pb.FileChunk{UploadId: testUpload, Seq: 0, Data: []byte("%PDF-1.7"), At: now}}},
		"commit": {Cmd: &pb.Command_FileStep{FileStep: &pb.FileStep{Action: "commit", UploadId: testUpload, Sha256: strings.Repeat("ab", 32),
			Size: 8, MediaType: attach.PDF, Origin: testPeer, At: now}}},
		"abort": {Cmd: &pb.Command_FileStep{FileStep: &pb.FileStep{Action: "abort", UploadId: testUpload, At: now}}},
		"sweep": {Cmd: &pb.Command_FileStep{FileStep: &pb.FileStep{Action: "sweep", At: now, StaleBefore: timestamppb.New(time.Now().Add(-time.Hour))}}},
		"head": {Cmd: &pb.Command_KeepHead{KeepHead: &pb.KeepHead{Peer: testPeer, Head: head, ReceivedAt: now,
			Signer: signer.ID.String(), Bounded: true, ByTime: true}}},
		"disclosures": {Cmd: &pb.Command_RecordDisclosures{RecordDisclosures: &pb.RecordDisclosures{
			Recipient: testPeer, RecipientId: "spiffe://ncc.crisis.test/node/r1", Holder: "spiffe://ncc.crisis.test/node/*",
			Via: "Subscribe", CountHeld: true, RecordsPurpose: true, StatedPurpose: "situational awareness",
			PolicyPurposes: map[string]string{"share-ncc@3": "picture"}, At: now, ConfirmedThrough: 40,
			Disclosed: []*pb.Disclosure{{RecordId: "rec-1", Version: 2, Policies: []string{"share-ncc@3"}, Redacted: []string{"contact"},
				Redaction: "contact", Crisis: "oekraine", Kind: "shelter.capacity", Classification: pb.Classification_INTERNAL}},
			Retracted: []*pb.Disclosure{{RecordId: "rec-2", Reason: "deleted", Seq: 41}},
			Refused:   []*pb.PurposeRefusal{{Policy: "share-ncc@3", Records: 1, Marked: true}},
		}}},
	}
}

// TestCheckForwardedTakesWhatTheNodeSends: every forwardable command, as the node's own code
// builds it on a follower, passes.
func TestCheckForwardedTakesWhatTheNodeSends(t *testing.T) {
	for name, c := range forwardedAsSent(t) {
		if err := checkForwarded(c); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestCheckForwardedRefusesWhatNoFollowerSends: a forwarded command of any other shape is refused
// with INVALID_ARGUMENT naming the field, in a message that quotes at most some 80 bytes of the
// value (review AF, AF3).
func TestCheckForwardedRefusesWhatNoFollowerSends(t *testing.T) {
	sent := forwardedAsSent(t)
	with := func(name string, change func(c *pb.Command)) *pb.Command {
		c := proto.Clone(sent[name]).(*pb.Command)
		change(c)
		return c
	}
	entry := func(c *pb.Command) *pb.AuditEntry { return c.GetAppendAudit().Entries[0] }
	step := func(c *pb.Command) *pb.FileStep { return c.GetFileStep() }
	disc := func(c *pb.Command) *pb.RecordDisclosures { return c.GetRecordDisclosures() }
	const e0 = "command.append_audit.entries[0]"
	for _, tc := range []struct {
		name  string
		cmd   *pb.Command
		field string
	}{
		{"no entries", &pb.Command{Cmd: &pb.Command_AppendAudit{AppendAudit: &pb.AppendAudit{}}}, "command.append_audit.entries"},
		{"an empty entry", &pb.Command{Cmd: &pb.Command_AppendAudit{AppendAudit: &pb.AppendAudit{Entries: []*pb.AuditEntry{{}}}}}, e0 + ".action"},
		{"invalid UTF-8 action", with("search", func(c *pb.Command) { entry(c).Action = "x\xff" }), e0 + ".action"},
		{"invalid UTF-8 actor", with("search", func(c *pb.Command) { entry(c).Actor = "spiffe://a.test/user/\xff" }), e0 + ".actor"},
		{"invalid UTF-8 subject", with("search", func(c *pb.Command) { entry(c).Subject = "ab\xffcd" }), e0 + ".subject"},
		{"an officer's approval", with("search", func(c *pb.Command) { entry(c).Action = db.AuditPolicyApprove }), e0 + ".action"},
		{"a record's delete", with("search", func(c *pb.Command) { entry(c).Action = db.AuditRecordDelete }), e0 + ".action"},
		{"an actor of NUL", with("search", func(c *pb.Command) { entry(c).Actor = "\x00" }), e0 + ".actor"},
		{"no actor", with("backup", func(c *pb.Command) { entry(c).Actor = "" }), e0 + ".actor"},
		{"a word for the wrong action", with("search", func(c *pb.Command) { entry(c).Actor = "(no SPIFFE ID)" }), e0 + ".actor"},
		{"a config file of no replica", with("config.reload", func(c *pb.Command) { entry(c).Actor = "config file of replica r/1" }), e0 + ".actor"},
		{"a trust domain for a caller", with("search", func(c *pb.Command) { entry(c).Actor = testPeer }), e0 + ".actor"},
		{"a seq", with("search", func(c *pb.Command) { entry(c).Seq = 1 }), e0 + ".seq"},
		{"a hash", with("search", func(c *pb.Command) { entry(c).Hash = []byte{1} }), e0 + ".seq"},
		{"no time", with("search", func(c *pb.Command) { entry(c).At = nil }), e0 + ".at"},
		{"1970", with("search", func(c *pb.Command) { entry(c).At = &timestamppb.Timestamp{} }), e0 + ".at"},
		{"a time past 2262", with("search", func(c *pb.Command) { entry(c).At = &timestamppb.Timestamp{Seconds: 1 << 40} }), e0 + ".at"},
		{"a detail that is not JSON", with("search", func(c *pb.Command) { entry(c).Detail = `{"a":` }), e0 + ".detail"},
		{"no detail", with("search", func(c *pb.Command) { entry(c).Detail = "" }), e0 + ".detail"},
		{"a detail that is an array", with("search", func(c *pb.Command) { entry(c).Detail = `[1]` }), e0 + ".detail"},
		{"a second entry", with("search", func(c *pb.Command) {
			c.GetAppendAudit().Entries = append(c.GetAppendAudit().Entries, &pb.AuditEntry{At: timestamppb.Now(), Action: "bogus", Detail: "{}"})
		}), "command.append_audit.entries[1].action"},

		{"a chunk of no upload", with("chunk", func(c *pb.Command) { c.GetFileChunk().UploadId = "" }), "command.file_chunk.upload_id"},
		{"an upload id of capitals", with("chunk", func(c *pb.Command) { c.GetFileChunk().UploadId = strings.ToUpper(testUpload) }), "command.file_chunk.upload_id"},
		{"a chunk seq -1", with("chunk", func(c *pb.Command) { c.GetFileChunk().Seq = -1 }), "command.file_chunk.seq"},
		{"an empty chunk", with("chunk", func(c *pb.Command) { c.GetFileChunk().Data = nil }), "command.file_chunk.data"},
		{"a chunk over the size", with("chunk", func(c *pb.Command) { c.GetFileChunk().Data = make([]byte, attach.ChunkBytes+1) }), "command.file_chunk.data"},
		{"a chunk of no time", with("chunk", func(c *pb.Command) { c.GetFileChunk().At = nil }), "command.file_chunk.at"},
		{"a step bogus", with("abort", func(c *pb.Command) { step(c).Action = "bogus" }), "command.file_step.action"},
		{"an abort of no upload", with("abort", func(c *pb.Command) { step(c).UploadId = "" }), "command.file_step.upload_id"},
		{"an abort with a hash", with("abort", func(c *pb.Command) { step(c).Sha256 = strings.Repeat("ab", 32) }), "command.file_step.action"},
		{"a commit of no SHA-256", with("commit", func(c *pb.Command) { step(c).Sha256 = "zz" }), "command.file_step.sha256"},
		{"a commit of 0 bytes", with("commit", func(c *pb.Command) { step(c).Size = 0 }), "command.file_step.size"},
		{"a commit of no media type", with("commit", func(c *pb.Command) { step(c).MediaType = "" }), "command.file_step.media_type"},
		{"a commit from no trust domain", with("commit", func(c *pb.Command) { step(c).Origin = "a b" }), "command.file_step.origin"},
		{"a sweep of an upload", with("sweep", func(c *pb.Command) { step(c).UploadId = testUpload }), "command.file_step.upload_id"},
		{"a sweep of no stale_before", with("sweep", func(c *pb.Command) { step(c).StaleBefore = nil }), "command.file_step.stale_before"},
		{"a commit with stale_before", with("commit", func(c *pb.Command) { step(c).StaleBefore = timestamppb.Now() }), "command.file_step.stale_before"},
		{"a step of no time", with("abort", func(c *pb.Command) { step(c).At = nil }), "command.file_step.at"},

		{"keep_head of no head", with("head", func(c *pb.Command) { c.GetKeepHead().Head = nil }), "command.keep_head.head"},
		{"keep_head of no peer", with("head", func(c *pb.Command) { c.GetKeepHead().Peer = "" }), "command.keep_head.peer"},
		{"a head of another org", with("head", func(c *pb.Command) { c.GetKeepHead().Head.Org = "coa.crisis.test" }), "command.keep_head.head.org"},
		{"a head of seq 0", with("head", func(c *pb.Command) { c.GetKeepHead().Head.Seq = 0 }), "command.keep_head.head.seq"},
		{"a head of a short hash", with("head", func(c *pb.Command) { c.GetKeepHead().Head.Hash = []byte{1} }), "command.keep_head.head.hash"},
		{"a head of no chain", with("head", func(c *pb.Command) { c.GetKeepHead().Head.Chain = nil }), "command.keep_head.head.chain"},
		{"a head of another signer", with("head", func(c *pb.Command) { c.GetKeepHead().Signer = "spiffe://ncc.crisis.test/node/r2" }), "command.keep_head.head.chain[0]"},
		{"a signer of a user", with("head", func(c *pb.Command) { c.GetKeepHead().Signer = "spiffe://ncc.crisis.test/user/x" }), "command.keep_head.signer"},
		{"a head signed otherwise", with("head", func(c *pb.Command) { c.GetKeepHead().Head.Seq++ }), "command.keep_head.head.signature"},
		{"a head of no received_at", with("head", func(c *pb.Command) { c.GetKeepHead().ReceivedAt = nil }), "command.keep_head.received_at"},

		{"an empty disclosure", with("disclosures", func(c *pb.Command) { disc(c).Disclosed = []*pb.Disclosure{{}} }), "command.record_disclosures.disclosed[0].record_id"},
		{"a disclosure of version 0", with("disclosures", func(c *pb.Command) { disc(c).Disclosed[0].Version = 0 }), "command.record_disclosures.disclosed[0].version"},
		{"a disclosure of no policy", with("disclosures", func(c *pb.Command) { disc(c).Disclosed[0].Policies = nil }), "command.record_disclosures.disclosed[0].policies"},
		{"a disclosure of no crisis name", with("disclosures", func(c *pb.Command) { disc(c).Disclosed[0].Crisis = "Oekraïne" }), "command.record_disclosures.disclosed[0].crisis"},
		{"a disclosure of classification 99", with("disclosures", func(c *pb.Command) { disc(c).Disclosed[0].Classification = 99 }), "command.record_disclosures.disclosed[0].classification"},
		{"a redaction of invalid UTF-8", with("disclosures", func(c *pb.Command) { disc(c).Disclosed[0].Redacted[0] = "\xff" }), "command.record_disclosures.disclosed[0].redacted[0]"},
		{"a purpose key of invalid UTF-8", with("disclosures", func(c *pb.Command) { disc(c).PolicyPurposes["\xff"] = "x" }), "command.record_disclosures.policy_purposes"},
		{"a retraction of no reason", with("disclosures", func(c *pb.Command) { disc(c).Retracted[0].Reason = "" }), "command.record_disclosures.retracted[0].reason"},
		{"a retraction seq -1", with("disclosures", func(c *pb.Command) { disc(c).Retracted[0].Seq = -1 }), "command.record_disclosures.retracted[0].seq"},
		{"no recipient", with("disclosures", func(c *pb.Command) { disc(c).Recipient = "" }), "command.record_disclosures.recipient"},
		{"a recipient_id of another", with("disclosures", func(c *pb.Command) { disc(c).RecipientId = "spiffe://coa.crisis.test/node/r1" }), "command.record_disclosures.recipient_id"},
		{"another holder", with("disclosures", func(c *pb.Command) { disc(c).Holder = "spiffe://coa.crisis.test/node/*" }), "command.record_disclosures.holder"},
		{"via bogus", with("disclosures", func(c *pb.Command) { disc(c).Via = "bogus" }), "command.record_disclosures.via"},
		{"disclosures of no time", with("disclosures", func(c *pb.Command) { disc(c).At = nil }), "command.record_disclosures.at"},
		{"a refusal of no policy", with("disclosures", func(c *pb.Command) { disc(c).Refused[0].Policy = "" }), "command.record_disclosures.refused[0].policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkForwarded(tc.cmd)
			if field, _ := api.Field(err); status.Code(err) != codes.InvalidArgument || field != tc.field {
				t.Fatalf("%v, want INVALID_ARGUMENT naming %s", err, tc.field)
			}
			if !strings.HasPrefix(status.Convert(err).Message(), tc.field+": ") {
				t.Errorf("message %q does not begin with the field", status.Convert(err).Message())
			}
		})
	}
	// A long bad value is quoted cut (review AF, AF4).
	long := with("search", func(c *pb.Command) { entry(c).Action = strings.Repeat("a", 1<<20) })
	if msg := status.Convert(checkForwarded(long)).Message(); len(msg) > 400 {
		t.Errorf("refusal of a 1 MiB action: %d bytes of message, want it cut", len(msg))
	}
}
