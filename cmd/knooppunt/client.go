package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	rpccode "google.golang.org/genproto/googleapis/rpc/code"
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
		if cmd.Annotations == nil {
			cmd.Annotations = map[string]string{}
		}
		cmd.Annotations[outputFormat] = "yes"
	}
}

func (f *clientFlags) checkOutput() error {
	switch f.output {
	case "", "table", "json":
		return nil
	}
	return invalid(fmt.Errorf("--output %q: use table or json", f.output))
}

// dial connects to the node. A unix socket carries no identity: its file mode decides who may
// connect, so it is for local administration. A TCP address needs the caller's SVID, and the
// node must present a replica SVID of the caller's own trust domain.
// nodeSource names where the node's address came from, for an error about it: --node, or the
// environment's KNOOPPUNT_NODE when the flag was not given (review Z, Z6).
func (f *clientFlags) nodeSource() string {
	if f.cmd != nil {
		if fl := f.cmd.Flags().Lookup("node"); fl != nil && !fl.Changed && os.Getenv("KNOOPPUNT_NODE") != "" {
			return "KNOOPPUNT_NODE"
		}
	}
	return "--node"
}

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
			return nil, fmt.Errorf("%s %q: give unix:///path/to/knooppunt.sock (on the node's host) or host:port (over mutual TLS)", f.nodeSource(), f.node)
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
		return nil, fmt.Errorf("%s %q: %w", f.nodeSource(), f.node, err)
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
		// The error says what the watch met: a command does not log.
		src, err := identity.NewWorkloadSource(ctx, f.workloadAPI, want, slog.New(slog.DiscardHandler))
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
		return callError(f, err)
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

// nodeError is a call's gRPC status said for a person: msg, then, in parentheses, detail (grpc's
// own words, when msg is said in other words) and the code, for scripts that match on it. -o json
// gives them apart (errorOf), with what the status carries for a program.
type nodeError struct {
	st          *status.Status
	msg, detail string
	// flag is the flag that filled the request field the status refuses, "" when none did.
	flag string
}

func (e *nodeError) Error() string {
	if e.detail != "" {
		return fmt.Sprintf("%s (%s; %s)", e.msg, e.detail, e.st.Code())
	}
	return fmt.Sprintf("%s (%s)", e.msg, e.st.Code())
}

// message is the error without its code.
func (e *nodeError) message() string {
	if e.detail != "" {
		return fmt.Sprintf("%s (%s)", e.msg, e.detail)
	}
	return e.msg
}

// callError turns a gRPC error into a message for a person: the node's own message, plus the
// code so scripts can match on it. A refusal of a request field that a flag filled names the
// flag instead of the field. Any other error, and one said so already, it returns as it is.
func callError(f *clientFlags, err error) error {
	var said *nodeError
	if errors.As(err, &said) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	said = &nodeError{st: st}
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
		// A node serves its socket once it has its identity: with SPIRE it may wait for the
		// agent up to 30 s (review AK, AK8).
		said.msg = fmt.Sprintf("cannot reach the node at %s: is `knooppunt serve` running?%s A node that is starting answers once it has its SVID: its log says what it waits for.", f.node, hint)
		return said
	}
	// The socket is the node's user's alone (mode 0600): another user, root aside, may not
	// connect to it.
	if strings.HasPrefix(msg, "connection error") && strings.Contains(msg, "permission denied") {
		if path, ok := strings.CutPrefix(f.node, "unix://"); ok {
			owner := "the user that runs the node"
			if uid, name, ok := fileOwner(path); ok {
				owner = cmp.Or(name, "uid") + " (uid " + strconv.Itoa(uid) + "), which runs the node"
			}
			said.msg = fmt.Sprintf("the node's socket %s is for %s alone: run the command as that user (sudo -u USER knooppunt …), or call the node over mTLS with your own SVID", path, owner)
			return said
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
		said.msg = fmt.Sprintf("the node at %s is of %s, and your bundle (--bundle or KNOOPPUNT_BUNDLE, or the Workload API's) holds no CA of it: call your own organisation's node; a person or an app calls only that one, and it asks its partners itself", f.node, td)
		return said
	}
	// The node's certificate is of a trust domain the client's bundle has, but no CA of that
	// bundle issued it: the bundle is another organisation's (a partner's peers/NAME.pem given
	// for the client's own), or an old one of the node's (review AL, AL3).
	if strings.Contains(msg, "could not verify leaf certificate") && st.Code() == codes.Unavailable {
		said.msg = fmt.Sprintf("the node at %s presents a certificate that no CA of your bundle issued: give your own organisation's bundle, as it is now (--bundle or KNOOPPUNT_BUNDLE, or the Workload API's), not a partner's", f.node)
		said.detail = msg
		return said
	}
	// Something at the address answers HTTP, but not the node's gRPC: the bundle endpoint (it
	// takes GET alone, 405 for grpc's POST), or the REST API, or another web server.
	if strings.Contains(msg, "unexpected HTTP status code received from server") && st.Code() != codes.OK {
		said.msg = fmt.Sprintf("%s answers as a web server, not as the node's API: give --node (or KNOOPPUNT_NODE) the node's listen address, not that of its bundle_endpoint or http section", f.node)
		said.detail = msg
		return said
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
			said.msg = fmt.Sprintf("the node at %s %s: your SVID (--svid-cert or KNOOPPUNT_SVID_CERT, or the Workload API's) must be current and issued by a CA in the node's bundle, that of the node's own organisation for a person or an app; the node logs why (\"handshake refused\")", f.node, how)
			said.detail = msg
			return said
		}
	}
	if path, reason := api.Field(err); path != "" {
		if flag, below := f.flagOf(path); flag != "" {
			if below != "" {
				reason = below + ": " + reason
			}
			said.msg, said.flag = fmt.Sprintf("--%s: %s", flag, reason), flag
			return said
		}
		if arg := f.args[path]; arg != "" {
			said.msg = fmt.Sprintf("%s: %s", arg, reason)
			return said
		}
	}
	said.msg = msg
	return said
}

