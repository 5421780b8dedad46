package attachments_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestUploadRefusesAtTheField: a file name of spaces alone is refused (review AF, AF8), and a
// later message that gives the SHA-256 or the size is refused naming that field, not filename
// (review AF, AF9).
func TestUploadRefusesAtTheField(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Replicas: 1})
	r := c.Leader(t, 10*time.Second, c.Replicas...)
	files := pb.NewAttachmentServiceClient(r.Local(t))
	text := []byte("Handreiking opvang\n")
	for _, tc := range []struct {
		name  string
		msgs  []*pb.UploadRequest
		field string
		msg   string
	}{
		{"a name of spaces", []*pb.UploadRequest{{Filename: "   ", Data: text}}, "filename", "filename: spaces only: name the file, such as handreiking.pdf"},
		{"a name later", []*pb.UploadRequest{{Filename: "a.txt", Data: text}, {Filename: "b.txt"}}, "filename", "filename: only the first message names the file; later ones carry data alone"},
		{"a SHA-256 later", []*pb.UploadRequest{{Filename: "a.txt", Data: text}, {Sha256: strings.Repeat("0", 64)}}, "sha256", "sha256: only the first message gives the file's SHA-256; later ones carry data alone"},
		{"a size later", []*pb.UploadRequest{{Filename: "a.txt", Data: text}, {Size: 19}}, "size", "size: only the first message gives the file's size; later ones carry data alone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := files.Upload(clustertest.Call(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tc.msgs {
				if stream.Send(m) != nil {
					break // refused already: CloseAndRecv says why
				}
			}
			_, err = stream.CloseAndRecv()
			clustertest.WantRefused(t, err, codes.InvalidArgument, tc.field, tc.msg)
		})
	}
}
