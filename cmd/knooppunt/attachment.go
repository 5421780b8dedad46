package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// progressFrom is the size from which a transfer shows progress on standard error.
const progressFrom = 1 << 20

func newBar(w io.Writer, size int64, what string, show bool) *progressbar.ProgressBar {
	return progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetVisibility(show && size >= progressFrom),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish())
}

// uploadFile uploads one file and returns the attachment the node answered with.
func uploadFile(ctx context.Context, conn *grpc.ClientConn, path string, progress io.Writer, show bool) (*pb.Attachment, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--attach: %w", err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("--attach: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("--attach %s: not a regular file", path)
	}
	// The hash goes first, so that the node refuses content that changed on the way.
	h := sha256.New()
	if _, err := io.Copy(h, file); err != nil {
		return nil, fmt.Errorf("--attach %s: %w", path, err)
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	bar := newBar(progress, fi.Size(), "uploading "+filepath.Base(path), show)
	defer bar.Finish()
	att, err := attach.Upload(ctx, pb.NewAttachmentServiceClient(conn), filepath.Base(path), file, fi.Size(), hex.EncodeToString(h.Sum(nil)), func(n int) { bar.Add(n) })
	if st, ok := status.FromError(err); ok && err != nil {
		// The node's reason, with the file it is about.
		return nil, status.Errorf(st.Code(), "--attach %s: %s", path, st.Message())
	}
	if err != nil {
		return nil, fmt.Errorf("--attach %s: %w", path, err)
	}
	return att, nil
}

// withAttachments adds atts to the body's attachments array.
func withAttachments(body json.RawMessage, atts []*pb.Attachment) (json.RawMessage, error) {
	if len(atts) == 0 {
		return body, nil
	}
	obj := map[string]json.RawMessage{}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &obj); err != nil {
			return nil, fmt.Errorf("--body: with --attach the body must be a JSON object: %w", err)
		}
	}
	var list []record.Attachment
	if raw, ok := obj[record.AttachmentsField]; ok {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("--body: %s must be an array of {sha256, size, media_type, filename}: %w", record.AttachmentsField, err)
		}
	}
	for _, a := range atts {
		list = append(list, record.Attachment{SHA256: a.Sha256, Size: a.Size, MediaType: a.MediaType, Filename: a.Filename})
	}
	raw, err := json.Marshal(list)
	if err != nil {
		return nil, err
	}
	obj[record.AttachmentsField] = raw
	return json.Marshal(obj)
}

func newRecordAttachmentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "attachment",
		Short: "Get the files records name",
	}
	cmd.AddCommand(newAttachmentGetCmd())
	return cmd
}

func newAttachmentGetCmd() *cobra.Command {
	var (
		f   clientFlags
		mf  modeFlags
		out string
	)
	cmd := &cobra.Command{
		Use:   "get ID SHA256 -o FILE",
		Short: "Save a file that a record names",
		Long: `Save a file that a record names. ID is an own record's id, or ORIGIN/ID for a record
received from a peer (ORIGIN is the peer's trust domain or its name, as in search --origin).
SHA256 is the file's hash, as the record's attachments list it (record get, or search -o json
for a peer's). The file is checked against the hash before it is
kept; -o - writes it to standard output. Like record get, it reads in one mode: an exercise's
record names its files only with --exercise NAME, a test or draft record's with --status.`,
		Example: `  knooppunt record get handreiking-opvang -o json | jq '.body.attachments'
  knooppunt record attachment get handreiking-opvang 9f86d08… -o handreiking.pdf
  knooppunt record attachment get ggdghor.crisis.test/handreiking-opvang 9f86d08… -o handreiking.pdf
  knooppunt record attachment get oef-sitrep-1 9f86d08… --exercise oefening-zeeland -o kaart.pdf`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("-o: name the file to write, or - for standard output")
			}
			if err := record.CheckSHA256("SHA256", args[1]); err != nil {
				return err
			}
			mode, err := mf.mode()
			if err != nil {
				return err
			}
			return f.call(func(conn *grpc.ClientConn) error {
				return downloadFile(cmd.Context(), conn, args[0], args[1], mode, out, cmd.OutOrStdout(), cmd.ErrOrStderr())
			})
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "the file to write, or - for standard output")
	mf.register(cmd)
	f.register(cmd, false)
	return cmd
}

func downloadFile(ctx context.Context, conn *grpc.ClientConn, id, sha string, mode *pb.Mode, out string, stdout, progress io.Writer) error {
	var w io.Writer = stdout
	var tmp *besideFile
	if out != "-" {
		// Renamed to out once the hash checks.
		var err error
		if tmp, err = createBeside(out); err != nil {
			return fmt.Errorf("-o: %w", err)
		}
		defer tmp.discard()
		w = tmp
	}
	var bar *progressbar.ProgressBar
	var got int64
	err := attach.Download(ctx, pb.NewAttachmentServiceClient(conn), id, sha, mode, w, func(size int64, n int) {
		if bar == nil {
			bar = newBar(progress, size, "downloading", out != "-")
		}
		bar.Add(n)
		got += int64(n)
	})
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	if tmp == nil {
		return nil
	}
	if err := tmp.commit(); err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	fmt.Fprintf(progress, "%s: %d bytes\n", out, got)
	return nil
}
