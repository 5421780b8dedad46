package main

import (
	"runtime/debug"
)

// version is the release of this binary, as --version, status and a partner's peer show say it.
// A release build sets it with -ldflags "-X main.version=..."; otherwise it is what the build
// stamped (see stamped).
var version string

func init() {
	if version == "" {
		info, _ := debug.ReadBuildInfo()
		version = stamped(info)
	}
}

// stamped is the version that Go stamped into a build: the module's version, which go build
// takes from the repository's tag or commit (v1.4.0, or a pseudo-version such as
// v0.0.0-20261206202434-98d74c18a807+dirty); else, for a build that has no module version, the
// commit, as 12 hex digits, +dirty when the tree had changes, and its time. A build outside the
// repository, or with -buildvcs=false, knows neither: it is "dev".
func stamped(info *debug.BuildInfo) string {
	if info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, at string
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	v := rev[:min(12, len(rev))]
	if dirty {
		v += "+dirty"
	}
	if at != "" {
		v += " (" + at + ")"
	}
	return v
}
