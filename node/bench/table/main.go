// Command table runs every benchmark that the figures table of docs/performance.md names, and
// prints the table's rows with what this run measured, for `make bench`.
//
//	go run ./node/bench/table            # the full runs, as the table's commands give them
//	go run ./node/bench/table -short     # a few iterations each, small data: minutes, not an hour
//	go run ./node/bench/table -only wan  # the rows whose figure mentions "wan"
//
// Every benchmark measures its own baseline in the same run and reports ratios; the short mode's
// figures are too small a sample to compare with the table's, but they show that every benchmark
// runs and what it reports. Progress goes to standard error, the rows to standard output.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// row is one figure of the table and how to measure it.
type row struct {
	figure, target string
	pkg            string
	// bench is the -bench pattern; for a test row (test set), the -run pattern.
	bench string
	test  bool
	// full and short are the flags (-benchtime, -count, -timeout) and environment of each mode.
	full, short mode
	// show picks the lines of a test row's output to report; a benchmark row reports its
	// benchmarks' metrics.
	show *regexp.Regexp
}

type mode struct {
	flags []string
	env   []string
}

func m(flags string, env ...string) mode { return mode{strings.Fields(flags), env} }

// rows follow the table's order.
var rows = []row{
	{figure: "Write path: 1000-record batches, one writer, ÷ raw SQLite; 64 single-record writers ÷ one writer", target: "≥ 0.8×; guard",
		pkg: "./node/bench/", bench: "WritePath",
		full: m("-benchtime 3x -timeout 30m"), short: m("-benchtime 1x -timeout 10m", "KNOOPPUNT_BENCH_WINDOW=500ms")},
	{figure: "List, full-text query and memory at 1M records", target: "List < 10 ms; text ≤ 3× List",
		pkg: "./node/bench/", bench: "Scale1M",
		full:  m("-benchtime 1x -timeout 60m", "KNOOPPUNT_BENCH_1M=1"),
		short: m("-benchtime 1x -timeout 10m", "KNOOPPUNT_BENCH_1M=1", "KNOOPPUNT_BENCH_RECORDS=20000", "KNOOPPUNT_BENCH_QUERIES=20")},
	{figure: "Full-text index on the write path, with ÷ without", target: "≤ 1.3×",
		pkg: "./node/db/", bench: "TextIndexWrite",
		full: m("-benchtime 40x -count 4 -timeout 20m"), short: m("-benchtime 4x -timeout 5m")},
	{figure: "Suggestion (Bedoelde u): NearWords and its check ÷ a plain search's first 100", target: "none",
		pkg: "./node/db/", bench: "Suggest",
		full: m("-benchtime 40x -count 3 -timeout 10m"), short: m("-benchtime 4x -timeout 5m")},
	{figure: "Catch-up: a new recipient takes in 100,000 records ÷ SQLite to a cache", target: "≥ 0.5×",
		pkg: "./federation/", bench: "CatchUp",
		full: m("-benchtime 1x -count 2 -timeout 20m"), short: m("-benchtime 1x -timeout 5m", "KNOOPPUNT_BENCH_CATCHUP=3000")},
	{figure: "Idle group of three, CPU in total", target: "≤ 0.03 cores",
		pkg: "./node/", bench: "IdleGroup",
		full: m("-benchtime 1x -timeout 20m"), short: m("-benchtime 1x -timeout 5m", "KNOOPPUNT_BENCH_WINDOW=1s")},
	{figure: "Unary Get and REST Get ÷ gRPC over the same mTLS; resumed ÷ full handshakes", target: "≤ 1.5×; ≤ 1.5×; none",
		pkg: "./federation/identity/bench/", bench: ".",
		full: m("-count 5 -timeout 20m"), short: m("-benchtime 200x -timeout 5m")},
	{figure: "One policy decision, realistic mix", target: "≤ 2 µs",
		pkg: "./policy/", bench: "Decide/realistic",
		full: m("-count 3 -timeout 20m"), short: m("-benchtime 20000x -timeout 5m")},
	{figure: "Filtered ÷ unfiltered stream of 10,000 records", target: "≤ 1.1×",
		pkg: "./policy/", bench: "Stream10k/ratio",
		full: m("-benchtime 20x -timeout 20m"), short: m("-benchtime 3x -timeout 5m")},
	{figure: "Search across a WAN p99, N=25 ÷ N=1, 20 ms each way", target: "≤ 1.5×",
		pkg: "./federation/", bench: "SearchWAN",
		full: m("-benchtime 400x -timeout 8m"), short: m("-benchtime 20x -timeout 5m")},
	{figure: "Search p99 over N peers, N=25 ÷ N=1 on one machine", target: "guard",
		pkg: "./federation/", bench: "BenchmarkSearch$",
		full: m("-benchtime 200x -timeout 30m", "KNOOPPUNT_BENCH_PEERS=1,5,25,100"), short: m("-benchtime 20x -timeout 5m", "KNOOPPUNT_BENCH_PEERS=1,5")},
	{figure: "Propagation p99, commit → peer's cache", target: "≤ 20 ms",
		pkg: "./federation/", bench: "BenchmarkPropagation",
		full: m("-benchtime 300x -count 3 -timeout 10m"), short: m("-benchtime 30x -timeout 5m")},
	{figure: "Onboarding: second `peer accept` → first shared record", target: "≤ 3 × propagation p99 + 1 handshake",
		pkg: "./cmd/knooppunt/", bench: "TestOnboardingLatency", test: true, show: regexp.MustCompile(`second accept: .*`),
		full: m("-count 3 -timeout 10m"), short: m("-count 1 -timeout 5m")},
	{figure: "Query stream ÷ plain grpc-go stream", target: "guard",
		pkg: "./federation/", bench: "BenchmarkQueryStream",
		full: m("-benchtime 20x -timeout 10m"), short: m("-benchtime 2x -timeout 5m")},
	{figure: "Raft group writes: records/s and CPU a record at 1, 16, 64 writers and 4 writers of 1000-record batches", target: "none",
		pkg: "./node/", bench: "BenchmarkClusterWrite",
		full: m("-benchtime 5000x -count 3 -timeout 30m"), short: m("-benchtime 300x -timeout 10m")},
	{figure: "Webhook delivery p99, commit → receiver ÷ propagation to a peer", target: "≤ 2×",
		pkg: "./federation/", bench: "BenchmarkWebhookDelivery",
		full: m("-benchtime 300x -count 3 -timeout 10m"), short: m("-benchtime 30x -timeout 5m")},
	{figure: "Purposes on the Query stream: a purpose stated and checked ÷ none", target: "≤ 1.03×",
		pkg: "./federation/", bench: "PurposeQueryStream",
		full: m("-benchtime 20x -count 2 -timeout 20m"), short: m("-benchtime 2x -timeout 5m")},
	{figure: "Purposes on the Query stream: the FSM's cost of auditing them, a record", target: "≤ 1.03× with the above",
		pkg: "./node/db/", bench: "ApplyDisclosuresPurposes",
		full: m("-benchtime 100x -count 3 -timeout 10m"), short: m("-benchtime 10x -timeout 5m")},
	{figure: "Early warning: 100 rules after a change, 25 peers, 10,000 cached records ÷ one Picture", target: "≤ 1×",
		pkg: "./node/alerting/", bench: "RulesAfterChange",
		full: m("-benchtime 10x -count 3 -timeout 15m"), short: m("-benchtime 2x -timeout 5m")},
	{figure: "CAP 1.2 import and export per alert ÷ JSON Lines", target: "none",
		pkg: "./node/cap/", bench: "CAP",
		full: m("-benchtime 2000x -count 3 -timeout 10m"), short: m("-benchtime 100x -timeout 5m")},
	{figure: "Modes: reads of actual records beside an exercise's ÷ every record actual", target: "≤ 1.05×",
		pkg: "./node/db/", bench: "ModeReads",
		full: m("-benchtime 60x -count 3 -timeout 10m"), short: m("-benchtime 5x -timeout 5m")},
	{figure: "Modes: the Query stream beside an exercise's records ÷ every record actual", target: "≤ 1.05×",
		pkg: "./federation/", bench: "ModeQueryStream",
		full: m("-benchtime 30x -count 3 -timeout 10m"), short: m("-benchtime 4x -timeout 5m")},
	{figure: "Attachment upload: 50 MiB to a group of three ÷ a copy with fsync", target: "≥ 0.5×",
		pkg: "./node/", bench: "AttachmentUpload",
		full: m("-benchtime 3x -count 3 -timeout 10m"), short: m("-benchtime 1x -timeout 5m")},
	{figure: "Picture page p95, 25 peers, 10,000 cached records ÷ the Picture call", target: "≤ 5×",
		pkg: "./node/ui/", bench: "BenchmarkPicturePage",
		full: m("-benchtime 60x -timeout 14m"), short: m("-benchtime 3x -timeout 10m")},
	{figure: "Live picture p99, commit → event in the open page ÷ commit → cache", target: "≤ 2×",
		pkg: "./node/ui/", bench: "BenchmarkLiveEvent",
		full: m("-benchtime 100x -timeout 10m"), short: m("-benchtime 10x -timeout 5m")},
	{figure: "Leader loss to writes taken again", target: "< 2 s",
		pkg: "./node/clusterproc/ ./node/", bench: "BenchmarkProcessFailover|BenchmarkClusterFailover",
		full: m("-benchtime 20x -timeout 20m"), short: m("-benchtime 2x -timeout 10m")},
}

