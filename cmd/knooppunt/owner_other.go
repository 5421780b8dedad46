//go:build !unix

package main

// fileOwner cannot tell a file's owner here.
func fileOwner(string) (uid int, name string, ok bool) { return 0, "", false }
