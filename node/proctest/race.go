//go:build race

package proctest

// race is true when the tests, and so the binary Build makes, have the race detector.
const race = true
