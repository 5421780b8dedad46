package db

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestCommitsAnnounceTextAndWebhookWork: a commit that queues text or stores a file moves
// textWork, and one that changes the webhooks moves WebhooksGeneration; a commit that does
// neither, such as the disclosures of a peer's Query, moves neither. The text indexer and the
// webhook dispatcher rest on these: a count that did not move would leave a record out of the
// index or a new webhook without deliveries.
func TestCommitsAnnounceTextAndWebhookWork(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "knooppunt.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	var index uint64
	at := timestamppb.New(time.Unix(1_700_000_000, 0))
	step := func(name string, wantText, wantHooks bool, apply func(index uint64) error) {
		t.Helper()
		text, hooks := d.textWork.Load(), d.WebhooksGeneration()
		index++
		if err := apply(index); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if moved := d.textWork.Load() != text; moved != wantText {
			t.Errorf("%s: textWork moved %v, want %v", name, moved, wantText)
		}
		if moved := d.WebhooksGeneration() != hooks; moved != wantHooks {
			t.Errorf("%s: WebhooksGeneration moved %v, want %v", name, moved, wantHooks)
		}
	}
	step("a record written", true, false, func(i uint64) error {
		_, err := d.Apply(i, []*Write{{Id: "s1", Origin: "vr.test", Kind: "sitrep", Crisis: "c", Region: "VR01",
			Classification: pb.Classification_INTERNAL, Body: []byte(`{"title":"t"}`), UpdatedAt: at}})
		return err
	})
	step("an audit entry", false, false, func(i uint64) error {
		return d.ApplyAudit(i, []AuditEntry{{At: at.AsTime(), Actor: "x", Action: AuditSearch, Detail: `{}`}})
	})
	step("disclosures", false, false, func(i uint64) error {
		return d.ApplyDisclosures(i, &pb.RecordDisclosures{Recipient: "p.test", RecipientId: "spiffe://p.test/node/a", Via: "Query", At: at,
			CountHeld: true, Disclosed: []*pb.Disclosure{{RecordId: "s1", Version: 1}}})
	})
	data := []byte("%PDF-1.4 not much")
	sum := sha256.Sum256(data)
	step("a file's chunk", false, false, func(i uint64) error {
		_, err := d.ApplyFileChunk(i, &pb.FileChunk{UploadId: "u1", Seq: 0, Data: data, At: at})
		return err
	})
	step("a file stored", true, false, func(i uint64) error {
		refused, _, err := d.ApplyFileStep(i, &pb.FileStep{Action: "commit", UploadId: "u1", Sha256: hex.EncodeToString(sum[:]),
			Size: int64(len(data)), MediaType: "application/pdf", Origin: "", At: at})
		if refused != nil {
			return refused
		}
		return err
	})
	step("a webhook added", false, true, func(i uint64) error {
		_, _, refused, err := d.ApplyWebhookStep(i, &pb.WebhookStep{Action: "add", By: "spiffe://vr.test/user/a", At: at,
			Webhook: &pb.Webhook{Id: "w1", Url: "https://example.invalid/hook", Secret: "s"}})
		if refused != nil {
			return refused
		}
		return err
	})
}