func main() {
	short := flag.Bool("short", false, "a few iterations each, on small data")
	only := flag.String("only", "", "run only the rows whose figure contains this text (any case)")
	flag.Parse()
	out := os.Stdout
	fmt.Fprintln(out, "| figure | target | this run | command |")
	fmt.Fprintln(out, "| --- | --- | --- | --- |")
	failed := 0
	var picked []row
	for _, r := range rows {
		if *only == "" || strings.Contains(strings.ToLower(r.figure), strings.ToLower(*only)) {
			picked = append(picked, r)
		}
	}
	if len(picked) == 0 {
		fmt.Fprintf(os.Stderr, "no figure contains %q\n", *only)
		os.Exit(2)
	}
	for i, r := range picked {
		md := r.full
		if *short {
			md = r.short
		}
		args := []string{"test"}
		if r.test {
			args = append(args, "-run", r.bench, "-v")
		} else {
			args = append(args, "-run", "^$", "-bench", r.bench)
		}
		args = append(args, md.flags...)
		args = append(args, strings.Fields(r.pkg)...)
		shown := make([]string, len(args))
		for k, a := range args {
			shown[k] = quote(a)
		}
		command := strings.TrimSpace(strings.Join(md.env, " ") + " go " + strings.Join(shown, " "))
		fmt.Fprintf(os.Stderr, "[%d/%d] %s\n\t%s\n", i+1, len(picked), r.figure, command)
		start := time.Now()
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), md.env...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := cmd.Run()
		var result string
		if r.test {
			result = strings.Join(r.show.FindAllString(buf.String(), -1), "; ")
		} else {
			result = metrics(&buf)
		}
		if err != nil {
			failed++
			result = "FAILED: " + lastLines(buf.String(), 3)
		}
		fmt.Fprintf(os.Stderr, "\tdone in %s\n", time.Since(start).Round(time.Second))
		fmt.Fprintf(out, "| %s | %s | %s | `%s` |\n", r.figure, r.target, cell(result), command)
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "%d of %d rows failed\n", failed, len(picked))
		os.Exit(1)
	}
}

// metrics gathers what each benchmark line reports: its name without the GOMAXPROCS suffix, and
// every metric but a zero or, beside metrics of its own, ns/op.
func metrics(r io.Reader) string {
	var parts []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if k := strings.LastIndex(name, "-"); k > 0 {
			name = name[:k]
		}
		var own, ns []string
		for k := 2; k+1 < len(f); k += 2 {
			v, unit := f[k], f[k+1]
			switch {
			case v == "0" || v == "0.0000":
			case unit == "ns/op" || unit == "B/op" || unit == "allocs/op":
				ns = append(ns, v+" "+unit)
			default:
				own = append(own, v+" "+unit)
			}
		}
		if len(own) == 0 {
			own = ns
		}
		parts = append(parts, name+": "+strings.Join(own, ", "))
	}
	if len(parts) == 0 {
		return "no benchmark reported (skipped?)"
	}
	return strings.Join(parts, "; ")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// quote quotes an argument for a shell when it needs it.
func quote(a string) string {
	if strings.ContainsAny(a, "|$^*()[]{} ;&<>?'\\") {
		return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return a
}
