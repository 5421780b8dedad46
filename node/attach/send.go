package attach

import (
	"context"

	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// MaxPiece is the most data one FileData message carries.
const MaxPiece = 256 << 10

// Send streams a stored file: the attachment first, then its data in pieces. mapErr turns a
// failure to read the file into the status to answer with.
func Send(ctx context.Context, d *db.DB, sha string, send func(*pb.FileData) error, mapErr func(error) error) error {
	f, err := d.FileInfo(ctx, sha)
	if err != nil {
		return mapErr(err)
	}
	att := &pb.Attachment{Sha256: f.SHA256, Size: f.Size, MediaType: f.MediaType}
	sent := false
	err = d.ReadFile(ctx, sha, func(b []byte) error {
		for len(b) > 0 {
			n := min(len(b), MaxPiece)
			msg := &pb.FileData{Data: b[:n]}
			if !sent {
				msg.Attachment, sent = att, true
			}
			if err := send(msg); err != nil {
				return err
			}
			b = b[n:]
		}
		return nil
	})
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return mapErr(err)
	}
	return nil
}

// Texts is what a text query reads of a record as its reader gets it: the kind's text fields of
// body, then the text taken out of each file body names. A body whose attachments field was
// redacted names no file, so a withheld file never makes a record match.
func Texts(ctx context.Context, d *db.DB, k *record.Kind, body []byte) []string {
	texts, _ := TextsAndFiles(ctx, d, k, body)
	return texts
}

// TextsAndFiles is Texts with, for each text, the filename of the file it was taken from, as
// body names it: "" for the kind's text fields. A snippet from a file is said to be, so that
// nobody looks for its words in the record's own text.
func TextsAndFiles(ctx context.Context, d *db.DB, k *record.Kind, body []byte) (texts, files []string) {
	texts = record.Texts(k, body)
	files = make([]string, len(texts))
	atts, _ := record.Attachments(body)
	if len(atts) == 0 {
		return texts, files
	}
	shas := make([]string, len(atts))
	for i, a := range atts {
		shas[i] = a.SHA256
	}
	found, err := d.FileText(ctx, shas)
	if err != nil {
		return texts, files
	}
	for _, a := range atts {
		if t, ok := found[a.SHA256]; ok {
			texts, files = append(texts, t), append(files, a.Filename)
		}
	}
	return texts, files
}
