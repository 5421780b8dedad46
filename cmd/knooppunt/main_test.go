package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/proctest"
)

// The tests of this package run the knooppunt binary as a real process (node/proctest): the CLI
// end to end, and a node that is killed mid-write.

func TestMain(m *testing.M) { proctest.Main(m) }

// shortDir is a fresh directory whose socket path fits the 108-byte limit of unix sockets.
func shortDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if len(filepath.Join(dir, "data", node.SocketName)) > 100 {
		d, err := os.MkdirTemp("", "kp")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	return dir
}

// serveNode runs `knooppunt serve` on dir/data and waits until it answers on its socket.
func serveNode(t *testing.T, dir string) (*proctest.Proc, *grpc.ClientConn) {
	t.Helper()
	cfgFile := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(cfgFile, []byte("raft:\n  election_timeout: 100ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, nil, "serve", "--data-dir", filepath.Join(dir, "data"), "--config", cfgFile, "--log-level", "warn")
	return p, waitServing(t, p, filepath.Join(dir, "data", node.SocketName))
}

// waitServing waits, with a deadline, until the node behind sock answers a health check, and
// returns a connection to it. It gives up at once when the process exits.
func waitServing(t *testing.T, p *proctest.Proc, sock string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.5, MaxDelay: 100 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	go func() {
		select {
		case <-p.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("node on %s not serving: %v; output:\n%s", sock, err, p.Out.String())
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("node on %s: health %s", sock, resp.Status)
	}
	return conn
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// execute runs the command line args, its output discarded, and returns its error.
func execute(args []string) error {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	return root.Execute()
}

// TestUnknownFlagOffersTheNearest: a mistyped flag is refused with the command's flag it was
// near, its own or one it inherits; one near none is refused alone (review AL, AL1).
func TestUnknownFlagOffersTheNearest(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"record", "list", "--knd", "x"}, "unknown flag: --knd: did you mean --kind?"},
		{[]string{"record", "list", "--crisi", "x"}, "unknown flag: --crisi: did you mean --crisis?"},
		{[]string{"status", "--nod", "x"}, "unknown flag: --nod: did you mean --node?"},
		{[]string{"record", "list", "--zzzzzz", "1"}, "unknown flag: --zzzzzz"},
		// A command's argument before the flag is no command to name (its group's refusal of a
		// mistyped command does not apply to it).
		{[]string{"record", "get", "abc", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"peer", "show", "ncc", "--nod", "x"}, "unknown flag: --nod: did you mean --node?"},
	} {
		if err := execute(c.args); err == nil || err.Error() != c.want {
			t.Errorf("knooppunt %s: %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

// TestUnknownSubcommandFails: a word that is none of a group's commands is refused with an error
// (exit status 1), not answered with the group's help and exit 0, so that a runbook's typo does
// not pass for done; the group alone still prints its help.
func TestUnknownSubcommandFails(t *testing.T) {
	// With flags after the word, the word is still what is named, not the first flag, which the
	// group does not have (review AL, AL1).
	for _, args := range [][]string{{"exercise", "stop", "x"}, {"webhook", "retyr", "x"}, {"record", "lst"}, {"policy", "lint-all"},
		{"record", "lst", "--crisis", "x"}, {"record", "lst", "-o", "json"}, {"peer", "lst", "--node", "unix:///x"}} {
		if err := execute(args); err == nil || !strings.Contains(err.Error(), `unknown command "`+args[1]+`"`) {
			t.Errorf("knooppunt %s: %v, want unknown command %q", strings.Join(args, " "), err, args[1])
		}
	}
	// A typo is offered the command it was near, as at the top level (review Z, Z14).
	for typed, want := range map[string]string{"lst": "list", "retyr": "retry"} {
		group := map[string]string{"lst": "record", "retyr": "webhook"}[typed]
		if err := execute([]string{group, typed}); err == nil || !regexp.MustCompile(`: did you mean (\w+ or )*`+want+`( or \w+)*\?$`).MatchString(err.Error()) {
			t.Errorf("knooppunt %s %s: %v, want it to offer %s", group, typed, err, want)
		}
	}
	// A flag the group does not have, with no word before it, is refused as a flag.
	if err := execute([]string{"record", "--crisis", "x"}); err == nil || !strings.Contains(err.Error(), "unknown flag: --crisis") {
		t.Errorf("knooppunt record --crisis x: %v, want unknown flag: --crisis", err)
	}
	var out strings.Builder
	root := newRootCmd()
	root.SetArgs([]string{"exercise"})
	root.SetOut(&out)
	if err := root.Execute(); err != nil || !strings.Contains(out.String(), "Available Commands") {
		t.Errorf("knooppunt exercise: %v, want its help:\n%s", err, out.String())
	}
}
