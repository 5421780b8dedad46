package main

import (
	"fmt"

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

A record of an exercise, or the node's test or draft records, are read in their mode:
--exercise NAME, or --status test|draft.

--out FILE is written beside itself and renamed once whole, with mode 0600, as the record may be
confidential or secret: a failed export never leaves part of an alert under FILE.`,
		Example: `  knooppunt export --format cap --record alert-zeeland-beds-low-VR19-1772890320
  knooppunt export --format cap --record sitrep-vr19-1 --out sitrep.xml
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
				c := pb.NewRecordServiceClient(conn)
				r, err := c.Get(cmd.Context(), &pb.GetRequest{Id: id, Mode: mode})
				if status.Code(err) == codes.NotFound {
					if mode == nil {
						return fmt.Errorf("record not found: this node holds no actual record %q; is it an exercise record? add --exercise NAME (or --status test|draft for a test or draft record) (NotFound)", id)
					}
					return fmt.Errorf("record not found: this node holds no record %q in this mode (NotFound)", id)
				}
				if err != nil {
					return err
				}
				a, err := cap.Export(cmd.Context(), c, r, cap.ExportOptions{Language: language})
				if err != nil {
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
	fl.StringVar(&id, "record", "", "the id of the record to export")
	fl.StringVar(&out, "out", "", "write to this file, mode 0600 (default: standard output)")
	fl.StringVar(&language, "language", "nl-NL", "the language of a sitrep's info block")
	mf.register(cmd)
	f.register(cmd, false)
	f.fill(map[string]string{"exercise": "mode.exercise", "status": "mode.status", "record": "id"})
	return cmd
}
