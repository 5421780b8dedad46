//go:build !unix || race

package attach

import "time"

// limitMemory is a no-op where the system has no address-space limit, and in a build with the
// race detector, whose shadow memory reserves terabytes of address space: the Go memory limit,
// the runtime's own failure on an absurd allocation and the parent's timeout are the bounds
// there.
func limitMemory(uint64) {}

// limitCPU is limitCPU of limit_unix.go where that build is not made; the child's own timer
// (ServeExtract) still ends it.
func limitCPU(time.Duration) {}
