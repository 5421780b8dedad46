//go:build race

package spiretest

// raceEnabled builds the node processes with the race detector too.
const raceEnabled = true
