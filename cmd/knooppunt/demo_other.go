//go:build !linux

package main

import "syscall"

// demoNodeAttr puts a demo node in a process group of its own, so that the terminal's Ctrl-C
// reaches the demo alone, which stops its nodes in order.
func demoNodeAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
