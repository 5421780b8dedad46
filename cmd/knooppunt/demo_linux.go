package main

import "syscall"

// demoNodeAttr puts a demo node in a process group of its own, so that the terminal's Ctrl-C
// reaches the demo alone, which stops its nodes in order; and has the kernel stop the node should
// the demo end without doing so (a second Ctrl-C, a kill), so that no node runs on without it.
func demoNodeAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
