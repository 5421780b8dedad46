//go:build !race

package clusterproc

const raceEnabled = false
