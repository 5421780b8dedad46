//go:build unix && !race

package attach

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// limitMemory bounds the process's address space to what it maps already and bytes more: an
// allocation past it fails, and the process with it. The Go runtime and the C threads of a cgo
// binary map hundreds of megabytes of address space before they use any of it, so the bound
// counts from there.
func limitMemory(bytes uint64) {
	var used uint64
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			pages, _ := strconv.ParseUint(f[0], 10, 64)
			used = pages * uint64(os.Getpagesize())
		}
	}
	limit := used + bytes
	_ = syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: limit, Max: limit})
}

// limitCPU bounds the CPU time the process may use: past it, the system ends it.
func limitCPU(d time.Duration) {
	secs := uint64(d / time.Second)
	_ = syscall.Setrlimit(syscall.RLIMIT_CPU, &syscall.Rlimit{Cur: secs, Max: secs + 1})
}
