package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// clientFlags are the flags every client command takes.
type clientFlags struct {
	node   string
	output string
}

func (f *clientFlags) register(cmd *cobra.Command, listing bool) {
	def := os.Getenv("KNOOPPUNT_NODE")
	if def == "" {
		def = "unix://knooppunt-data/" + node.SocketName
	}
	cmd.Flags().StringVar(&f.node, "node", def, "node address: unix:///path/knooppunt.sock or host:port (env KNOOPPUNT_NODE)")
	if listing {
		cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	}
}

func (f *clientFlags) checkOutput() error {
	switch f.output {
	case "", "table", "json":
		return nil
	}
	return fmt.Errorf("--output %q: use table or json", f.output)
}

// dial connects to the node. A unix socket carries no identity: its file mode decides who may
// connect, so it is for local administration.
func (f *clientFlags) dial() (*grpc.ClientConn, error) {
	target := f.node
	if !strings.HasPrefix(target, "unix:") {
		return nil, fmt.Errorf("--node %q: only unix:///path sockets are served until SPIFFE identities are configured", target)
	}
	if strings.HasPrefix(target, "unix://") && !strings.HasPrefix(target, "unix:///") {
		// unix://relative/path: grpc wants unix:relative/path for a relative path.
		target = "unix:" + strings.TrimPrefix(target, "unix://")
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(node.MaxMessageBytes), grpc.MaxCallSendMsgSize(node.MaxMessageBytes)))
	if err != nil {
		return nil, fmt.Errorf("--node %q: %w", f.node, err)
	}
	return conn, nil
}

func (f *clientFlags) records() (pb.RecordServiceClient, func(), error) {
	conn, err := f.dial()
	if err != nil {
		return nil, nil, err
	}
	return pb.NewRecordServiceClient(conn), func() { conn.Close() }, nil
}

// callError turns a gRPC error into a message for a person: the node's own message, plus the
// code so scripts can match on it.
func callError(f *clientFlags, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	if strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such file") {
		return fmt.Errorf("cannot reach the node at %s: is `knooppunt serve` running? (%s)", f.node, st.Code())
	}
	return fmt.Errorf("%s (%s)", msg, st.Code())
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}
