//go:build unix

package main

import (
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// fileOwner is the uid of the user that owns the file at path, and that user's name ("" when
// it has none here); ok is false when it cannot be told.
func fileOwner(path string) (uid int, name string, ok bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, "", false
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, "", false
	}
	if u, err := user.LookupId(strconv.FormatUint(uint64(sys.Uid), 10)); err == nil {
		name = u.Username
	}
	return int(sys.Uid), name, true
}
