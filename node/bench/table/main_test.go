package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestMetrics(t *testing.T) {
	out := `goos: linux
BenchmarkCatchUp-2   	       1	     52969 baseline-records/s	     18344 records/s	         0.3463 x-baseline
BenchmarkDecide/mix-2         	 1000000	      1412 ns/op	     120 B/op	       3 allocs/op
BenchmarkClusterWrite/replicas=3/writers=64-2   3000	 0 ns/op	 302.5 cpu-µs/record	 4424 records/s
PASS
`
	got := metrics(strings.NewReader(out))
	want := "CatchUp: 52969 baseline-records/s, 18344 records/s, 0.3463 x-baseline; " +
		"Decide/mix: 1412 ns/op, 120 B/op, 3 allocs/op; " +
		"ClusterWrite/replicas=3/writers=64: 302.5 cpu-µs/record, 4424 records/s"
	if got != want {
		t.Errorf("metrics:\n got %s\nwant %s", got, want)
	}
	if got := metrics(strings.NewReader("PASS\n")); !strings.Contains(got, "no benchmark") {
		t.Errorf("no benchmark lines gave %q", got)
	}
}

// TestRowsNameRealBenchmarks: every row's pattern matches a benchmark (or, for a test row, a
// test) declared in its packages, so that a renamed benchmark breaks the table here, not in the
// middle of a long run.
func TestRowsNameRealBenchmarks(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	decl := regexp.MustCompile(`(?m)^func ((?:Benchmark|Test)\w+)\(`)
	for _, r := range rows {
		var names []string
		for _, pkg := range strings.Fields(r.pkg) {
			files, err := filepath.Glob(filepath.Join(root, pkg, "*_test.go"))
			if err != nil || len(files) == 0 {
				t.Fatalf("%s: no test files in %s", r.figure, pkg)
			}
			for _, f := range files {
				src, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range decl.FindAllStringSubmatch(string(src), -1) {
					names = append(names, m[1])
				}
			}
		}
		// go test splits a pattern at slashes, one part a level: the first names the function.
		top, _, _ := strings.Cut(r.bench, "/")
		pat := regexp.MustCompile(top)
		found := false
		for _, n := range names {
			isBench := strings.HasPrefix(n, "Benchmark")
			// go test matches -bench against the name without "Benchmark" too, by regexp on the
			// whole name; a pattern like "WritePath" matches BenchmarkWritePath.
			if isBench != r.test && pat.MatchString(n) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: %q matches no %s in %s", r.figure, r.bench, map[bool]string{true: "test", false: "benchmark"}[r.test], r.pkg)
		}
		if len(r.full.flags) == 0 || len(r.short.flags) == 0 {
			t.Errorf("%s: both modes need flags (at least a -timeout)", r.figure)
		}
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"-benchtime": "-benchtime", "^$": "'^$'", "Decide|Stream10k": "'Decide|Stream10k'", "it's": `'it'\''s'`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}
