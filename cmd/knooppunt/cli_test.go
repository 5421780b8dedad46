package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/proctest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// result is what one run of the command line gave.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs the binary to completion, with a deadline, and with env added to a clean environment.
func cli(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, proctest.Binary(t), args...)
	cmd.Env = proctest.Env(env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("knooppunt %s did not finish within 60s; stderr:\n%s", strings.Join(args, " "), res.stderr)
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	if proctest.Raced(res.stderr) {
		t.Errorf("the race detector reported in knooppunt %s:\n%s", strings.Join(args, " "), res.stderr)
	}
	return res
}

// want fails unless the run exited with code.
func (r result) want(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

// oneJSON decodes stdout as exactly one JSON document into v.
func (r result) oneJSON(t *testing.T, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	if err := dec.Decode(new(json.RawMessage)); err != io.EOF {
		t.Fatalf("stdout holds more than one JSON document (%v):\n%s", err, r.stdout)
	}
}

// servedNode serves a node in a process and returns its --node address.
func servedNode(t *testing.T) (addr, dir string) {
	t.Helper()
	dir = shortDir(t)
	serveNode(t, dir)
	return "unix://" + filepath.Join(dir, "data", node.SocketName), dir
}

const utrechtBody = `{"municipality":"Utrecht","beds_total":120,"beds_free":14}`

func TestCLIRecord(t *testing.T) {
	addr, dir := servedNode(t)
	putArgs := func(extra ...string) []string {
		return append([]string{"record", "put", "--node", addr, "--kind", "shelter.capacity", "--crisis", "oekraine",
			"--region", "VR09", "--classification", "internal", "--label", "source=lcvs"}, extra...)
	}

	if r := cli(t, nil, "", putArgs("--id", "utr-1", "--body", utrechtBody)...).want(t, 0); r.stdout != "utr-1 version 1\n" {
		t.Fatalf("put printed %q, want %q", r.stdout, "utr-1 version 1\n")
	}
	// The body from a file, at the version last read.
	bodyFile := filepath.Join(dir, "body.json")
	if err := os.WriteFile(bodyFile, []byte(`{"municipality":"Utrecht","beds_total":120,"beds_free":9}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, nil, "", putArgs("--id", "utr-1", "--version", "1", "--body", "@"+bodyFile)...).want(t, 0); r.stdout != "utr-1 version 2\n" {
		t.Fatalf("put printed %q, want %q", r.stdout, "utr-1 version 2\n")
	}
	// A stale version is refused with the node's message and the code.
	r := cli(t, nil, "", putArgs("--id", "utr-1", "--version", "1", "--body", utrechtBody)...).want(t, 1)
	if want := "knooppunt: record \"utr-1\" is at version 2, not 1: read it again and retry with version 2 (Aborted)\n"; r.stderr != want || r.stdout != "" {
		t.Fatalf("stale put: stdout %q stderr %q, want stderr %q", r.stdout, r.stderr, want)
	}
	// Bad input names the field.
	r = cli(t, nil, "", "record", "put", "--node", addr, "--kind", "nope", "--crisis", "oekraine", "--region", "VR09",
		"--classification", "internal", "--body", "{}").want(t, 1)
	if want := `knooppunt: --kind: unknown kind "nope": use one of "alert", "assessment", "assessment.response", "guidance", "permit", "qa", "shelter.capacity", "signal", "sitrep", or declare it in the node config (InvalidArgument)` + "\n"; r.stderr != want {
		t.Fatalf("bad put: stderr %q\nwant %q", r.stderr, want)
	}
	// The refusal says the flag the value came from (as the README shows).
	r = cli(t, nil, "", "record", "put", "--node", addr, "--kind", "shelter.capacity", "--crisis", "oekraine", "--region", "VR99",
		"--classification", "internal", "--body", utrechtBody).want(t, 1)
	if want := `knooppunt: --region: "VR99" is not a region: use a safety-region code VR01 to VR25, or NL for the country as a whole (InvalidArgument)` + "\n"; r.stderr != want {
		t.Fatalf("put --region VR99: stderr %q\nwant %q", r.stderr, want)
	}
	// A field of the body is said of --body, and the path below it.
	r = cli(t, nil, "", putArgs("--id", "utr-1", "--body", `{"municipality":"Utrecht","beds_total":120,"beds_free":-3}`)...).want(t, 1)
	if want := "knooppunt: --body: beds_free: "; !strings.HasPrefix(r.stderr, want) {
		t.Fatalf("put of a negative beds_free: stderr %q, want %q…", r.stderr, want)
	}
	r = cli(t, nil, "", "record", "list", "--node", addr, "--limit", "-1").want(t, 1)
	if want := "knooppunt: --limit: -1 is negative (InvalidArgument)\n"; r.stderr != want {
		t.Fatalf("list --limit -1: stderr %q, want %q", r.stderr, want)
	}
	// The body from standard input, and -o json.
	r = cli(t, nil, `{"municipality":"Zeist","beds_total":80,"beds_free":3}`, putArgs("--id", "zst-1", "--body", "-", "-o", "json")...).want(t, 0)
	var putOut struct {
		ID      string `json:"id"`
		Version int64  `json:"version"`
		Seq     int64  `json:"seq"`
	}
	r.oneJSON(t, &putOut)
	if putOut.ID != "zst-1" || putOut.Version != 1 || putOut.Seq != 3 {
		t.Fatalf("put -o json = %+v, want zst-1 version 1 seq 3", putOut)
	}

	var got map[string]any
	cli(t, nil, "", "record", "get", "utr-1", "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &got)
	body, _ := got["body"].(map[string]any)
	labels, _ := got["labels"].(map[string]any)
	if got["id"] != "utr-1" || got["origin"] != "local.crisis.test" || got["kind"] != "shelter.capacity" ||
		got["classification"] != "internal" || got["version"] != 2.0 || body["beds_free"] != 9.0 || labels["source"] != "lcvs" {
		t.Fatalf("get -o json = %v", got)
	}
	if r := cli(t, nil, "", "record", "get", "utr-1", "--node", addr).want(t, 0); !strings.Contains(r.stdout, "version         2\n") {
		t.Fatalf("get as a table:\n%s", r.stdout)
	}

	var list []map[string]any
	cli(t, nil, "", "record", "list", "--node", addr, "--kind", "shelter.capacity", "-o", "json").want(t, 0).oneJSON(t, &list)
	var ids []string
	for _, r := range list {
		ids = append(ids, fmt.Sprint(r["id"]))
	}
	if !slices.Equal(ids, []string{"utr-1", "zst-1"}) {
		t.Fatalf("list -o json ids %v, want [utr-1 zst-1]", ids)
	}
	// One page of JSON says on stderr that there is more, with the token.
	r = cli(t, nil, "", "record", "list", "--node", addr, "--kind", "shelter.capacity", "--limit", "1", "-o", "json").want(t, 0)
	r.oneJSON(t, &list)
	if len(list) != 1 || !strings.Contains(r.stderr, "more records: this is one page of 1; add --page-token ") {
		t.Fatalf("list --limit 1 -o json: %d records, stderr %q; want one, and a note with the next page's token", len(list), r.stderr)
	}
	if r := cli(t, nil, "", "record", "list", "--node", addr, "--crisis", "hoogwater", "-o", "json").want(t, 0); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("an empty list printed %q, want []", r.stdout)
	}

	// KNOOPPUNT_NODE sets the default node.
	if r := cli(t, []string{"KNOOPPUNT_NODE=" + addr}, "", "record", "get", "zst-1", "-o", "json").want(t, 0); !strings.Contains(r.stdout, `"id": "zst-1"`) {
		t.Fatalf("get with KNOOPPUNT_NODE:\n%s", r.stdout)
	}

	if r := cli(t, nil, "", "record", "delete", "utr-1", "--node", addr, "--version", "2").want(t, 0); r.stdout != "utr-1 deleted at version 3\n" {
		t.Fatalf("delete printed %q", r.stdout)
	}
	// --include-deleted lists it as its tombstone, marked so in the table (review X, X9); without
	// it the listing has only the live one.
	r = cli(t, nil, "", "record", "list", "--node", addr, "--kind", "shelter.capacity", "--updated-since", "1h", "--include-deleted", "-o", "json").want(t, 0)
	r.oneJSON(t, &list)
	if len(list) != 2 || list[0]["id"] != "zst-1" || list[1]["id"] != "utr-1" || list[1]["tombstone"] != true || list[1]["version"] != 3.0 {
		t.Errorf("list --include-deleted -o json: %v, want zst-1 and utr-1's tombstone at version 3", list)
	}
	if r := cli(t, nil, "", "record", "list", "--node", addr, "--kind", "shelter.capacity", "--include-deleted").want(t, 0); !regexp.MustCompile(`(?m)^utr-1 \(deleted\)\s+shelter.capacity`).MatchString(r.stdout) {
		t.Errorf("list --include-deleted as a table does not mark the deleted record:\n%s", r.stdout)
	}
	if r := cli(t, nil, "", "record", "list", "--node", addr, "--kind", "shelter.capacity").want(t, 0); strings.Contains(r.stdout, "utr-1") {
		t.Errorf("list without --include-deleted lists the deleted record:\n%s", r.stdout)
	}
	// Deleting it again says what is the matter (review25 F7), not a bare "record not found".
	if r := cli(t, nil, "", "record", "delete", "utr-1", "--node", addr).want(t, 1); !strings.Contains(r.stderr, `this node holds no live record "utr-1" in this mode: it was deleted already, or never was`) {
		t.Errorf("delete of a deleted record: %q", r.stderr)
	}
	if r := cli(t, nil, "", "record", "get", "utr-1", "--node", addr).want(t, 1); r.stderr != "knooppunt: record not found: this node's own records hold no \"utr-1\"; is it an exercise record? add --exercise NAME (or --status test|draft for a test or draft record); a partner's record is found with `knooppunt search --id utr-1` (NotFound)\n" {
		t.Fatalf("get after delete: stderr %q", r.stderr)
	}
	// A refused argument is said as the usage names it.
	for _, verb := range []string{"get", "delete"} {
		if r := cli(t, nil, "", "record", verb, "--node", addr, "--", "-utr").want(t, 1); !strings.HasPrefix(r.stderr, `knooppunt: ID: "-utr" is not`) {
			t.Errorf("record %s -utr: stderr %q", verb, r.stderr)
		}
	}

	// watch -o json prints one change per line from the cursor, then runs until interrupted.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	watch := exec.CommandContext(ctx, proctest.Binary(t), "record", "watch", "--node", addr, "--cursor", "1", "-o", "json")
	watch.Env = proctest.Env()
	stdout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr proctest.Buffer
	watch.Stderr = &stderr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	type change struct {
		Seq    int64 `json:"seq"`
		Record struct {
			ID        string `json:"id"`
			Version   int64  `json:"version"`
			Tombstone bool   `json:"tombstone"`
		} `json:"record"`
	}
	next := func() change {
		t.Helper()
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("watch ended early; stderr:\n%s", stderr.String())
			}
			var c change
			if err := json.Unmarshal([]byte(line), &c); err != nil {
				t.Fatalf("watch line %q: %v", line, err)
			}
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no change from watch within 10s")
		}
		return change{}
	}
	// After cursor 1: zst-1 (seq 3) and the tombstone of utr-1 (seq 4); utr-1's seq 2 is
	// superseded by the tombstone.
	if c := next(); c.Seq != 3 || c.Record.ID != "zst-1" {
		t.Fatalf("first change %+v, want seq 3 zst-1", c)
	}
	if c := next(); c.Seq != 4 || c.Record.ID != "utr-1" || !c.Record.Tombstone || c.Record.Version != 3 {
		t.Fatalf("second change %+v, want seq 4 utr-1 tombstone version 3", c)
	}
	cli(t, nil, "", putArgs("--id", "live-1", "--body", utrechtBody)...).want(t, 0)
	if c := next(); c.Seq != 5 || c.Record.ID != "live-1" {
		t.Fatalf("live change %+v, want seq 5 live-1", c)
	}
	if err := watch.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	if err := watch.Wait(); err != nil {
		t.Fatalf("watch after SIGINT: %v; stderr:\n%s", err, stderr.String())
	}
}

func TestCLIImport(t *testing.T) {
	addr, dir := servedNode(t)
	jsonl := `# LCVS shelter export
{"id":"j-1","kind":"shelter.capacity","crisis":"oekraine","region":"VR09","classification":"internal","body":{"municipality":"Utrecht","beds_total":120,"beds_free":14}}

{"id":"j-2","kind":"shelter.beds","crisis":"oekraine","region":"VR09","classification":"internal","body":{"municipality":"Zeist","beds_total":80,"beds_free":3}}
{"id":"j-3","kind":"shelter.capacity","crisis":"oekraine","region":"VR19","classification":"internal","body":{"municipality":"Goes","beds_total":60,"beds_free":0}}
`
	csv := `id,kind,crisis,region,classification,municipality,beds_total,beds_free,label.source
c-1,shelter.capacity,oekraine,VR09,internal,Houten,80,14,lcvs
c-2,shelter.capacity,oekraine,VR99,internal,Zeist,110,8,lcvs
c-3,shelter.capacity,oekraine,VR19,internal,Hulst,60,4,lcvs
`
	until := `id,kind,crisis,region,classification,municipality,beds_total,beds_free,valid_until
u-1,shelter.capacity,oekraine,VR09,internal,Bunnik,40,2,2026-12-31T00:00:00Z
u-2,shelter.capacity,oekraine,VR09,internal,Wijk bij Duurstede,30,1,morgen
u-3,shelter.capacity,oekraine,VR09,internal,Vianen,50,6,
`
	files := map[string]string{"shelters.jsonl": jsonl, "shelters.csv": csv, "until.csv": until}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		file, id, reason string
		line             int
	}{
		{"shelters.jsonl", "j-2", `record.kind: unknown kind "shelter.beds": use one of "alert", "assessment", "assessment.response", "guidance", "permit", "qa", "shelter.capacity", "signal", "sitrep", or declare it in the node config`, 4},
		{"shelters.csv", "c-2", `record.region: "VR99" is not a region: use a safety-region code VR01 to VR25, or NL for the country as a whole`, 3},
		// A column the reader cannot read is named as the node's fields are.
		{"until.csv", "u-2", `valid_until: "morgen": use RFC 3339, such as 2026-12-31T00:00:00Z`, 3},
	}
	for _, tc := range tests {
		path := filepath.Join(dir, tc.file)
		t.Run(tc.file+" table", func(t *testing.T) {
			r := cli(t, nil, "", "import", path, "--node", addr, "-q").want(t, 2)
			lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
			if len(lines) != 3 || lines[0] != path+": 2 accepted, 1 rejected" {
				t.Fatalf("import printed:\n%s", r.stdout)
			}
			if f := strings.Fields(lines[1]); !slices.Equal(f, []string{"LINE", "ID", "CODE", "REASON"}) {
				t.Fatalf("header %q", lines[1])
			}
			f := strings.Fields(lines[2])
			if len(f) < 4 || f[0] != fmt.Sprint(tc.line) || f[1] != tc.id || f[2] != "INVALID_ARGUMENT" || strings.Join(f[3:], " ") != tc.reason {
				t.Fatalf("rejection row %q, want line %d id %s InvalidArgument %s", lines[2], tc.line, tc.id, tc.reason)
			}
		})
		t.Run(tc.file+" json", func(t *testing.T) {
			var sum struct {
				File       string `json:"file"`
				Accepted   int    `json:"accepted"`
				Rejected   int    `json:"rejected"`
				Rejections []struct {
					Line   int    `json:"line"`
					ID     string `json:"id"`
					Code   string `json:"code"`
					Field  string `json:"field"`
					Reason string `json:"reason"`
				} `json:"rejections"`
			}
			cli(t, nil, "", "import", path, "--node", addr, "-o", "json").want(t, 2).oneJSON(t, &sum)
			if sum.File != path || sum.Accepted != 2 || sum.Rejected != 1 || len(sum.Rejections) != 1 {
				t.Fatalf("summary %+v", sum)
			}
			// The field the node refused, apart from the reason that names it.
			if rj := sum.Rejections[0]; rj.Line != tc.line || rj.ID != tc.id || rj.Code != "INVALID_ARGUMENT" || rj.Reason != tc.reason ||
				rj.Field != tc.reason[:strings.Index(tc.reason, ":")] {
				t.Fatalf("rejection %+v, want line %d id %s InvalidArgument field %s %q", rj, tc.line, tc.id, tc.reason[:strings.Index(tc.reason, ":")], tc.reason)
			}
		})
	}

	// Only the valid rows were stored; CSV cells became typed body fields and labels.
	var list []map[string]any
	cli(t, nil, "", "record", "list", "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &list)
	var ids []string
	for _, r := range list {
		ids = append(ids, fmt.Sprint(r["id"]))
	}
	if !slices.Equal(ids, []string{"c-1", "c-3", "j-1", "j-3", "u-1", "u-3"}) {
		t.Fatalf("stored %v, want [c-1 c-3 j-1 j-3 u-1 u-3]", ids)
	}
	var c1 map[string]any
	cli(t, nil, "", "record", "get", "c-1", "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &c1)
	body, _ := c1["body"].(map[string]any)
	labels, _ := c1["labels"].(map[string]any)
	if body["municipality"] != "Houten" || body["beds_total"] != 80.0 || body["beds_free"] != 14.0 || labels["source"] != "lcvs" {
		t.Fatalf("c-1 = %v", c1)
	}

	// A file without bad rows exits 0.
	clean := filepath.Join(dir, "clean.jsonl")
	if err := os.WriteFile(clean, []byte(strings.Join(strings.Split(jsonl, "\n")[:2], "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, nil, "", "import", clean, "--node", addr, "-q").want(t, 0); r.stdout != clean+": 1 accepted, 0 rejected\n" {
		t.Fatalf("clean import printed %q", r.stdout)
	}
	// Rejections read in the file's order, whether the node refused the row (line 2) or the
	// reader did (line 3).
	order := filepath.Join(dir, "order.csv")
	if err := os.WriteFile(order, []byte("id,kind,crisis,region,classification,municipality,beds_total,beds_free,valid_until\n"+
		"o-1,shelter.capacity,oekraine,VR99,internal,Zeist,10,1,\no-2,shelter.capacity,oekraine,VR09,internal,Bunnik,10,1,morgen\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var ordered struct{ Rejections []struct{ Line int } }
	cli(t, nil, "", "import", order, "--node", addr, "-o", "json").want(t, 2).oneJSON(t, &ordered)
	if len(ordered.Rejections) != 2 || ordered.Rejections[0].Line != 2 || ordered.Rejections[1].Line != 3 {
		t.Errorf("rejections %+v, want lines 2 and 3 in order", ordered.Rejections)
	}
	// Standard input is JSON Lines unless --format says otherwise; a format it does not know is
	// refused naming the flag.
	stdin, err := os.ReadFile(clean)
	if err != nil {
		t.Fatal(err)
	}
	if r := cli(t, nil, string(stdin), "import", "-", "--node", addr, "-q").want(t, 0); r.stdout != "-: 1 accepted, 0 rejected\n" {
		t.Fatalf("import from standard input printed %q", r.stdout)
	}
	if r := cli(t, nil, "", "import", clean, "--format", "xlsx", "--node", addr).want(t, 1); !strings.Contains(r.stderr, `--format "xlsx": use jsonl, csv or cap`) {
		t.Fatalf("an unknown --format: %q", r.stderr)
	}
}

func TestCLIStatus(t *testing.T) {
	addr, dir := servedNode(t)
	cli(t, nil, "", "record", "put", "--node", addr, "--kind", "sitrep", "--crisis", "oekraine", "--region", "NL",
		"--classification", "public", "--body", `{"title":"t","summary":"s"}`).want(t, 0)
	var st map[string]any
	cli(t, nil, "", "status", "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &st)
	kinds, _ := st["kinds"].([]any)
	if st["org"] != "local.crisis.test" || st["raft_state"] != "Leader" || fmt.Sprint(st["records"]) != "1" ||
		fmt.Sprint(st["last_seq"]) != "1" || len(kinds) != 9 || st["not_member"] != false || st["leader_seen_at"] == nil {
		t.Fatalf("status -o json = %v", st)
	}
	// No peers and nothing firing are empty lists, not null: null is for what the role may not
	// read, which not_visible names (nothing, on the local socket).
	for _, list := range []string{"peers", "firing", "not_visible"} {
		if v, ok := st[list].([]any); !ok || len(v) != 0 {
			t.Errorf("status -o json: %s = %#v, want []", list, st[list])
		}
	}
	// What an operator on call asks: the peers (none here), the webhooks' queues, and the
	// early warnings that fire.
	cli(t, nil, "", "record", "put", "--node", addr, "--id", "alert-beds-VR19", "--kind", "alert", "--crisis", "oekraine", "--region", "VR19",
		"--classification", "internal", "--label", "rule=beds", "--label", "status=firing",
		"--body", `{"identifier":"a1","sender":"local.crisis.test","sent":"2026-12-04T09:00:00+01:00","status":"Actual","msgType":"Alert","scope":"Restricted","info":[{"category":["Other"],"event":"beds","urgency":"Expected","severity":"Severe","certainty":"Likely"}]}`).want(t, 0)
	r := cli(t, nil, "", "status", "--node", addr).want(t, 0)
	for _, want := range []string{"\nrecords      2, of every mode: actual, exercise, test and draft (change feed at 2)\n", "\npeers        0\n", "\nwebhooks     0, 0 queued, 0 failed\n", "\nfiring       1: beds in VR19\n",
		"\nlast backup  none of this replica kept (knooppunt backup)\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	// After a backup, its time.
	cli(t, nil, "", "backup", filepath.Join(dir, "b.db"), "--node", addr, "-q").want(t, 0)
	cli(t, nil, "", "status", "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &st)
	if at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(st["last_backup_at"])); err != nil || time.Since(at) > time.Minute {
		t.Errorf("status -o json after a backup: last_backup_at %v (%v)", st["last_backup_at"], err)
	}
	// What the next start meets: a change that waits for it, then a file that does not load
	// (review AA, AA13).
	cfgFile := filepath.Join(dir, "node.yaml")
	statusSays := func(what, want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			r := cli(t, nil, "", "status", "--node", addr).want(t, 0)
			if strings.Contains(r.stdout, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status lacks %q:\n%s", what, want, r.stdout)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if err := os.WriteFile(cfgFile, []byte("raft:\n  election_timeout: 100ms\nmetrics_addr: \"127.0.0.1:1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	statusSays("a key that waits for a restart", "\nconfig       changed metrics_addr: applies at the next start; the running node keeps the old values\n")
	if err := os.WriteFile(cfgFile, []byte("raft:\n  election_timeout: 100ms\nrol: typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	statusSays("a file that does not load", `"rol" is not a setting: did you mean org?: the node runs on what it loaded before, and would not start with this file: mend it`+"\n")
	if r := cli(t, nil, "", "status", "--node", addr).want(t, 0); !regexp.MustCompile(`\nconfig +THE CONFIG FILE DOES NOT LOAD since `).MatchString(r.stdout) || !strings.Contains(r.stdout, "\nlast backup ") {
		t.Errorf("status of a broken config file, one line in the table:\n%s", r.stdout)
	}
	// A syntax error: the line says what is wrong, not only the file (review AL, AL5).
	if err := os.WriteFile(cfgFile, []byte("raft:\n  election_timeout: 100ms\nkinds: [a, b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	statusSays("a file that is not YAML", "node.yaml: [3:8] sequence end token ']' not found: the node runs on what it loaded before")
}

// TestCLIAuditVerify checks that audit verify prints the head, accepts it back as --anchor, and
// refuses an anchor it cannot parse before it calls the node.
func TestCLIAuditVerify(t *testing.T) {
	addr, _ := servedNode(t)
	cli(t, nil, "", "audit", "verify", "--node", addr).want(t, 0)
	// Searches by local users are audited.
	cli(t, nil, "", "search", "--node", addr, "--crisis", "oekraine").want(t, 0)
	cli(t, nil, "", "search", "--node", addr, "--crisis", "hoogwater").want(t, 0)
	out := cli(t, nil, "", "audit", "verify", "--node", addr).want(t, 0).stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != "ok: 2 entries verify" || !strings.HasPrefix(lines[1], "head: 2:") || len(lines[1]) != len("head: 2:")+64 {
		t.Fatalf("audit verify printed:\n%s", out)
	}
	head := strings.TrimPrefix(lines[1], "head: ")
	// An anchor that holds says so: the same output as without one would not tell it was checked.
	if out := cli(t, nil, "", "audit", "verify", "--node", addr, "--anchor", head).want(t, 0).stdout; out != "ok: 2 entries verify\nanchor 2 holds: the chain still has that entry with that hash\nhead: "+head+"\n" {
		t.Errorf("audit verify --anchor printed:\n%s", out)
	}
	var v map[string]any
	cli(t, nil, "", "audit", "verify", "--node", addr, "--anchor", head, "-o", "json").want(t, 0).oneJSON(t, &v)
	if v["ok"] != true || v["head"] != head || v["anchor_holds"] != true {
		t.Fatalf("audit verify -o json = %v, want ok and head %s", v, head)
	}
	// A hash that is not entry 1's: the chain does not hold the anchor.
	res := cli(t, nil, "", "audit", "verify", "--node", addr, "--anchor", "1:"+strings.Repeat("ab", 32)).want(t, 1)
	if !strings.Contains(res.stdout, "BROKEN at entry 1 of 2") || !strings.Contains(res.stdout, "not the anchor's "+strings.Repeat("ab", 32)) {
		t.Fatalf("audit verify with a wrong anchor printed:\n%s", res.stdout)
	}
	// An anchor it cannot read is an error, 4, not a broken chain (review Z, Z2).
	for _, bad := range []string{"2", "x:ab", "0:" + strings.Repeat("ab", 32), "2:abcd", "2:" + strings.Repeat("zz", 32)} {
		res := cli(t, nil, "", "audit", "verify", "--node", addr, "--anchor", bad).want(t, 4)
		if !strings.Contains(res.stderr, "--anchor") || res.stdout != "" {
			t.Fatalf("--anchor %s: stderr does not name the flag:\n%s", bad, res.stderr)
		}
	}
	// The example in --help is a head as verify prints it.
	ex := regexp.MustCompile(`--anchor (\S+)`).FindStringSubmatch(newAuditVerifyCmd().Example)
	if ex == nil {
		t.Error("audit verify's examples show no --anchor")
	} else if _, err := parseAnchor(ex[1]); err != nil {
		t.Errorf("audit verify's example --anchor %s: %v", ex[1], err)
	}
	// A list cut at --limit says so, and where the rest begins; --since takes days, and names
	// itself when it cannot read the value.
	if r := cli(t, nil, "", "audit", "list", "--node", addr, "--limit", "1", "--since", "7d").want(t, 0); !strings.Contains(r.stderr, "these are the first 1 entries that match, and there may be more: --after 1 shows the next ones") {
		t.Errorf("audit list --limit 1 of 2: stderr %q", r.stderr)
	}
	if r := cli(t, nil, "", "audit", "list", "--node", addr, "--limit", "3").want(t, 0); r.stderr != "" {
		t.Errorf("audit list --limit 3 of 2: stderr %q, want nothing", r.stderr)
	}
	if r := cli(t, nil, "", "audit", "list", "--node", addr, "--since", "gisteren").want(t, 1); !strings.HasPrefix(r.stderr, `knooppunt: --since: "gisteren": use RFC 3339`) {
		t.Errorf("audit list --since gisteren: stderr %q", r.stderr)
	}
}

func TestCLIDemoOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six node processes")
	}
	r := cli(t, nil, "", "demo", "--once").want(t, 0)
	utrecht, ncc, ok := strings.Cut(r.stdout, "=== The picture as seen from NCC")
	if !ok || !strings.Contains(utrecht, "=== The picture as seen from VR Utrecht") {
		t.Fatalf("demo did not print both pictures:\n%s", r.stdout)
	}
	var municipalities []string
	for _, line := range strings.Split(utrecht, "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[0] == "shelter.capacity" && strings.HasPrefix(f[1], "VR") {
			municipalities = append(municipalities, f[2])
		}
	}
	if len(municipalities) != 12 || !slices.Contains(municipalities, "Utrecht") || !slices.Contains(municipalities, "Vlissingen") {
		t.Fatalf("VR Utrecht's picture lists shelters %v, want the 12 municipalities:\n%s", municipalities, r.stdout)
	}
	if !strings.Contains(ncc, "VR Utrecht   HOLDS it") || strings.Count(ncc, "does not hold it") != 4 {
		t.Fatalf("the confidential record did not reach only VR Utrecht:\n%s", ncc)
	}
	// The full-text search from VR Utrecht finds SZW's guidance and LCVS's Q&A by a part of
	// "tewerkstellingsvergunning", with the match marked.
	_, search, _ := strings.Cut(ncc, "=== knooppunt search --text vergunning, from VR Utrecht ===")
	search, pdfSearch, _ := strings.Cut(search, "=== knooppunt search --text infectieziektebestrijding, from VR Utrecht")
	pdfSearch, _, _ = strings.Cut(pdfSearch, "=== Where did")
	// GGD GHOR's handreiking is a PDF the demo made: VR Utrecht fetched it and finds it by a word
	// that only the PDF holds, with the match marked.
	if !strings.Contains(pdfSearch, "ggdghor.crisis.test") || !strings.Contains(pdfSearch, "guidance-ggd-handreiking") ||
		!strings.Contains(pdfSearch, "«Infectieziektebes") || !strings.Contains(pdfSearch, "VR Utrecht holds GGD GHOR's PDF") {
		t.Fatalf("search --text infectieziektebestrijding from VR Utrecht did not find GGD GHOR's PDF:\n%s", pdfSearch)
	}
	found := map[string]bool{}
	for _, line := range strings.Split(search, "\n") {
		if f := strings.Fields(line); len(f) > 5 && strings.Contains(line, "vergunning»") {
			found[f[0]+" "+f[4]] = true
		}
	}
	if !found["szw.crisis.test guidance-szw-werk"] || !found["lcvs.crisis.test qa-oekraine-werk"] || !found["szw.crisis.test permit-szw-twv-oekraine"] {
		t.Fatalf("search --text vergunning from VR Utrecht found %v, want SZW's guidance and permit rule and LCVS's Q&A:\n%s", found, search)
	}
	// VR Utrecht's REST API serves its picture to a system of its own, over mutual TLS with the
	// editor's SVID, checked by the host name its node's SVID names (review X, X10).
	if !regexp.MustCompile(`GET https://127\.0\.0\.1:\d+/v1/pictures/oekraine\?skip_peer_check=true: 200 OK, [1-9]\d* entries from [5-9] sources`).MatchString(r.stdout) {
		t.Errorf("the demo did not read VR Utrecht's picture over REST:\n%s", r.stdout)
	}
	// GGD GHOR's superseded Q&A is in VR Utrecht's picture, marked, beside the answer in force.
	marks := map[string]bool{}
	for _, line := range strings.Split(utrecht, "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[0] == "qa" {
			marks[f[2]] = strings.Contains(line, " SUPERSEDED ")
		}
	}
	if superseded, ok := marks["qa-ggd-vaccinatie-2022"]; !ok || !superseded || marks["qa-ggd-vaccinatie"] {
		t.Fatalf("VR Utrecht's picture marks the Q&As %v, want qa-ggd-vaccinatie-2022 SUPERSEDED and qa-ggd-vaccinatie in force:\n%s", marks, utrecht)
	}
	// The exercise: NCC's exercise picture, under its OEFENING banner, holds VR Zeeland's two
	// exercise sitreps; the real pictures never show them; closing removes them at NCC.
	real, exercise, ok := strings.Cut(r.stdout, "=== OEFENING oefening-zeeland beside the real crisis ===")
	if !ok {
		t.Fatalf("the demo ran no exercise:\n%s", r.stdout)
	}
	if strings.Contains(real, "oefening-vr19") {
		t.Fatalf("a real picture shows an exercise record:\n%s", real)
	}
	_, table, _ := strings.Cut(exercise, "OEFENING oefening-zeeland: exercise records only, not the actual crisis\nKIND")
	var shown []string
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[0] == "sitrep" {
			shown = append(shown, f[2]+" "+f[3])
		}
	}
	if !slices.Equal(shown, []string{"oefening-vr19-1 vr-zeeland.crisis.test", "oefening-vr19-2 vr-zeeland.crisis.test"}) {
		t.Fatalf("NCC's exercise picture shows %v under the OEFENING banner, want VR Zeeland's two exercise sitreps:\n%s", shown, exercise)
	}
	// The alert at NCC in words, not a fragment of its JSON body (review G, G15).
	if want := "NCC          its picture shows the alert: rule zeeland-beds-low fires in VR19, Severe"; !strings.Contains(r.stdout, want) {
		t.Errorf("the demo did not say %q:\n%s", want, r.stdout)
	}
	for _, want := range []string{
		"vr19-oefening-to-ncc@1: proposed by officer-a, approved by officer-b",
		"entries, none of the exercise",
		"VR Zeeland closes oefening-zeeland: 2 records deleted, retracted at every peer",
		"NCC now holds 0 records of oefening-zeeland; its real picture is unchanged",
		"NCC closes oefening-zeeland too: every organisation that took part has closed it",
	} {
		if !strings.Contains(exercise, want) {
			t.Fatalf("the exercise did not say %q:\n%s", want, exercise)
		}
	}
}

