package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"

	"github.com/knooppunt/knooppunt/node/api"
)

// errorDoc is what -o json says of a failure on standard error.
type errorDoc struct {
	Error errorBody `json:"error"`
}

// oneError decodes stderr as exactly one line of JSON, the error document.
func oneError(t *testing.T, stderr string) errorBody {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Fatalf("stderr is not one line:\n%s", stderr)
	}
	var doc errorDoc
	dec := json.NewDecoder(strings.NewReader(stderr))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("stderr is not the error document: %v\n%s", err, stderr)
	}
	return doc.Error
}

// TestReportSaysTheErrorAsJSON: with -o json, the one place errors are said gives a script the
// gRPC code's name, the message without the code, and the reason and field the refusal carries
// (with the flag that filled the field); without it, the line a person reads is as it was. An
// error of the command line itself gets a code that fits it, and an exitError is said by the
// command alone.
func TestReportSaysTheErrorAsJSON(t *testing.T) {
	var f clientFlags
	cmd := &cobra.Command{Use: "x"}
	var crisis string
	cmd.Flags().StringVar(&crisis, "crisis", "", "")
	f.register(cmd, true)
	f.fill(map[string]string{"crisis": "filter.crisis"})
	if err := cmd.ParseFlags([]string{"--crisis", "NOPE!", "-o", "json"}); err != nil {
		t.Fatal(err)
	}
	fourEyes := callError(&f, api.ReasonStatus(codes.PermissionDenied, api.ReasonFourEyes, "you proposed this policy: another officer must approve it"))
	badCrisis := callError(&f, api.Invalid("filter.crisis", `"NOPE!" is not a crisis name`))
	for _, c := range []struct {
		err  error
		text string
		want errorBody
	}{
		{fourEyes, "knooppunt: you proposed this policy: another officer must approve it (PermissionDenied)\n",
			errorBody{Code: "PERMISSION_DENIED", Message: "you proposed this policy: another officer must approve it", Reason: "FOUR_EYES"}},
		{badCrisis, "knooppunt: --crisis: \"NOPE!\" is not a crisis name (InvalidArgument)\n",
			errorBody{Code: "INVALID_ARGUMENT", Message: `--crisis: "NOPE!" is not a crisis name`, Field: "filter.crisis", Flag: "--crisis"}},
		// A command that says more around the node's refusal keeps it in the message.
		{fmt.Errorf("approve: %w", fourEyes), "knooppunt: approve: you proposed this policy: another officer must approve it (PermissionDenied)\n",
			errorBody{Code: "PERMISSION_DENIED", Message: "approve: you proposed this policy: another officer must approve it", Reason: "FOUR_EYES"}},
		{invalid(errors.New("give ID: knooppunt record get ID")), "knooppunt: give ID: knooppunt record get ID\n",
			errorBody{Code: "INVALID_ARGUMENT", Message: "give ID: knooppunt record get ID"}},
		{fmt.Errorf("--body-file x.json: %w", &fs.PathError{Op: "open", Path: "x.json", Err: fs.ErrNotExist}), "knooppunt: --body-file x.json: open x.json: file does not exist\n",
			errorBody{Code: "NOT_FOUND", Message: "--body-file x.json: open x.json: file does not exist"}},
		// A command that says the node's refusal in its own words ends it with the code.
		{errors.New("record not found: this node's own records hold no \"x\" (NotFound)"), "knooppunt: record not found: this node's own records hold no \"x\" (NotFound)\n",
			errorBody{Code: "NOT_FOUND", Message: "record not found: this node's own records hold no \"x\""}},
		{errors.New("the answer was cut short"), "knooppunt: the answer was cut short\n",
			errorBody{Code: "UNKNOWN", Message: "the answer was cut short"}},
	} {
		var text, doc strings.Builder
		if code := report(&text, c.err, false); code != 1 || text.String() != c.text {
			t.Errorf("report(%v): exit %d, %q; want 1, %q", c.err, code, text.String(), c.text)
		}
		if code := report(&doc, c.err, true); code != 1 {
			t.Errorf("report(%v) as JSON: exit %d, want 1", c.err, code)
		}
		if got := oneError(t, doc.String()); got != c.want {
			t.Errorf("report(%v) as JSON:\n%+v\nwant\n%+v", c.err, got, c.want)
		}
	}
	var out strings.Builder
	if code := report(&out, exitError(3), true); code != 3 || out.Len() != 0 {
		t.Errorf("report(exitError(3)): exit %d, %q; want 3 and nothing said", code, out.String())
	}
}

