package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/record"
)

// TestFlagOf: a refused request field is said of the flag that filled it, given on the command
// line: the field itself, one of its values, or a path below it, by the longest field that
// matches; a field no flag given filled stays the API's.
func TestFlagOf(t *testing.T) {
	var f clientFlags
	cmd := &cobra.Command{Use: "x"}
	var body, attach, region string
	var origins []string
	cmd.Flags().StringVar(&body, "body", "", "")
	cmd.Flags().StringVar(&attach, "attach", "", "")
	cmd.Flags().StringVar(&region, "region", "", "")
	cmd.Flags().StringSliceVar(&origins, "origin", nil, "")
	f.register(cmd, false)
	f.fill(map[string]string{"body": "record.body", "attach": "record.body.attachments", "region": "record.region", "origin": "origins"})
	if err := cmd.ParseFlags([]string{"--body", "{}", "--attach", "a.pdf", "--origin", "a", "--origin", "b"}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string][2]string{
		"record.body":                       {"body", ""},
		"record.body.beds_free":             {"body", "beds_free"},
		"record.body.exits[2]":              {"body", "exits[2]"},
		"record.body.attachments[0].sha256": {"attach", "sha256"},
		"record.body.attachments":           {"attach", ""},
		"origins[1]":                        {"origin", ""},
		"origins":                           {"origin", ""},
		"record.region":                     {"", ""}, // not given: it came from elsewhere
		"record.bodyguard":                  {"", ""}, // not below record.body
		"originsx":                          {"", ""},
		"record.kind":                       {"", ""},
	} {
		flag, below := f.flagOf(path)
		if flag != want[0] || below != want[1] {
			t.Errorf("flagOf(%q) = %q, %q; want %q, %q", path, flag, below, want[0], want[1])
		}
	}
}

// TestCallErrorSaysTheNodeRefusedTheCertificate: the end of a handshake the node refused, as
// grpc reports it over TCP, is said as a refused certificate with what to check; over the local
// socket, which takes no certificate, it is not.
func TestCallErrorSaysTheNodeRefusedTheCertificate(t *testing.T) {
	for _, msg := range []string{
		`connection error: desc = "error reading server preface: remote error: tls: bad certificate"`,
		`connection error: desc = "transport: failed to write client preface: write tcp 127.0.0.1:50412->127.0.0.1:27443: write: broken pipe"`,
		`write tcp 127.0.0.1:50412->127.0.0.1:27443: write: broken pipe`,
	} {
		err := callError(&clientFlags{node: "127.0.0.1:27443"}, status.Error(codes.Unavailable, msg))
		if !strings.HasPrefix(err.Error(), "the node at 127.0.0.1:27443 ") || !strings.Contains(err.Error(), "your SVID (--svid-cert or KNOOPPUNT_SVID_CERT") || !strings.HasSuffix(err.Error(), "; Unavailable)") {
			t.Errorf("%s:\n%v", msg, err)
		}
		if err := callError(&clientFlags{node: "unix:///tmp/x.sock"}, status.Error(codes.Unavailable, msg)); strings.Contains(err.Error(), "SVID") {
			t.Errorf("over the local socket: %v", err)
		}
	}
	// A node's own message that quotes another connection's failure (a follower's to its
	// leader) is passed on as it is.
	follower := "the leader r1 cannot be reached: remote error: tls: bad certificate"
	if err := callError(&clientFlags{node: "127.0.0.1:27443"}, status.Error(codes.Unavailable, follower)); strings.Contains(err.Error(), "SVID") {
		t.Errorf("a follower's message: %v", err)
	}
}

// TestCallErrorSaysTheSocketIsTheNodesUsers: a user who may not connect to the node's socket is
// told whose it is and what to do, not "connect: permission denied".
func TestCallErrorSaysTheSocketIsTheNodesUsers(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "knooppunt.sock")
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	msg := `connection error: desc = "transport: Error while dialing: dial unix ` + sock + `: connect: permission denied"`
	err := callError(&clientFlags{node: "unix://" + sock}, status.Error(codes.Unavailable, msg))
	want := fmt.Sprintf("the node's socket %s is for ", sock)
	if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), fmt.Sprintf("(uid %d), which runs the node alone: run the command as that user (sudo -u USER knooppunt …)", os.Getuid())) {
		t.Errorf("permission denied on the socket: %v", err)
	}
}

// TestJSONArrayWritesAsPrintJSON: record list -o json --all writes its array a record at a time
// (jsonArray), and must write what printJSON wrote of the whole array, byte for byte: import
// reads it back, and scripts parse it.
func TestJSONArrayWritesAsPrintJSON(t *testing.T) {
	rec := func(id string) record.JSON {
		return record.JSON{ID: id, Kind: "qa", Body: json.RawMessage(`{"q":"<b>&</b>","n":[1,2]}`), Labels: map[string]string{"a": "b"}}
	}
	for _, n := range []int{0, 1, 3} {
		all := make([]record.JSON, 0, n)
		var streamed bytes.Buffer
		arr := &jsonArray{w: &streamed}
		for i := range n {
			r := rec(fmt.Sprint("r", i))
			all = append(all, r)
			if err := arr.add(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := arr.end(); err != nil {
			t.Fatal(err)
		}
		var whole bytes.Buffer
		if err := printJSON(&whole, all); err != nil {
			t.Fatal(err)
		}
		if streamed.String() != whole.String() {
			t.Errorf("%d records: streamed\n%s\nwant, as printJSON writes them\n%s", n, streamed.String(), whole.String())
		}
	}
}
