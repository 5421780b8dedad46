package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/knooppunt/knooppunt/node/cap"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newExportCmd() *cobra.Command {
	var (
		f        clientFlags
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
later version an Update. The record's status gives the alert's status (an exercise's name goes
in <note>), and its classification the scope: a public record is Public, any other is never
Public (internal is Restricted, confidential and secret Private, unless the body says which).`,
		Example: `  knooppunt export --format cap --record alert-zeeland-beds-low-VR19-1772890320
  knooppunt export --format cap --record sitrep-vr19-1 --out sitrep.xml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "cap" {
				return fmt.Errorf("--format %q: use --format cap", format)
			}
			if id == "" {
				return fmt.Errorf("--record: missing: name the record to export, such as --record alert-zeeland-beds-low-VR19-1772890320")
			}
			return f.call(func(conn *grpc.ClientConn) error {
				r, err := pb.NewRecordServiceClient(conn).Get(cmd.Context(), &pb.GetRequest{Id: id})
				if err != nil {
					return err
				}
				a, err := cap.FromRecord(r, cap.ExportOptions{Language: language})
				if err != nil {
					return err
				}
				doc, err := a.Marshal()
				if err != nil {
					return err
				}
				if out == "" || out == "-" {
					_, err = cmd.OutOrStdout().Write(doc)
					return err
				}
				if err := os.WriteFile(out, doc, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%s %s)\n", out, a.MsgType, a.Identifier)
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&format, "format", "cap", "cap (CAP 1.2)")
	fl.StringVar(&id, "record", "", "the id of the record to export")
	fl.StringVar(&out, "out", "", "write to this file (default: standard output)")
	fl.StringVar(&language, "language", "nl-NL", "the language of a sitrep's info block")
	f.register(cmd, false)
	return cmd
}