func TestCLIUnreachableNode(t *testing.T) {
	missing := "unix://" + filepath.Join(shortDir(t), "missing", node.SocketName)
	unreachable := "cannot reach the node at " + missing + ": is `knooppunt serve` running? Or point --node (or KNOOPPUNT_NODE) at the node's socket, DATA_DIR/knooppunt.sock. A node that is starting answers once it has its SVID: its log says what it waits for."
	for _, args := range [][]string{
		{"record", "get", "x", "--node", missing},
		{"record", "list", "--node", missing},
		{"status", "--node", missing},
	} {
		r := cli(t, nil, "", args...).want(t, 1)
		if want := "knooppunt: " + unreachable + " (Unavailable)\n"; r.stderr != want || r.stdout != "" {
			t.Errorf("knooppunt %s: stdout %q stderr %q\nwant stderr %q", strings.Join(args, " "), r.stdout, r.stderr, want)
		}
		// A script that asked for JSON gets the same as one document.
		r = cli(t, nil, "", append(args, "-o", "json")...).want(t, 1)
		if got := oneError(t, r.stderr); got != (errorBody{Code: "UNAVAILABLE", Message: unreachable}) || r.stdout != "" {
			t.Errorf("knooppunt %s -o json: stdout %q, error %+v", strings.Join(args, " "), r.stdout, got)
		}
	}
	// A data directory named instead of its socket (review25 F5) is said to be one.
	dir := shortDir(t)
	if r := cli(t, nil, "", "status", "--node", "unix://"+dir).want(t, 1); !strings.Contains(r.stderr, "That is a directory: use --node unix://"+filepath.Join(dir, node.SocketName)+".") {
		t.Errorf("status with a directory for --node: %q", r.stderr)
	}
	// A TCP address without an identity is refused before dialing, naming the address.
	r := cli(t, nil, "", "record", "get", "x", "--node", "127.0.0.1:1").want(t, 1)
	if !strings.HasPrefix(r.stderr, "knooppunt: --node 127.0.0.1:1 is a TCP address: ") {
		t.Fatalf("stderr %q", r.stderr)
	}
	// An address that is neither says what to give.
	r = cli(t, nil, "", "record", "get", "x", "--node", "foo").want(t, 1)
	if want := `knooppunt: --node "foo": give unix:///path/to/knooppunt.sock (on the node's host) or host:port (over mutual TLS)` + "\n"; r.stderr != want {
		t.Fatalf("--node foo: stderr %q, want %q", r.stderr, want)
	}
}

