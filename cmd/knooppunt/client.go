package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// clientFlags are the flags every client command takes.
type clientFlags struct {
	node   string
	output string

	// cmd is the command the flags are registered on; fields maps request fields to the flags
	// of cmd that fill them (see fill), args to its arguments (see fillArg).
	cmd    *cobra.Command
	fields map[string]string
	args   map[string]string

	svidCert, svidKey, bundle, workloadAPI, spiffeID string
}

func (f *clientFlags) register(cmd *cobra.Command, listing bool) {
	f.cmd = cmd
	def := os.Getenv("KNOOPPUNT_NODE")
	if def == "" {
		def = "unix://knooppunt-data/" + node.SocketName
	}
	cmd.Flags().StringVar(&f.node, "node", def, "node address: unix:///path/knooppunt.sock or host:port (env KNOOPPUNT_NODE)")
	cmd.Flags().StringVar(&f.svidCert, "svid-cert", os.Getenv("KNOOPPUNT_SVID_CERT"), "your X.509-SVID chain (PEM), for host:port (env KNOOPPUNT_SVID_CERT)")
	cmd.Flags().StringVar(&f.svidKey, "svid-key", os.Getenv("KNOOPPUNT_SVID_KEY"), "the SVID's key (PEM) (env KNOOPPUNT_SVID_KEY)")
	cmd.Flags().StringVar(&f.bundle, "bundle", os.Getenv("KNOOPPUNT_BUNDLE"), "your org's trust bundle (PEM) (env KNOOPPUNT_BUNDLE)")
	cmd.Flags().StringVar(&f.workloadAPI, "workload-api", os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "SPIRE Workload API socket, unix:///path, instead of files (env SPIFFE_ENDPOINT_SOCKET)")
	cmd.Flags().StringVar(&f.spiffeID, "spiffe-id", os.Getenv("KNOOPPUNT_SPIFFE_ID"), "with --workload-api, which of the SVIDs the agent offers you to use; default its first (env KNOOPPUNT_SPIFFE_ID)")
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
// connect, so it is for local administration. A TCP address needs the caller's SVID, and the
// node must present a replica SVID of the caller's own trust domain.
func (f *clientFlags) dial() (*grpc.ClientConn, error) {
	target := f.node
	creds := insecure.NewCredentials()
	if strings.HasPrefix(target, "unix:") {
		if strings.HasPrefix(target, "unix://") && !strings.HasPrefix(target, "unix:///") {
			// unix://relative/path: grpc wants unix:relative/path for a relative path.
			target = "unix:" + strings.TrimPrefix(target, "unix://")
		}
	} else {
		if _, port, err := net.SplitHostPort(target); err != nil || port == "" {
			return nil, fmt.Errorf("--node %q: give unix:///path/to/knooppunt.sock (on the node's host) or host:port (over mutual TLS)", f.node)
		}
		c, err := f.tlsCredentials()
		if err != nil {
			return nil, err
		}
		creds = c
	}
	sizes := grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(node.MaxMessageBytes), grpc.MaxCallSendMsgSize(node.MaxMessageBytes))
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds), sizes,
		// A follower sends a policy, phase or rule step to the leader itself.
		grpc.WithChainUnaryInterceptor(api.FollowLeader(creds, sizes)))
	if err != nil {
		return nil, fmt.Errorf("--node %q: %w", f.node, err)
	}
	return conn, nil
}