// codedError is an error of the command line itself, not of a call, with the gRPC code that -o
// json gives it.
type codedError struct {
	code codes.Code
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// invalid is err, a refusal of what the person typed (a flag, an argument), as INVALID_ARGUMENT.
func invalid(err error) error { return &codedError{codes.InvalidArgument, err} }

// errorBody is an error as -o json says it on standard error, {"error": errorBody}: the gRPC
// code's name (PERMISSION_DENIED), the message a person reads, without the code, and what a
// refusal of the node carries for a program: its reason (ErrorInfo, such as FOUR_EYES), and
// the request field it refuses (BadRequest) with the flag that filled it.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Reason  string `json:"reason,omitempty"`
	Field   string `json:"field,omitempty"`
	Flag    string `json:"flag,omitempty"`
}

// errorOf is err as -o json says it. An error that is no status gets the code that fits it best
// (localCode).
func errorOf(err error) errorBody {
	var said *nodeError
	var coded *codedError
	switch {
	case errors.As(err, &said):
		b := statusBody(said.st)
		// A command may have said more around it ("propose: …").
		b.Message = strings.Replace(err.Error(), said.Error(), said.message(), 1)
		if said.flag != "" {
			b.Flag = "--" + said.flag
		}
		return b
	case errors.As(err, &coded):
		return errorBody{Code: codeName(coded.code), Message: err.Error()}
	}
	if st, ok := status.FromError(err); ok {
		b := statusBody(st)
		b.Message = st.Message()
		return b
	}
	// A command that says the node's refusal in its own words ends it with the code, as the
	// node's own are said ("record not found: … (NotFound)").
	msg := err.Error()
	if i := strings.LastIndex(msg, " ("); i > 0 && strings.HasSuffix(msg, ")") {
		if c, ok := codeNamed[msg[i+2:len(msg)-1]]; ok {
			return errorBody{Code: codeName(c), Message: msg[:i]}
		}
	}
	return errorBody{Code: codeName(localCode(err)), Message: msg}
}

// codeNamed is each code by its name as Go writes it (NotFound), which ends a refusal's message.
var codeNamed = func() map[string]codes.Code {
	m := map[string]codes.Code{}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		m[c.String()] = c
	}
	return m
}()

// statusBody is the code, reason and field of a status.
func statusBody(st *status.Status) errorBody {
	b := errorBody{Code: codeName(st.Code()), Reason: api.Reason(st.Err())}
	b.Field, _ = api.Field(st.Err())
	return b
}

// localCode is the code of an error the command line met by itself: a file that is not there,
// or not for this user; a stop (Ctrl-C) or a deadline; a flag refused (the commands name the
// flag first: "--timeout 0s: give a duration above 0"); else UNKNOWN.
func localCode(err error) codes.Code {
	switch msg := err.Error(); {
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, fs.ErrNotExist):
		return codes.NotFound
	case errors.Is(err, fs.ErrPermission):
		return codes.PermissionDenied
	case strings.HasPrefix(msg, "--"), strings.HasPrefix(msg, "required flag"):
		return codes.InvalidArgument
	}
	return codes.Unknown
}

