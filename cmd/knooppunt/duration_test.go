package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestDurationFlagsTakeDays: every duration flag takes Go's durations and whole days, as --since
// does and as the node's refusals write them (30d), and refuses anything else saying what to
// write (review Z, Z4).
func TestDurationFlagsTakeDays(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "0d": 0, "30d": 720 * time.Hour} {
		var d time.Duration
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		durationFlag(fs, &d, "ttl", time.Minute, "")
		if err := fs.Parse([]string{"--ttl", in}); err != nil || d != want {
			t.Errorf("--ttl %s: %v, %v; want %v", in, d, err, want)
		}
	}
	for _, in := range []string{"2x", "-1d", "d", "100001d", "1.5d"} {
		var d time.Duration
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		durationFlag(fs, &d, "ttl", time.Minute, "")
		if err := fs.Parse([]string{"--ttl", in}); err == nil || !strings.Contains(err.Error(), "use 90s, 30m, 24h or 7d") {
			t.Errorf("--ttl %s: %v, want a refusal that says what to write", in, err)
		}
	}
	// The default shows as before.
	var d time.Duration
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	durationFlag(fs, &d, "ttl", 24*time.Hour, "")
	if got := fs.Lookup("ttl").DefValue; got != "24h0m0s" || d != 24*time.Hour {
		t.Errorf("the default: %q and %v", got, d)
	}
}
