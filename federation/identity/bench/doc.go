// Package bench measures what the SPIFFE mTLS stack costs: a unary RecordService.Get on a real
// node over mTLS against plain grpc-go over the same TLS configuration, and full against resumed
// TLS 1.3 handshakes with the node's server configuration. It holds only benchmarks and the tests
// they rely on (in _test files); docs/performance.md gives the figures and the commands
// that reproduce them.
//
// bench never changes what it measures: it starts a node with node.Start and builds every TLS
// configuration with the identity package, exactly as a node and its clients do.
package bench