// TestServeKeepsFilesPrivate: under the usual umask 022 and in a data directory that others may
// read, every file `serve` creates (the database, its WAL, the Raft log and snapshot) is its
// user's alone: they hold records up to the highest classification.
func TestServeKeepsFilesPrivate(t *testing.T) {
	old := syscall.Umask(0o022) // the process serve runs in inherits it
	t.Cleanup(func() { syscall.Umask(old) })
	dir := shortDir(t)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	proc, _ := serveNode(t, dir)
	addr := "unix://" + filepath.Join(dir, "data", node.SocketName)
	cli(t, nil, "", "record", "put", "--node", addr, "--id", "utrecht", "--kind", "shelter.capacity", "--crisis", "oekraine",
		"--region", "VR09", "--classification", "internal", "--body", utrechtBody).want(t, 0)
	if err := proc.Term(t, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	var files int
	err := filepath.WalkDir(filepath.Join(dir, "data"), func(path string, e os.DirEntry, err error) error {
		if err != nil || path == filepath.Join(dir, "data") {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			files++
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: others can read it", path, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 2 {
		t.Fatalf("the data directory holds %d files: the node wrote nothing to check", files)
	}
}

// TestPhaseShowListsKnownCrises: `phase show` lists a crisis that records name though its phase
// was never set, cold and with no one who set it.
func TestPhaseShowListsKnownCrises(t *testing.T) {
	addr, _ := servedNode(t)
	cli(t, nil, "", "record", "put", "--node", addr, "--id", "utrecht", "--kind", "shelter.capacity", "--crisis", "oekraine",
		"--region", "VR09", "--classification", "internal", "--body", utrechtBody).want(t, 0)
	r := cli(t, nil, "", "phase", "show", "--node", addr, "-o", "json").want(t, 0)
	var got []phaseJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("phase show -o json: %v\n%s", err, r.stdout)
	}
	if len(got) != 1 || got[0].Crisis != "oekraine" || got[0].Phase != "cold" || got[0].SetBy != "" {
		t.Errorf("phase show: %+v, want oekraine, cold, never set", got)
	}
	// picture without --crisis names the crises there are.
	if r := cli(t, nil, "", "picture", "--node", addr).want(t, 1); r.stderr != "knooppunt: --crisis: name the crisis; known here: oekraine (cold)\n" {
		t.Errorf("picture without --crisis: stderr %q", r.stderr)
	}
}

// TestCLIImportStoppedMidway: an import whose node goes away in the middle (killed, here) says
// how far it came, after which line nothing was sent and what importing again does, in text and
// in -o json, before its error: a coordinator then knows which rows went in.
func TestCLIImportStoppedMidway(t *testing.T) {
	dir := shortDir(t)
	p, conn := serveNode(t, dir)
	var b strings.Builder
	const rows = 20000
	for i := range rows {
		fmt.Fprintf(&b, `{"id":"m-%d","kind":"shelter.capacity","crisis":"oekraine","region":"VR09","classification":"internal","body":{"municipality":"Utrecht","beds_total":120,"beds_free":%d}}`+"\n", i, i%100)
	}
	file := filepath.Join(dir, "many.jsonl")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, proctest.Binary(t), "import", file, "--batch", "1", "-o", "json", "--node", "unix://"+filepath.Join(dir, "data", node.SocketName))
	cmd.Env = proctest.Env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill the node once some rows are in.
	rc := pb.NewRecordServiceClient(conn)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := rc.List(ctx, &pb.ListRequest{PageSize: 20}); err == nil && len(resp.Records) >= 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the import stored nothing within 30s")
		}
	}
	p.Kill(t)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("the import whose node was killed: %v, want exit status 1\nstdout %s\nstderr %s", err, stdout.String(), stderr.String())
	}
	var sum struct {
		Accepted int
		Stopped  string
	}
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("no summary on stdout: %v\n%s\nstderr %s", err, stdout.String(), stderr.String())
	}
	// With --batch 1 the row after the last answered one was sent but not answered. 20 rows were
	// stored before the kill, the last of which may have been the one whose answer the kill cut
	// off (as a CI run met): 19 answered at least.
	m := regexp.MustCompile(`^stopped after (\d+) of 20000 rows: the node answered for the rows up to line (\d+); lines (\d+) to (\d+) were sent but not answered, and may be stored; the rest were not sent`).FindStringSubmatch(sum.Stopped)
	if m == nil || m[1] != m[2] || m[1] == "0" || sum.Accepted < 19 || fmt.Sprint(sum.Accepted) != m[1] || m[3] != m[4] || m[3] != fmt.Sprint(sum.Accepted+1) {
		t.Errorf("the summary of the stopped import: %+v", sum)
	}
}

