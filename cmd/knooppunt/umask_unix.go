//go:build unix

package main

import "syscall"

// privateFiles makes every file and directory the node creates its user's alone: the database,
// its WAL, the Raft log and snapshots hold records up to the highest classification, and SQLite
// and raft-wal create their files with the mode the umask leaves (0644 under the usual 022),
// whatever the data directory's own mode. The systemd unit sets UMask=0077 as well.
func privateFiles() { syscall.Umask(0o077) }
