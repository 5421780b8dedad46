package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// durationValue is a flag's duration as Go writes one (90s, 30m, 24h) or in whole days (7d), so
// that every duration flag takes what --since takes, and what the node's refusals suggest
// (review Z, Z4).
type durationValue struct{ d *time.Duration }

// durationFlag defines the duration flag name on fs, with its default and usage, into p.
func durationFlag(fs *pflag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	fs.Var(durationValue{p}, name, usage)
}

func (v durationValue) String() string {
	if v.d == nil {
		return ""
	}
	return v.d.String()
}

func (v durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

func (durationValue) Type() string { return "duration" }

// maxDays bounds a duration in days: beyond it a time.Duration overflows.
const maxDays = 100_000

// parseDuration reads a duration as Go writes one, or in whole days (7d).
func parseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 && n <= maxDays {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	return 0, fmt.Errorf("%q is not a duration: use 90s, 30m, 24h or 7d", s)
}