// TestUnvouched: --witnesses passes only when a witness vouched for the chain; otherwise it says
// why none did (review onboard F5: every witness keeping no head read as ok; review O, O2: no
// witness at all, on a node without peers, read as ok).
func TestUnvouched(t *testing.T) {
	ws := func(states ...string) []*pb.WitnessReport {
		var out []*pb.WitnessReport
		for _, s := range states {
			out = append(out, &pb.WitnessReport{State: s})
		}
		return out
	}
	for _, c := range []struct {
		ws   []*pb.WitnessReport
		want string
	}{
		{ws("ok", "unreachable", "none"), ""},
		{ws("none", "none"), "no witness could vouch for the chain: 2 of 2 hold no head of it yet"},
		{ws("unreachable"), "no witness could vouch for the chain: 1 of 1 unreachable. Check again later"},
		{nil, "this node has no peers: nobody witnessed the chain"},
		{ws("unreachable", "none", "invalid"), "no witness could vouch for the chain: 1 of 3 unreachable; 1 of 3 hold no head of it yet (the node hands each peer its head every few minutes and after every policy and peer step); 1 of 3 hold heads that do not verify"},
	} {
		if got := unvouched(c.ws); !strings.HasPrefix(got, c.want) || (c.want == "") != (got == "") {
			t.Errorf("unvouched(%v) = %q, want it to begin %q", c.ws, got, c.want)
		}
	}
}

