package main

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/cap"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newExportCmd() *cobra.Command {
	var (
		f        clientFlags
		mf       modeFlags
		format   string
		id       string
		out      string
		language string
	)
	cmd := &cobra.Command{
		Use:   "export --format cap --record ID",
		Short: "Write a record as a CAP 1.2 alert",
		Long: `Write one record as a CAP 1.2 alert (OASIS Common Alerting Protocol), for alerting systems such
as NL-Alert.

An alert record (kind alert: imported, or written by an early-warning rule) is written as the
alert its body holds. A sitrep becomes an informational alert: category Other, event "Situation
report", its title the headline and its summary the description; version 1 is an Alert, every
later version an Update that references the version before it (when the node no longer knows
when that version was sent, as for a record that is not actual, an Alert that says so in its
<note>). The record's status gives the alert's status (an exercise's name goes in <note>), and
its classification the scope: a public record is Public, any other is never Public (internal is
Restricted, confidential and secret Private, unless the body says which).

A partner's record is ORIGIN/ID (its origin, a trust domain or the peer's name, as alert list
--partners and search show it): it is read as a search for it answers, from the partner or this
node's last copy, and written as the partner shared it (a withheld field stays out).

A record of an exercise, or the node's test or draft records, are read in their mode:
--exercise NAME, or --status test|draft.

--out FILE is written beside itself and renamed once whole, with mode 0600, as the record may be
confidential or secret: a failed export never leaves part of an alert under FILE.`,
		Example: `  knooppunt export --format cap --record alert-zeeland-beds-low-VR19-1772890320
  knooppunt export --format cap --record sitrep-vr19-1 --out sitrep.xml
  knooppunt export --format cap --record vr-zeeland.crisis.test/alert-zeeland-beds-low-VR19-1772890320
  knooppunt export --format cap --record cap-OEF-1-eeb4f6de4cf28d24 --exercise oefening-zeeland`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "cap" {
				return fmt.Errorf("--format %q: use --format cap", format)
			}
			if id == "" {
				return fmt.Errorf("--record: missing: name the record to export, such as --record alert-zeeland-beds-low-VR19-1772890320")
			}
			mode, err := mf.mode()
			if err != nil {
				return err
			}
			var file *besideFile
			if out != "" && out != "-" {
				// Made before the node is asked, so that a place it cannot be written fails first.
				if file, err = createBeside(out); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				defer file.discard()
			}
			return f.call(func(conn *grpc.ClientConn) error {
				var a *cap.Alert
				if origin, rid, ok := strings.Cut(id, "/"); ok {
					// A partner's record, as a search for it gives it: from the partner, or its
					// last copy here.
					r, err := partnerRecord(cmd.Context(), conn, origin, rid, mode)
					if err != nil {
						return err
					}
					if a, err = cap.FromRecord(r, cap.ExportOptions{Language: language}); err != nil {
						return err
					}
					st, err := pb.NewStatusServiceClient(conn).Status(cmd.Context(), &pb.StatusRequest{})
					if err != nil {
						return err
					}
					if err := partnerSender(a, r.Origin, st.Org); err != nil {
						return err
					}
				} else if a, err = exportOwn(cmd.Context(), conn, id, mode, language); err != nil {
					return err
				}
				doc, err := a.Marshal()
				if err != nil {
					return err
				}
				if file == nil {
					_, err = cmd.OutOrStdout().Write(doc)
					return err
				}
				if _, err := file.Write(doc); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				if err := file.commit(); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%s %s)\n", out, a.MsgType, a.Identifier)
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&format, "format", "cap", "cap (CAP 1.2)")
	fl.StringVar(&id, "record", "", "the id of the record to export, or ORIGIN/ID for a partner's")
	fl.StringVar(&out, "out", "", "write to this file, mode 0600 (default: standard output)")
	fl.StringVar(&language, "language", "nl-NL", "the language of a sitrep's info block")
	mf.register(cmd)
	f.register(cmd, false)
	f.fill(map[string]string{"exercise": "mode.exercise", "status": "mode.status", "record": "id"})
	return cmd
}

// partnerSender refuses a partner's alert that names this organisation (own, its trust domain)
// as its sender: exported, it would pass for this organisation's own, an Update or Cancel of its
// own alerts included, with nothing in the document to say it came from the partner (review B,
// L1).
//
// A sender outside plain ASCII is refused too: an invisible character or a look-alike (a
// non-breaking hyphen, a Cyrillic letter) makes this organisation's name out of another that
// compares as different (review C, F3).
func partnerSender(a *cap.Alert, origin, own string) error {
	if i := strings.IndexFunc(a.Sender, func(c rune) bool { return c > unicode.MaxASCII || !unicode.IsPrint(c) }); i >= 0 {
		return fmt.Errorf("--record: %s's alert %s names a sender with the character %U, outside plain ASCII: exported, it could read as another organisation's, this one's included; ask %s to send it under a plain sender", origin, a.Identifier, []rune(a.Sender[i:])[0], origin)
	}
	if own != "" && strings.EqualFold(strings.TrimSpace(a.Sender), own) {
		return fmt.Errorf("--record: %s's alert %s names this organisation (%s) as its sender: exported, it would read as this organisation's own; ask %s to send it under its own sender", origin, a.Identifier, own, origin)
	}
	return nil
}

// exportOwn is the CAP alert of one of the node's own records.
func exportOwn(ctx context.Context, conn *grpc.ClientConn, id string, mode *pb.Mode, language string) (*cap.Alert, error) {
	c := pb.NewRecordServiceClient(conn)
	r, err := c.Get(ctx, &pb.GetRequest{Id: id, Mode: mode})
	if status.Code(err) == codes.NotFound {
		if mode == nil {
			return nil, fmt.Errorf("record not found: this node holds no actual record %q; is it an exercise record? add --exercise NAME (or --status test|draft for a test or draft record); a partner's record is ORIGIN/ID, such as vr-zeeland.crisis.test/%s (NotFound)", id, id)
		}
		return nil, fmt.Errorf("record not found: this node holds no record %q in this mode (NotFound)", id)
	}
	if err != nil {
		return nil, err
	}
	return cap.Export(ctx, c, r, cap.ExportOptions{Language: language})
}

// partnerRecord is a partner's record by its origin (a trust domain, or the peer's name) and id,
// as a search for it answers: from the partner, or its last copy here.
func partnerRecord(ctx context.Context, conn *grpc.ClientConn, origin, id string, mode *pb.Mode) (*pb.Record, error) {
	resp, err := pb.NewSearchServiceClient(conn).Search(ctx, &pb.SearchRequest{Origins: []string{origin}, Filter: &pb.Filter{Ids: []string{id}, Mode: mode}})
	if err != nil {
		return nil, err
	}
	for _, h := range resp.Hits {
		if h.Record.GetId() == id {
			return h.Record, nil
		}
	}
	return nil, fmt.Errorf("record not found: %s holds no record %q that it shares with this node, in this mode, nor does this node's copy of what it shared (NotFound)", origin, id)
}