func (f *clientFlags) tlsCredentials() (credentials.TransportCredentials, error) {
	var (
		svid    x509svid.Source
		bundles x509bundle.Source
		td      spiffeid.TrustDomain
	)
	switch {
	case f.svidCert != "" || f.svidKey != "":
		if f.svidCert == "" || f.svidKey == "" || f.bundle == "" {
			return nil, fmt.Errorf("--node %s: give --svid-cert, --svid-key and --bundle together", f.node)
		}
		s, err := x509svid.Load(f.svidCert, f.svidKey)
		if err != nil {
			return nil, fmt.Errorf("--svid-cert/--svid-key: %w", err)
		}
		td = s.ID.TrustDomain()
		b, err := x509bundle.Load(td, f.bundle)
		if err != nil {
			return nil, fmt.Errorf("--bundle: %w", err)
		}
		svid, bundles = s, b
	case f.workloadAPI != "":
		var want spiffeid.ID
		if f.spiffeID != "" {
			id, err := spiffeid.FromString(f.spiffeID)
			if err != nil {
				return nil, fmt.Errorf("--spiffe-id %q: %w", f.spiffeID, err)
			}
			want = id
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		src, err := identity.NewWorkloadSource(ctx, f.workloadAPI, want)
		if err != nil {
			return nil, err
		}
		s, err := src.GetX509SVID()
		if err != nil {
			return nil, err
		}
		td = s.ID.TrustDomain()
		svid, bundles = src, src
	case f.spiffeID != "":
		return nil, fmt.Errorf("--spiffe-id picks among the SVIDs of the Workload API: give --workload-api too")
	default:
		return nil, fmt.Errorf("--node %s is a TCP address: identify yourself with --svid-cert, --svid-key and --bundle, or --workload-api (or use the unix socket on the node's host)", f.node)
	}
	return identity.ClientCredentials(svid, bundles, identity.AuthorizeReplica(td)), nil
}

func (f *clientFlags) records() (pb.RecordServiceClient, func(), error) {
	conn, err := f.dial()
	if err != nil {
		return nil, nil, err
	}
	return pb.NewRecordServiceClient(conn), func() { conn.Close() }, nil
}

// call checks the output flag, connects to the node, runs fn, and turns a gRPC error from fn
// into a message for a person.
func (f *clientFlags) call(fn func(conn *grpc.ClientConn) error) error {
	if err := f.checkOutput(); err != nil {
		return err
	}
	conn, err := f.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := fn(conn); err != nil {
		if _, ok := status.FromError(err); ok {
			return callError(f, err)
		}
		return err
	}
	return nil
}

// fill notes, for each flag, the request field (a path, such as filter.crisis or record.body)
// that takes its value, so that a refusal of the field, of one of its values (origins[1]) or of
// a path below it (record.body.beds_free) is said of the flag the person typed.
func (f *clientFlags) fill(fields map[string]string) {
	if f.fields == nil {
		f.fields = map[string]string{}
	}
	for flag, field := range fields {
		f.fields[field] = flag
	}
}

// fillArg notes the request field that the command's argument (NAME, as its usage says it)
// fills, so that a refusal of the field is said of the argument.
func (f *clientFlags) fillArg(arg, field string) {
	if f.args == nil {
		f.args = map[string]string{}
	}
	f.args[field] = arg
}

// flagOf is the flag, given on the command line, that filled the request field path, and the part
// of the path below the field ("beds_free" for record.body.beds_free); "" when no flag did, as
// when the field came from a file.
func (f *clientFlags) flagOf(path string) (flag, below string) {
	best := ""
	for field, fl := range f.fields {
		rest, ok := strings.CutPrefix(path, field)
		if !ok || rest != "" && rest[0] != '.' && rest[0] != '[' || len(field) <= len(best) {
			continue
		}
		if f.cmd == nil || !f.cmd.Flags().Changed(fl) {
			continue
		}
		best, flag = field, fl
		if strings.HasPrefix(rest, "[") {
			// One of the flag's values, which the reason quotes, or a path below it.
			rest = rest[strings.IndexByte(rest, ']')+1:]
		}
		below = strings.TrimPrefix(rest, ".")
	}
	return flag, below
}

// callError turns a gRPC error into a message for a person: the node's own message, plus the
// code so scripts can match on it. A refusal of a request field that a flag filled names the
// flag instead of the field.
func callError(f *clientFlags, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	// grpc's message for the connection to --node itself; a node passes on no such message
	// (a follower names the leader it cannot reach).
	if strings.HasPrefix(msg, "connection error") && (strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such file")) {
		hint := ""
		if path, ok := strings.CutPrefix(f.node, "unix://"); ok {
			if fi, err := os.Stat(path); err == nil && fi.IsDir() {
				// The data directory, not the socket in it.
				hint = " That is a directory: use --node unix://" + filepath.Join(path, node.SocketName) + "."
			} else {
				hint = " Or point --node (or KNOOPPUNT_NODE) at the node's socket, DATA_DIR/" + node.SocketName + "."
			}
		}
		return fmt.Errorf("cannot reach the node at %s: is `knooppunt serve` running?%s (%s)", f.node, hint, st.Code())
	}
	// The socket is the node's user's alone (mode 0600): another user, root aside, may not
	// connect to it.
	if strings.HasPrefix(msg, "connection error") && strings.Contains(msg, "permission denied") {
		if path, ok := strings.CutPrefix(f.node, "unix://"); ok {
			owner := "the user that runs the node"
			if uid, name, ok := fileOwner(path); ok {
				owner = cmp.Or(name, "uid") + " (uid " + strconv.Itoa(uid) + "), which runs the node"
			}
			return fmt.Errorf("the node's socket %s is for %s alone: run the command as that user (sudo -u USER knooppunt …), or call the node over mTLS with your own SVID (%s)", path, owner, st.Code())
		}
	}
	// The node's certificate is of a trust domain the client's bundle has no CA for: the address
	// is another organisation's node, which a person or an app of this one may not call.
	if _, td, ok := strings.Cut(msg, "no X.509 bundle found for trust domain"); ok && st.Code() == codes.Unavailable {
		// grpc quotes go-spiffe's quoted name again: `: \"vr-zeeland.crisis.test\"`.
		td = strings.TrimLeft(td, `: \"`)
		if i := strings.IndexAny(td, `\"`); i >= 0 {
			td = td[:i]
		}
		return fmt.Errorf("the node at %s is of %s, and your bundle (--bundle or KNOOPPUNT_BUNDLE, or the Workload API's) holds no CA of it: call your own organisation's node; a person or an app calls only that one, and it asks its partners itself (%s)", f.node, td, st.Code())
	}
	// A node that does not trust the client's SVID ends the handshake: grpc says only how the
	// connection ended, and the node's log says why.
	transport := strings.HasPrefix(msg, "connection error") || strings.HasPrefix(msg, "write tcp") || strings.HasPrefix(msg, "read tcp")
	if st.Code() == codes.Unavailable && transport && !strings.HasPrefix(f.node, "unix://") {
		refused := strings.Contains(msg, "remote error: tls: ")
		if refused || strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset by peer") {
			how := "refused this client's certificate"
			if !refused {
				how = "closed the connection, as it does when it refuses this client's certificate"
			}
			return fmt.Errorf("the node at %s %s: your SVID (--svid-cert or KNOOPPUNT_SVID_CERT, or the Workload API's) must be current and issued by a CA in the node's bundle, that of the node's own organisation for a person or an app; the node logs why (\"handshake refused\") (%s; %s)", f.node, how, msg, st.Code())
		}
	}
	if path, reason := api.Field(err); path != "" {
		if flag, below := f.flagOf(path); flag != "" {
			if below != "" {
				reason = below + ": " + reason
			}
			return fmt.Errorf("--%s: %s (%s)", flag, reason, st.Code())
		}
		if arg := f.args[path]; arg != "" {
			return fmt.Errorf("%s: %s (%s)", arg, reason, st.Code())
		}
	}
	return fmt.Errorf("%s (%s)", msg, st.Code())
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(terminalSafe{w}, 0, 4, 2, ' ', 0)
}