// TestJSONErrorsOfTheCommandLine: a command run with -o json that fails says so as one JSON
// document on standard error with the code, the node's refusals, a flag it does not know and a
// missing argument alike, with the exit code of the text form; without -o json the text is as
// it was; and peer invite's -o, a file, is no format.
func TestJSONErrorsOfTheCommandLine(t *testing.T) {
	sock, _ := servedNode(t)
	badCrisis := []string{"record", "list", "--crisis", "NOPE!", "--node", sock}
	text := cli(t, nil, "", badCrisis...).want(t, 1)
	if want := "knooppunt: --crisis: \"NOPE!\" is not a crisis name"; !strings.HasPrefix(text.stderr, want) || !strings.HasSuffix(text.stderr, " (InvalidArgument)\n") {
		t.Errorf("record list --crisis NOPE!: stderr %q, want %q … (InvalidArgument)", text.stderr, want)
	}
	r := cli(t, nil, "", append(badCrisis, "-o", "json")...).want(t, 1)
	if got := oneError(t, r.stderr); got.Code != "INVALID_ARGUMENT" || got.Flag != "--crisis" || got.Field == "" ||
		"knooppunt: "+got.Message+" (InvalidArgument)\n" != text.stderr {
		t.Errorf("record list --crisis NOPE! -o json: %+v, want the text's message with its code and field apart", got)
	}
	if r.stdout != "" {
		t.Errorf("a failed listing printed %q", r.stdout)
	}
	if got := oneError(t, cli(t, nil, "", "record", "get", "nothing-here", "--node", sock, "-o", "json").want(t, 1).stderr); got.Code != "NOT_FOUND" {
		t.Errorf("record get of no record -o json: %+v", got)
	}
	// The command line's own errors with the code that fits (review Z, Z10).
	if got := oneError(t, cli(t, nil, "", "assessment", "show", "--crisis", "oekraine", "--node", sock, "-o", "json").want(t, 1).stderr); got.Code != "NOT_FOUND" {
		t.Errorf("assessment show of no assessment -o json: %+v, want NOT_FOUND", got)
	}
	there := filepath.Join(t.TempDir(), "nightly.db")
	if err := os.WriteFile(there, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := oneError(t, cli(t, nil, "", "backup", there, "--node", sock, "-o", "json").want(t, 1).stderr); got.Code != "ALREADY_EXISTS" {
		t.Errorf("backup onto an existing file -o json: %+v, want ALREADY_EXISTS", got)
	}
	for _, args := range [][]string{
		{"record", "list", "--node", sock, "--bogus", "-o", "json"}, // parsing stops at --bogus
		{"record", "list", "--node", sock, "-ojson", "--bogus"},
		{"record", "get", "--node", sock, "-o", "json"},
	} {
		if got := oneError(t, cli(t, nil, "", args...).want(t, 1).stderr); got.Code != "INVALID_ARGUMENT" || got.Message == "" {
			t.Errorf("knooppunt %s: %+v", strings.Join(args, " "), got)
		}
	}
	if r := cli(t, nil, "", "record", "list", "--node", sock, "--bogus"); r.code != 1 || r.stderr != "knooppunt: unknown flag: --bogus\n" {
		t.Errorf("record list --bogus: exit %d, %q", r.code, r.stderr)
	}
	if r := cli(t, nil, "", "peer", "invite", "--node", sock, "--bogus", "-o", "json"); r.code != 1 || !strings.HasPrefix(r.stderr, "knooppunt: ") {
		t.Errorf("peer invite, whose -o is a file: exit %d, %q", r.code, r.stderr)
	}
}
