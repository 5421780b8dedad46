package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// upload sends a file through conn's AttachmentService.
func upload(ctx context.Context, conn *grpc.ClientConn, name string, data []byte, want string) (*pb.Attachment, error) {
	return attach.Upload(ctx, pb.NewAttachmentServiceClient(conn), name, bytes.NewReader(data), int64(len(data)), want, nil)
}

// download reads a file through conn's AttachmentService, checked against its hash.
func download(ctx context.Context, conn *grpc.ClientConn, id, hash string) ([]byte, error) {
	var out bytes.Buffer
	err := attach.Download(ctx, pb.NewAttachmentServiceClient(conn), id, hash, nil, &out, nil)
	return out.Bytes(), err
}

// stored reads a file out of d, or reports why not.
func stored(d *db.DB, hash string) ([]byte, error) {
	var out bytes.Buffer
	err := d.ReadFile(context.Background(), hash, func(b []byte) error { out.Write(b); return nil })
	return out.Bytes(), err
}

// noStaging reports whether d holds no staged upload and no chunk that is no file's.
func noStaging(d *db.DB) (bool, string) {
	_, _, uploads, chunks, err := d.FileCounts(context.Background())
	return err == nil && uploads == 0 && chunks == 0, fmt.Sprintf("%d uploads and %d chunks staged (%v)", uploads, chunks, err)
}

// randomPDF is content that sniffs as a PDF and is none: stored, but never indexed.
func randomPDF(t *testing.T, size int) []byte {
	b := make([]byte, size)
	rand.Read(b)
	copy(b, "%PDF-1.7\n")
	return b
}

