package node_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestClusterReplicaApplyTakesOnlyWhatFollowersSend: the leader's ReplicaService Apply, called
// with a follower's SVID, refuses a forwardable command that no follower sends, naming the field,
// and the audit log stays readable; what a follower does send (the audit entry of a backup taken
// on it) still goes through (review AF, AF3).
func TestClusterReplicaApplyTakesOnlyWhatFollowersSend(t *testing.T) {
	// The follower must stay one: on a loaded machine a leader of the default 200 ms stepped down
	// a second after the start, and the follower the test took then led.
	c := clustertest.Start(t, clustertest.Options{ElectionTimeout: time.Second})
	leader := c.Leader(t, 10*time.Second, c.Replicas...)
	follower := others(c, leader)[0]
	src := identitytest.NewSource(identitytest.SVID(t, c.CA, "/node/"+follower.ID, identity.SVIDOptions{}), identitytest.Bundle(c.CA))
	rs := pb.NewReplicaServiceClient(identitytest.Dial(t, leader.API, src, src, c.TD))
	audit := pb.NewAuditServiceClient(leader.Local(t))
	entries := func() []*pb.AuditEntry {
		t.Helper()
		list, err := audit.List(clustertest.Call(t), &pb.ListAuditRequest{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		// REST encodes the list as JSON, which refused an entry of invalid UTF-8.
		if _, err := protojson.Marshal(list); err != nil {
			t.Fatalf("the audit log as JSON: %v", err)
		}
		return list.Entries
	}
	before := len(entries())

	appendAudit := func(e ...*pb.AuditEntry) *pb.Command {
		return &pb.Command{Cmd: &pb.Command_AppendAudit{AppendAudit: &pb.AppendAudit{Entries: e}}}
	}
	for _, tc := range []struct {
		name  string
		cmd   *pb.Command
		field string
	}{
		{"an empty audit entry", appendAudit(&pb.AuditEntry{}), "command.append_audit.entries[0].action"},
		{"an entry of invalid UTF-8", appendAudit(&pb.AuditEntry{At: timestamppb.Now(), Action: "x\xff", Actor: "\x00", Detail: `{"a":`}), "command.append_audit.entries[0].action"},
		{"an officer's approval", appendAudit(&pb.AuditEntry{At: timestamppb.Now(), Seq: 1, Action: "policy.approve", Actor: "spiffe://" + c.TD.Name() + "/user/otto", Detail: "{}"}),
			"command.append_audit.entries[0].action"},
		{"a file step bogus", &pb.Command{Cmd: &pb.Command_FileStep{FileStep: &pb.FileStep{Action: "bogus"}}}, "command.file_step.action"},
		{"a chunk of no upload", &pb.Command{Cmd: &pb.Command_FileChunk{FileChunk: &pb.FileChunk{Seq: -1}}}, "command.file_chunk.upload_id"},
		{"a head of none", &pb.Command{Cmd: &pb.Command_KeepHead{KeepHead: &pb.KeepHead{Peer: "ncc.crisis.test"}}}, "command.keep_head.head"},
		{"an empty disclosure", &pb.Command{Cmd: &pb.Command_RecordDisclosures{RecordDisclosures: &pb.RecordDisclosures{
			Recipient: "ncc.crisis.test", RecipientId: "spiffe://ncc.crisis.test/node/r1", Via: "Query", At: timestamppb.Now(),
			Disclosed: []*pb.Disclosure{{}}}}}, "command.record_disclosures.disclosed[0].record_id"},
		{"a record write", &pb.Command{Cmd: &pb.Command_WriteRecords{WriteRecords: &pb.WriteRecords{}}}, "command"},
	} {
		_, err := rs.Apply(clustertest.Call(t), &pb.ApplyRequest{Command: tc.cmd})
		if field, _ := api.Field(err); status.Code(err) != codes.InvalidArgument || field != tc.field {
			t.Errorf("Apply of %s: %v, want INVALID_ARGUMENT naming %s", tc.name, err, tc.field)
		}
	}
	if got := len(entries()); got != before {
		t.Fatalf("the refused commands added %d audit entries", got-before)
	}

	// A backup taken on the follower is audited through the leader.
	stream, err := pb.NewClusterServiceClient(follower.Local(t)).Backup(clustertest.Call(t), &pb.BackupRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := stream.Recv(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	clustertest.Eventually(t, 10*time.Second, "the follower's backup in the leader's audit log", func() (bool, string) {
		for _, e := range entries() {
			if e.Action == "backup" && e.Subject == follower.ID && e.Actor == "local socket" {
				return true, ""
			}
		}
		return false, "no backup entry"
	})
}

// TestClusterRemoveAndBackupKeptRefuseWhatIsNoID: Remove of an id that cannot be a replica's and
// is not in the group is INVALID_ARGUMENT naming id, one that could be NOT_FOUND; a voter of the
// group is removed whatever its id, as one an earlier release admitted. BackupKept of a value that
// is no SHA-256 is INVALID_ARGUMENT naming sha256. Each quotes at most some 80 bytes of the value
// (review AF, AF5).
func TestClusterRemoveAndBackupKeptRefuseWhatIsNoID(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	leader := c.Leader(t, 10*time.Second, c.Replicas...)
	cs := pb.NewClusterServiceClient(leader.Local(t))
	refused := func(what string, err error, code codes.Code, field string) {
		t.Helper()
		if f, _ := api.Field(err); status.Code(err) != code || f != field {
			t.Errorf("%s: %v, want %s naming %s", what, err, code, field)
		}
		if msg := status.Convert(err).Message(); len(msg) > 300 {
			t.Errorf("%s: %d bytes of message, want the value cut", what, len(msg))
		}
	}
	for _, id := range []string{"ab\xff\xfecd", "r4\x00", "r4/x", strings.Repeat("r", 64), strings.Repeat("r", 1<<20)} {
		_, err := cs.Remove(clustertest.Call(t), &pb.RemoveRequest{Id: id})
		refused("remove of "+strings.ToValidUTF8(id[:min(len(id), 20)], "?"), err, codes.InvalidArgument, "id")
	}
	_, err := cs.Remove(clustertest.Call(t), &pb.RemoveRequest{Id: "r9"})
	refused("remove of r9", err, codes.NotFound, "id")
	for _, sum := range []string{"zz", strings.Repeat("A", 64), strings.Repeat("a", 1<<20)} {
		_, err := cs.BackupKept(clustertest.Call(t), &pb.BackupKeptRequest{Sha256: sum, AppliedIndex: 1})
		refused("backup kept of "+sum[:2], err, codes.InvalidArgument, "sha256")
	}

	// A voter an earlier release admitted under an id that is none (at an address where nothing
	// answers: the three others are a majority of four).
	bad := "r4/" + strings.Repeat("x", 100)
	if err := leader.Node.Store().AddVoter(bad, clustertest.FreeAddr(t)); err != nil {
		t.Fatal(err)
	}
	st, err := cs.Remove(clustertest.Call(t), &pb.RemoveRequest{Id: bad})
	if err != nil {
		t.Fatalf("remove of the voter %.10q…: %v", bad, err)
	}
	if got := voters(st); got != "r1,r2,r3" {
		t.Fatalf("after remove the group is %s, want r1,r2,r3", got)
	}
	list, err := pb.NewAuditServiceClient(leader.Local(t)).List(clustertest.Call(t), &pb.ListAuditRequest{Action: "cluster.remove"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Entries) != 1 || !strings.HasPrefix(list.Entries[0].Subject, `"r4/xxx`) || len(list.Entries[0].Subject) > 100 {
		t.Fatalf("the audit log of the remove: %v, want one entry naming the id quoted and cut", list.Entries)
	}
}