// codeName is a code's name as gRPC's specification and google.rpc.Code write it:
// INVALID_ARGUMENT, where Go says InvalidArgument.
func codeName(c codes.Code) string { return rpccode.Code(c).String() }

// outputFormat marks, in a command's Annotations, that its --output (-o) is clientFlags' format
// flag, and not a file as of peer invite.
const outputFormat = "output-format"

// badFlags is a refusal of a command line's flags: parsing stopped at the bad one, so those
// after it were not read.
type badFlags struct{ error }

func (e badFlags) Unwrap() error { return e.error }

// unknownFlag is pflag's refusal of a long flag that cmd does not have.
var unknownFlag = regexp.MustCompile(`^unknown flag: --([\w-]+)$`)

// refuseFlags refuses cmd's command line for err, pflag's, with the flag it may have meant when it
// names one that cmd does not have (`--knd`: did you mean --kind?; review AL, AL1).
func refuseFlags(cmd *cobra.Command, err error) error {
	if m := unknownFlag.FindStringSubmatch(err.Error()); m != nil {
		var names []string
		cmd.Flags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
		cmd.InheritedFlags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
		if near, ok := policy.Closest(m[1], names); ok {
			err = fmt.Errorf("%w: did you mean --%s?", err, near)
		}
	}
	return invalid(badFlags{err})
}

// pflagBadValue is pflag's refusal of a flag's value: the value, the flag, and why, which for a
// number or a bool is Go's parser's own words (strconv.ParseInt: parsing "abc": invalid syntax).
var pflagBadValue = regexp.MustCompile(`^invalid argument "((?:[^"\\]|\\.)*)" for "(?:-\w, )?(--[\w-]+)" flag: (.*)$`)

// Error says a value a flag cannot take as the other refusals do, the flag first and what to
// give, not in Go's parser's words (review Z, Z11).
func (e badFlags) Error() string {
	m := pflagBadValue.FindStringSubmatch(e.error.Error())
	if m == nil {
		return e.error.Error()
	}
	value, flag, why := m[1], m[2], m[3]
	switch {
	case strings.HasPrefix(why, "strconv.Parse") && strings.HasSuffix(why, "value out of range"):
		why = "out of range"
	case strings.HasPrefix(why, "strconv.ParseInt"), strings.HasPrefix(why, "strconv.ParseUint"):
		why = "give a whole number"
	case strings.HasPrefix(why, "strconv.ParseFloat"):
		why = "give a number"
	case strings.HasPrefix(why, "strconv.ParseBool"):
		why = "give true or false"
	case strings.HasPrefix(why, `"`+value+`" `):
		return flag + ": " + why // it names the value already
	}
	return fmt.Sprintf(`%s "%s": %s`, flag, value, why)
}

// jsonOutput says whether cmd, which ended with err, was asked for -o json: by its parsed flag,
// or, when parsing stopped at a bad flag before it, by the command line args itself.
func jsonOutput(cmd *cobra.Command, args []string, err error) bool {
	if cmd == nil || cmd.Annotations[outputFormat] == "" {
		return false
	}
	if fl := cmd.Flags().Lookup("output"); fl != nil && fl.Changed {
		return fl.Value.String() == "json"
	}
	if !errors.As(err, new(badFlags)) {
		return false
	}
	for i, a := range args {
		switch {
		case a == "--":
			return false
		case a == "-ojson", a == "-o=json", a == "--output=json":
			return true
		case (a == "-o" || a == "--output") && i+1 < len(args) && args[i+1] == "json":
			return true
		}
	}
	return false
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonArray writes a JSON array an element at a time, byte for byte as printJSON writes the whole
// array, so that a listing of every page (record list -o json --all) holds one page at a time,
// not every record of the node.
type jsonArray struct {
	w io.Writer
	n int
}

func (a *jsonArray) add(v any) error {
	b, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		return err
	}
	sep := ",\n  "
	if a.n == 0 {
		sep = "[\n  "
	}
	a.n++
	if _, err := io.WriteString(a.w, sep); err != nil {
		return err
	}
	_, err = a.w.Write(b)
	return err
}

// end closes the array.
func (a *jsonArray) end() error {
	end := "\n]\n"
	if a.n == 0 {
		end = "[]\n"
	}
	_, err := io.WriteString(a.w, end)
	return err
}

// stamp is a time as every table and message of the CLI gives it: RFC 3339 in the machine's own
// zone, with its offset (2026-12-06T10:33:26+01:00), so that no time is read in the wrong zone.
func stamp(t time.Time) string { return t.Local().Format(time.RFC3339) }

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
