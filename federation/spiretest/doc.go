// Package spiretest holds the SPIRE integration test: Knooppunt nodes that take their identity
// from real SPIRE v1.13.3 servers and agents, two orgs whose SPIRE servers federate, and SVIDs
// that rotate under traffic. It has no code of its own; spire_test.go starts SPIRE and the node
// processes, and needs the binaries that `make spire` builds.
package spiretest
