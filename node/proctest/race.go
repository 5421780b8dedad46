//go:build race

package proctest

const race = true
