//go:build !race

package spiretest

const raceEnabled = false
