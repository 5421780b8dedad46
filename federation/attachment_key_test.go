package federation_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestAttachmentsInAnotherCaseNameNoFile: a record's files are the ones its body names under the
// key attachments exactly, as the redactor reads keys (review 18 M1). A body that names a file
// under "Attachments" (as a PascalCase serializer writes it) names none: a policy that redacts
// body.attachments leaves that member in place, and the source still refuses c the file, which
// c's node never fetches.
func TestAttachmentsInAnotherCaseNameNoFile(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, c := f.Orgs[0], f.Orgs[1]
	pdf := attach.SimplePDF("Bijlage", []string{"alleen voor eigen gebruik"})
	sum := sha256.Sum256(pdf)
	hash := hex.EncodeToString(sum[:])
	att, err := attach.Upload(fedtest.Call(t), pb.NewAttachmentServiceClient(a.Local(t)), "bijlage.pdf", bytes.NewReader(pdf), int64(len(pdf)), hash, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"title": "Handreiking", "text": "zie attachments", "Attachments": []*pb.Attachment{att}, "note": "attachments"})
	a.Approve(t, policyDoc("guidance-to-c", spiffeOf(c), "guidance", "public", "redact: [body.attachments]\n"))
	a.Put(t, &pb.Record{Id: "handreiking", Kind: "guidance", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC, Body: body})
	waitHeld(t, c, "oekraine", a.TD.Name(), map[string]int64{"handreiking": 1}, "c holds the guidance")

	stream, err := pb.NewFederationServiceClient(identitytest.Dial(t, a.Addr, c.Replica, a.Bundle(), a.TD)).
		FetchFile(fedtest.Call(t), &pb.FetchFileRequest{RecordId: "handreiking", Sha256: hash})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.NotFound {
		t.Errorf("c fetches the file the record names under \"Attachments\": %v, want NOT_FOUND", err)
	}
	if missing, err := c.Node.DB().MissingFiles(context.Background(), a.TD.Name(), "", 10); err != nil || len(missing) != 0 {
		t.Errorf("c's node would fetch %+v (%v), want nothing", missing, err)
	}
	if _, err := c.Node.DB().FileInfo(context.Background(), hash); !errors.Is(err, db.ErrFileNotFound) {
		t.Errorf("c holds the file: %v", err)
	}
}
