package main

import (
	"runtime/debug"
	"testing"
)

// TestStamped checks the version a build without -ldflags says, from what Go stamped into it.
func TestStamped(t *testing.T) {
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "98d74c18a80743126cdef057cfd7492cf5069a2d"},
			{Key: "vcs.time", Value: "2026-12-06T20:24:34Z"}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tc := range []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "dev"},
		{"tagged", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}, Settings: vcs("false")}, "v1.4.0"},
		{"pseudo-version", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261206202434-98d74c18a807+dirty"}, Settings: vcs("true")},
			"v0.0.0-20261206202434-98d74c18a807+dirty"},
		{"commit", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("false")}, "98d74c18a807 (2026-12-06T20:24:34Z)"},
		{"changed tree", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("true")}, "98d74c18a807+dirty (2026-12-06T20:24:34Z)"},
		{"no module version", &debug.BuildInfo{Settings: vcs("false")}, "98d74c18a807 (2026-12-06T20:24:34Z)"},
		{"buildvcs=false", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := stamped(tc.info); got != tc.want {
				t.Errorf("stamped = %q, want %q", got, tc.want)
			}
		})
	}
}