// TestCLIRefusalsNameTheFlag: the node's refusal of a request field is said of the flag or the
// argument that filled it, in the policy, webhook and cluster commands as in record's (review Z,
// Z1).
func TestCLIRefusalsNameTheFlag(t *testing.T) {
	addr, _ := servedNode(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"policy", "list", "--state", "bogus"}, `knooppunt: --state: "bogus" is not a state`},
		{[]string{"policy", "show", "nope@1"}, "knooppunt: ID: there is no policy nope@1"},
		{[]string{"policy", "explain", "--record", "x", "--recipient", "nobody"}, `knooppunt: --recipient: "nobody" is neither a peer's name nor a SPIFFE ID`},
		{[]string{"webhook", "failures", "--webhook", "nope"}, `knooppunt: --webhook: no webhook "nope"`},
		{[]string{"cluster", "join", "--id", "r4", "--raft-address", "garbage"}, `knooppunt: --raft-address: "garbage": no port`},
	} {
		if r := cli(t, nil, "", append(tc.args, "--node", addr)...).want(t, 1); !strings.HasPrefix(r.stderr, tc.want) {
			t.Errorf("%s: stderr %q, want it to start %q", strings.Join(tc.args, " "), r.stderr, tc.want)
		}
	}
}

// TestCLIFindingsExitApartFromErrors: a command whose exit code 1 is a finding (policy diff: they
// differ; lint: a problem; audit verify: the chain is broken) exits otherwise when it could not
// run at all, so that a script does not take a typo or an outage for the finding (review Z, Z2
// and Z3).
func TestCLIFindingsExitApartFromErrors(t *testing.T) {
	down := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	cli(t, nil, "", "policy", "diff", "a@1").want(t, 2)                   // one argument short
	cli(t, nil, "", "policy", "diff", "a@1", "b@1", "--bogus").want(t, 2) // a flag it does not have
	cli(t, nil, "", "policy", "lint", filepath.Join(t.TempDir(), "none.yaml")).want(t, 2)
	cli(t, nil, "", "rule", "lint", filepath.Join(t.TempDir(), "none.yaml")).want(t, 2)
	cli(t, nil, "", "audit", "verify", "--node", down).want(t, 4)
	cli(t, nil, "", "audit", "verify", "--node", down, "-o", "json").want(t, 4)
	// Any other command's error stays 1.
	cli(t, nil, "", "record", "get", "x", "--node", down).want(t, 1)
}