// terminalSafe writes what it is given with every character a terminal would act on, or show as
// nothing, written out as an escape (\x1b, \u202e, \u200b, \U000e0041): control characters but
// tab and newline, and the rest of what a policy may not hold (policy.Hidden: bidirectional and
// other format characters, zero-width and default-ignorable ones, line and paragraph
// separators). A partner's record, or a policy's source, then cannot move the cursor, erase rows
// or set the reader's clipboard (OSC 52) in the terminal that shows it, nor hide a character in
// what the reader sees ("oekra\u200bine" is not "oekraine").
type terminalSafe struct{ w io.Writer }

// joiner is a character that writing needs, though it shows nothing of its own: the zero-width
// non-joiner of Persian and Dari (می‌خواهم), the zero-width joiner of Indic scripts and emoji, and
// the variation selectors of text and emoji presentation. terminalSafe writes them as they are in
// a partner's records; lint refuses them in a policy all the same.
func joiner(r rune) bool { return r == '\u200c' || r == '\u200d' || r == '\ufe0e' || r == '\ufe0f' }

func (t terminalSafe) Write(p []byte) (int, error) {
	// Tab and newline lay the table out; every other hidden character is written out.
	bad := func(r rune) bool { return r != '\t' && r != '\n' && policy.Hidden(r) && !joiner(r) }
	s := string(p)
	if strings.IndexFunc(s, bad) < 0 {
		return t.w.Write(p)
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case bad(r) && r < 0x100:
			fmt.Fprintf(&b, "\\x%02x", r)
		case bad(r) && r <= 0xffff:
			fmt.Fprintf(&b, "\\u%04x", r)
		case bad(r):
			fmt.Fprintf(&b, "\\U%08x", r)
		default:
			b.WriteRune(r)
		}
	}
	if _, err := io.WriteString(t.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