// TestClusterAttachmentRoundTrip uploads a file of four chunks through a follower of a
// three-replica node: each chunk is its own Raft entry under 1 MiB, every replica holds the file
// with its hash, and a record names it. The file survives the leader's loss after it was
// acknowledged; an upload cut off by the loss of the leader leaves no chunk behind once swept.
// A peer granted the record fetches the file in the background, audited at the source, and
// serves it to its own users; when the grant is revoked the peer's copy goes, and the peer is
// refused the file.
func TestClusterAttachmentRoundTrip(t *testing.T) {
	fed, peer, c := startWithPeerNode(t, "attachments:\n  stale_after: 3s\n  sweep_interval: 200ms\n")
	td := clustertest.Org
	var apis []string
	for _, r := range c.Replicas {
		apis = append(apis, r.API)
	}
	fed.AddPeers(t, config.Peer{Name: "kc", TrustDomain: td, Addresses: apis, BundleFile: c.BundleFile})

	leader := c.Leader(t, 15*time.Second, c.Replicas...)
	follower := others(c, leader)[0]
	data := randomPDF(t, 3*attach.ChunkBytes+12345)
	hash := sha(data)
	before := leader.Node.Store().AppliedIndex()
	// A follower that has not yet heard from the new leader answers UNAVAILABLE ("retry
	// shortly"), as it would to any client, and an upload cut by a change of leader (on a busy
	// machine) ABORTED: retry as a client does. A file is stored by its hash: sent again, it is
	// stored once.
	var att *pb.Attachment
	var err error
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		att, err = upload(clustertest.Call(t), follower.Local(t), "handreiking.pdf", data, hash)
		if code := status.Code(err); code != codes.Unavailable && code != codes.Aborted || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("upload through follower %s: %v", follower.ID, err)
	}
	if att.Sha256 != hash || att.Size != int64(len(data)) || att.MediaType != attach.PDF || att.Filename != "handreiking.pdf" {
		t.Fatalf("upload answered %v; want %s, %d bytes, %s", att, hash, len(data), attach.PDF)
	}
	// Named at once: an uploaded file that no record names goes at the sweep after stale_after.
	body, _ := json.Marshal(map[string]any{"title": "Handreiking opvang", "text": "zie bijlage", "attachments": []*pb.Attachment{att}})
	guide := &pb.Record{Id: "handreiking-1", Kind: "guidance", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC, Body: body}
	follower.Put(t, guide)
	// The log holds one entry per chunk, each under 1 MiB, then the commit. An attempt that a
	// follower refused mid-way (UNAVAILABLE, retried above) may have left chunks of an upload
	// of its own, which the sweep takes: only the committed upload's count. The log is read on
	// the replica that led at the start: when the lead moved during the upload, that replica
	// applies the commit a moment after the new leader acknowledged it.
	perUpload := map[string]int{}
	committed := ""
	index := before + 1
	clustertest.Eventually(t, 10*time.Second, "the commit of "+hash+" in "+leader.ID+"'s log", func() (bool, string) {
		after := leader.Node.Store().AppliedIndex()
		for ; index <= after && committed == ""; index++ {
			cmd, size, err := leader.Node.Store().LogEntry(index)
			if err != nil {
				t.Fatal(err)
			}
			if fc := cmd.GetFileChunk(); fc != nil {
				perUpload[fc.UploadId]++
				if size > 1<<20 {
					t.Errorf("log entry %d, chunk %d, is %d bytes: over 1 MiB", index, fc.Seq, size)
				}
			}
			if st := cmd.GetFileStep(); st.GetAction() == "commit" && st.GetSha256() == hash {
				committed = st.UploadId
			}
		}
		return committed != "", fmt.Sprintf("none in entries %d to %d", before+1, after)
	})
	if chunks := perUpload[committed]; chunks != 4 {
		t.Errorf("%d chunk entries in the log for a file of %d bytes, want 4", chunks, len(data))
	}
	for _, r := range c.Replicas {
		clustertest.Eventually(t, 10*time.Second, r.ID+" holds the file", func() (bool, string) {
			got, err := stored(r.Node.DB(), hash)
			return err == nil && sha(got) == hash, fmt.Sprint(err)
		})
	}

	// The leader goes: the acknowledged file stays, and serves from the survivors.
	leader.Kill(t)
	survivors := others(c, leader)
	next := c.Leader(t, 15*time.Second, survivors...)
	for _, r := range survivors {
		clustertest.Eventually(t, 10*time.Second, "download from "+r.ID+" after the leader's loss", func() (bool, string) {
			got, err := download(clustertest.Call(t), r.Local(t), guide.Id, hash)
			return err == nil && sha(got) == hash, fmt.Sprintf("%v (%d bytes)", err, len(got))
		})
	}

	// An upload cut off by the loss of its leader: nothing of it stays once the sweep ran. On a
	// loaded machine the group of two may change leader before the chunks are staged: the
	// client then starts the upload again with the leader there is, as a client would.
	partial := randomPDF(t, 3*attach.ChunkBytes)
	var cancel context.CancelFunc
	staged := false
	for attempt := 0; attempt < 3 && !staged; attempt++ {
		if cancel != nil {
			cancel()
		}
		next = c.Leader(t, 15*time.Second, survivors...)
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		stream, err := pb.NewAttachmentServiceClient(next.Local(t)).Upload(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&pb.UploadRequest{Filename: "half.pdf", Data: partial[:2*attach.ChunkBytes+1]}); err != nil {
			continue
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if ok, _ := noStaging(next.Node.DB()); !ok {
				staged = true
				break
			}
		}
	}
	if !staged {
		ok, detail := noStaging(next.Node.DB())
		t.Fatalf("chunks of the cut-off upload staged: not after three uploads: %v %s", !ok, detail)
	}
	leader.Start(t) // the group of three again, so that it survives the loss of another
	c.Leader(t, 15*time.Second, c.Replicas...)
	next.Kill(t)
	cancel()
	rest := others(c, next)
	c.Leader(t, 15*time.Second, rest...)
	for _, r := range rest {
		clustertest.Eventually(t, 15*time.Second, r.ID+" swept the cut-off upload", func() (bool, string) { return noStaging(r.Node.DB()) })
	}
	next.Start(t)
	c.Leader(t, 15*time.Second, c.Replicas...)

	// To the peer: granted, fetched in the background, audited at the source.
	svid := func(path string) *x509svid.SVID { return identitytest.SVID(t, c.CA, path, identity.SVIDOptions{}) }
	officers := [2]*grpc.ClientConn{}
	for i, name := range []string{"officer-a", "officer-b"} {
		officers[i] = dialFollowing(t, c, c.Replicas[0].API, svid("/user/"+name))
	}
	p := retryUnavailable(t, "propose", func() (*pb.PolicyInfo, error) {
		return pb.NewPolicyServiceClient(officers[0]).Propose(clustertest.Call(t), &pb.ProposeRequest{Source: []byte(
			"name: guidance-to-a\npurpose: test\nrecipients: [spiffe://" + peer.TD.Name() + "]\nkinds: [guidance]\nmax_classification: internal\n")})
	})
	retryUnavailable(t, "approve", func() (*pb.PolicyInfo, error) {
		return pb.NewPolicyServiceClient(officers[1]).Approve(clustertest.Call(t), &pb.PolicyStepRequest{Id: p.Id})
	})
	fedtest.Eventually(t, 30*time.Second, "the peer fetched the file", func() (bool, string) {
		got, err := stored(peer.Node.DB(), hash)
		return err == nil && sha(got) == hash, fmt.Sprint(err)
	})
	got, err := download(fedtest.Call(t), peer.Local(t), td+"/"+guide.Id, hash)
	if err != nil || sha(got) != hash {
		t.Fatalf("the peer's user downloads the file: %v (%d bytes)", err, len(got))
	}
	var audited bool
	for _, r := range c.Replicas {
		entries, err := r.Node.DB().AuditList(context.Background(), db.AuditFilter{Action: db.AuditFileDisclosure})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			audited = audited || e.Subject == guide.Id && strings.Contains(e.Detail, hash) && e.Actor == "spiffe://"+peer.TD.Name()+"/node/r1"
		}
	}
	if !audited {
		t.Errorf("no %s audit entry for the file sent to %s", db.AuditFileDisclosure, peer.Name)
	}

	// Revoked: the source retracts the record, the peer's copy of the file goes, and the peer is
	// refused the file when it asks.
	retryUnavailable(t, "revoke", func() (*pb.PolicyInfo, error) {
		return pb.NewPolicyServiceClient(officers[0]).Revoke(clustertest.Call(t), &pb.PolicyStepRequest{Id: p.Id, Reason: "test"})
	})
	fedtest.Eventually(t, 30*time.Second, "the peer's copy of the file removed", func() (bool, string) {
		_, err := peer.Node.DB().FileInfo(context.Background(), hash)
		return errors.Is(err, db.ErrFileNotFound), fmt.Sprint(err)
	})
	// Replicas[0] may be a follower that was down: until its leader's replication, backed off
	// while it could not reach it, tries again (up to 10 s), it is behind and says so.
	asPeer := identitytest.Dial(t, c.Replicas[0].API, peer.Replica, identitytest.Bundle(c.CA), c.TD)
	clustertest.Eventually(t, 20*time.Second, "FetchFile after the revoke is refused", func() (bool, string) {
		var fs grpc.ServerStreamingClient[pb.FileData]
		fs, err = pb.NewFederationServiceClient(asPeer).FetchFile(clustertest.Call(t), &pb.FetchFileRequest{RecordId: guide.Id, Sha256: hash})
		if err == nil {
			_, err = fs.Recv()
		}
		return status.Code(err) != codes.Unavailable, fmt.Sprint(err)
	})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("FetchFile after the revoke: %v, want NOT_FOUND", err)
	}
}

