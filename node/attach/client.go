package attach

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// UploadPiece is the data of one UploadRequest message a client sends.
const UploadPiece = 256 << 10

// Upload sends size bytes of r to a node as filename, stating want (its hex SHA-256; "" to not
// state it), and returns the attachment the node answered with. progress, when set, is told
// each piece's size as it goes.
func Upload(ctx context.Context, c pb.AttachmentServiceClient, filename string, r io.Reader, size int64, want string, progress func(int)) (*pb.Attachment, error) {
	stream, err := c.Upload(ctx)
	if err != nil {
		return nil, err
	}
	msg := &pb.UploadRequest{Filename: filename, Sha256: want, Size: size}
	buf := make([]byte, UploadPiece)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 || msg.Filename != "" {
			msg.Data = buf[:n]
			if err := stream.Send(msg); err != nil {
				break // the node ended the stream: CloseAndRecv says why
			}
			if progress != nil {
				progress(n)
			}
			msg = &pb.UploadRequest{}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			stream.CloseSend()
			return nil, rerr
		}
	}
	return stream.CloseAndRecv()
}

// Download writes a file that record id of mode (nil: actual) names to w, and checks it against
// its hash. progress, when set, is told the file's size first (n 0), then each piece's size.
func Download(ctx context.Context, c pb.AttachmentServiceClient, id, sha string, mode *pb.Mode, w io.Writer, progress func(size int64, n int)) error {
	return Fetch(ctx, c, id, sha, mode, func(*pb.Attachment) (io.Writer, error) { return w, nil }, progress)
}

// Fetch is Download for a caller that needs to know the file before it takes any of it: open is
// called once, with the attachment as the node describes it, before the first byte, and returns
// where the bytes go. An error before then (the record names no such file, or it has not been
// fetched from its source yet) comes before open is called.
func Fetch(ctx context.Context, c pb.AttachmentServiceClient, id, sha string, mode *pb.Mode, open func(*pb.Attachment) (io.Writer, error), progress func(size int64, n int)) error {
	stream, err := c.Download(ctx, &pb.DownloadRequest{RecordId: id, Sha256: sha, Mode: mode})
	if err != nil {
		return err
	}
	h := sha256.New()
	var size, got int64
	var w io.Writer
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if w == nil {
			if msg.Attachment == nil {
				return fmt.Errorf("the node sent the file %s without saying what it is: try again", sha)
			}
			size = msg.Attachment.Size
			if w, err = open(msg.Attachment); err != nil {
				return err
			}
			if progress != nil {
				progress(size, 0)
			}
		}
		if _, err := w.Write(msg.Data); err != nil {
			return err
		}
		h.Write(msg.Data)
		got += int64(len(msg.Data))
		if progress != nil {
			progress(size, len(msg.Data))
		}
	}
	if w == nil { // an empty file comes as no piece at all
		if _, err := open(&pb.Attachment{Sha256: sha}); err != nil {
			return err
		}
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != sha || got != size {
		return fmt.Errorf("the node sent %d bytes with SHA-256 %s, not the file %s: try again", got, sum, sha)
	}
	return nil
}