// TestCLIRecordDeleteJSON: delete -o json prints one document, as put does (review Z, Z9).
func TestCLIRecordDeleteJSON(t *testing.T) {
	addr, _ := servedNode(t)
	cli(t, nil, "", "record", "put", "--node", addr, "--kind", "shelter.capacity", "--crisis", "oekraine", "--region", "VR09",
		"--classification", "internal", "--id", "weg-1", "--body", utrechtBody).want(t, 0)
	var gone struct {
		ID      string `json:"id"`
		Version int64  `json:"version"`
		Deleted bool   `json:"deleted"`
	}
	cli(t, nil, "", "record", "delete", "weg-1", "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &gone)
	if gone.ID != "weg-1" || gone.Version != 2 || !gone.Deleted {
		t.Errorf("delete -o json: %+v, want weg-1 deleted at version 2", gone)
	}
}

// TestCLIBadFlagValueInWords: a value a flag cannot take is refused naming the flag and what to
// give, not in Go's parser's words (review Z, Z11).
func TestCLIBadFlagValueInWords(t *testing.T) {
	for args, want := range map[string]string{
		"record list --limit abc":             `knooppunt: --limit "abc": give a whole number`,
		"record list --limit 99999999999":     `knooppunt: --limit "99999999999": out of range`,
		"record list --all=maybe":             `knooppunt: --all "maybe": give true or false`,
		"picture --crisis x --stale-after 2x": `knooppunt: --stale-after: "2x" is not a duration: use 90s, 30m, 24h or 7d`,
	} {
		if r := cli(t, nil, "", strings.Fields(args)...).want(t, 1); strings.TrimSpace(r.stderr) != want {
			t.Errorf("%s: stderr %q, want %q", args, r.stderr, want)
		}
	}
	// An address the person did not type on the command line is named where it came from (Z6).
	if r := cli(t, []string{"KNOOPPUNT_NODE=bogus"}, "", "record", "list").want(t, 1); !strings.HasPrefix(r.stderr, `knooppunt: KNOOPPUNT_NODE "bogus": give unix:///`) {
		t.Errorf("record list with KNOOPPUNT_NODE=bogus: stderr %q", r.stderr)
	}
	if r := cli(t, []string{"KNOOPPUNT_NODE=bogus"}, "", "record", "list", "--node", "bogus2").want(t, 1); !strings.HasPrefix(r.stderr, `knooppunt: --node "bogus2": give unix:///`) {
		t.Errorf("record list --node bogus2: stderr %q", r.stderr)
	}
}

// TestCLIRequiredFlagsNamedAsFlags: required flags left out are named as flags, with their
// dashes, as every other refusal names a flag (review Z, Z8).
func TestCLIRequiredFlagsNamedAsFlags(t *testing.T) {
	r := cli(t, nil, "", "record", "put", "--node", "unix:///nowhere.sock", "--kind", "sitrep").want(t, 1)
	if want := "knooppunt: --body, --classification, --crisis, --region: missing: give them\n"; r.stderr != want {
		t.Errorf("record put without its flags: stderr %q, want %q", r.stderr, want)
	}
	// The help says which are required, of every command alike.
	help := cli(t, nil, "", "record", "put", "--help").want(t, 0).stdout
	for _, name := range []string{"body", "classification", "crisis", "kind", "region"} {
		if !regexp.MustCompile(`(?m)^\s+--` + name + ` .*\(required\)$`).MatchString(help) {
			t.Errorf("record put --help does not mark --%s required:\n%s", name, help)
		}
	}
}

// TestCLICompletesClosedSets: the shell completes the values of the flags that take one of a
// few, and the phase phase set takes; peer invite's -o, a file, is not offered table or json
// (review Z, Z15).
func TestCLICompletesClosedSets(t *testing.T) {
	for args, want := range map[string][]string{
		"record list --region ":              {"NL", "VR09", "VR25"},
		"record put --classification ":       {"public", "secret"},
		"search -o ":                         {"table", "json"},
		"phase set --crisis oekraine ":       {"cold", "lukewarm", "warm"},
		"policy list --state ":               {"approved", "superseded"},
		"record get x --consistency ":        {"local", "strong"},
		"picture --crisis x --status ":       {"test", "draft"},
		"policy explain --record x --phase ": {"warm"},
	} {
		out := cli(t, nil, "", append([]string{"__complete"}, strings.Split(args, " ")...)...).want(t, 0).stdout
		for _, w := range want {
			if !slices.Contains(strings.Split(out, "\n"), w) {
				t.Errorf("completing %q: %q lacks %s", args, out, w)
			}
		}
	}
	if out := cli(t, nil, "", "__complete", "peer", "invite", "-o", "").want(t, 0).stdout; strings.Contains(out, "json") {
		t.Errorf("peer invite -o completes %q, a format for a file", out)
	}
}

// TestPolicyInactiveSaysWhy: an approved policy that shares nothing now says what it waits for,
// where "active: false" read as an approval that did not take (review Z, Z17).
func TestPolicyInactiveSaysWhy(t *testing.T) {
	show := func(active bool) string {
		var b strings.Builder
		p := &pb.PolicyInfo{Id: "p@1", State: "approved", Active: active, ProposedAt: timestamppb.Now()}
		if err := printPolicy(&b, "table", p, false); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if got := show(false); !strings.Contains(got, "approved (active: false): it shares nothing now: it is outside its window, or, limited to phases, no crisis in one of them") {
		t.Errorf("an inactive approved policy:\n%s", got)
	}
	if got := show(true); strings.Contains(got, "shares nothing") {
		t.Errorf("an active policy says it shares nothing:\n%s", got)
	}
}