// dialFollowing dials addr as s, following a follower to the leader for personal steps.
func dialFollowing(t *testing.T, c *clustertest.Cluster, addr string, s *x509svid.SVID) *grpc.ClientConn {
	creds := identity.ClientCredentials(s, identitytest.Bundle(c.CA), identity.AuthorizeReplica(c.TD))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds), grpc.WithChainUnaryInterceptor(api.FollowLeader(creds)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestAttachmentBadInput: every bad upload is refused with a clear status naming the field, and
// leaves nothing staged: too large (declared or sent), a type the node does not accept, a
// program named .pdf, empty, a hash that does not match, and an upload that breaks off. A record
// that names a file the node does not hold, or names it wrongly, is refused.
func TestAttachmentBadInput(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Replicas: 1,
		Extra: "attachments:\n  max_bytes: 3000000\n  media_types: [application/pdf, image/png]\n"})
	r := c.Replicas[0]
	d := r.Node.DB()
	conn := r.Local(t)
	elf := append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 5000)...)
	png := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 100)...)
	ok := randomPDF(t, 1000)
	for _, tc := range []struct {
		name, filename string
		data           []byte
		sha            string
		code           codes.Code
		says           string
	}{
		{"too large", "groot.pdf", randomPDF(t, 3000001), "", codes.ResourceExhausted, "over this node's limit of 3000000 bytes"},
		{"type not allowed", "notes.txt", []byte("gewoon tekst, geen pdf"), "", codes.InvalidArgument, "text/plain; charset=utf-8, which this node does not accept"},
		{"program named .pdf", "handreiking.pdf", elf, "", codes.InvalidArgument, "executable program"},
		{"png named .pdf", "handreiking.pdf", png, "", codes.InvalidArgument, "promises application/pdf, but the content is image/png"},
		{"empty", "leeg.pdf", nil, "", codes.InvalidArgument, "the file is empty"},
		{"hash mismatch", "handreiking.pdf", ok, sha([]byte("something else")), codes.InvalidArgument, "sha256: the content has SHA-256 " + sha(ok)},
		{"no name", "", ok, "", codes.InvalidArgument, "filename: missing"},
		{"a path for a name", "../etc/passwd.pdf", ok, "", codes.InvalidArgument, "is a path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := upload(clustertest.Call(t), conn, tc.filename, tc.data, tc.sha)
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.says) {
				t.Fatalf("upload: %v; want %s saying %q", err, tc.code, tc.says)
			}
			clustertest.Eventually(t, 5*time.Second, "nothing staged", func() (bool, string) { return noStaging(d) })
			if files, _, _, _, _ := d.FileCounts(context.Background()); files != 0 {
				t.Fatalf("%d files stored after a refused upload", files)
			}
		})
	}

	// An upload that breaks off after two chunks: its chunks go at once.
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := pb.NewAttachmentServiceClient(conn).Upload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	big := randomPDF(t, 2*attach.ChunkBytes+10)
	if err := stream.Send(&pb.UploadRequest{Filename: "half.pdf", Data: big}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, "chunks staged", func() (bool, string) {
		ok, detail := noStaging(d)
		return !ok, detail
	})
	cancel()
	clustertest.Eventually(t, 10*time.Second, "the broken-off upload's chunks removed", func() (bool, string) { return noStaging(d) })

	// A record that names files wrongly.
	att, err := upload(clustertest.Call(t), conn, "goed.pdf", ok, sha(ok))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		atts any
		code codes.Code
		says string
	}{
		{"unknown file", []map[string]any{{"sha256": sha([]byte("x")), "size": 1, "media_type": attach.PDF, "filename": "x.pdf"}}, codes.FailedPrecondition, "record.body.attachments[0].sha256: no file"},
		{"wrong size", []map[string]any{{"sha256": att.Sha256, "size": 5, "media_type": attach.PDF, "filename": "x.pdf"}}, codes.InvalidArgument, "record.body.attachments[0].size"},
		{"wrong type", []map[string]any{{"sha256": att.Sha256, "size": att.Size, "media_type": "image/png", "filename": "x.png"}}, codes.InvalidArgument, "record.body.attachments[0].media_type"},
		{"not a hash", []map[string]any{{"sha256": "abc", "size": 1, "media_type": attach.PDF, "filename": "x.pdf"}}, codes.InvalidArgument, "record.body.attachments[0].sha256"},
		{"not an array", "handreiking.pdf", codes.InvalidArgument, "record.body.attachments: must be an array"},
	} {
		body, _ := json.Marshal(map[string]any{"title": "t", "text": "t", "attachments": tc.atts})
		_, err := r.Records(t).Put(clustertest.Call(t), &pb.PutRequest{Record: &pb.Record{Id: "g", Kind: "guidance", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC, Body: body}})
		if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.says) {
			t.Errorf("%s: put: %v; want %s saying %q", tc.name, err, tc.code, tc.says)
		}
	}
	// A file that sniffs as a PDF and is none is stored, and not indexed.
	clustertest.Eventually(t, 10*time.Second, "the broken PDF marked", func() (bool, string) {
		state, err := d.FileTextState(context.Background(), att.Sha256)
		return state == "broken", fmt.Sprintf("%q (%v)", state, err)
	})
	// The node kept serving, and the good file is whole.
	if got, err := stored(d, att.Sha256); err != nil || sha(got) != att.Sha256 {
		t.Fatalf("the good file after the refusals: %v", err)
	}
}
