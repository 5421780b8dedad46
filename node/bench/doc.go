// Package bench measures a node's write path against raw SQLite, and a loaded node's List latency
// and footprint. It holds only benchmarks and their helpers (in _test files); docs/performance.md
// says what each figure means and the command that reproduces it.
//
// bench never changes what it measures: it drives a node through its local gRPC socket exactly
// as a client would, and opens the node's packages only to read sizes.
package bench
