package search

import "testing"

// TestReachError: grpc-go's message for a connection it could not make reads as the address
// and the reason, a handshake that did not finish or a host that does not resolve as what it
// means; any other message stays as it is.
func TestReachError(t *testing.T) {
	for msg, want := range map[string]string{
		`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:45839: connect: connection refused"`:       "cannot connect to 127.0.0.1:45839: connection refused",
		`connection error: desc = "transport: Error while dialing: dial tcp: lookup ncc.example on 127.0.0.53:53: no such host"`: "cannot find ncc.example: no such host (check the peer's address)",
		`connection error: desc = "transport: authentication handshake failed: context deadline exceeded"`:                       "the partner's node took the connection but did not finish the TLS handshake in time: it hangs, or is overloaded",
		`connection error: desc = "transport: authentication handshake failed: remote error: tls: bad certificate"`:              "the TLS handshake failed: remote error: tls: bad certificate (peer show NAME says what to check)",
		`connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.4:7443: i/o timeout"`:                         "cannot connect to 10.0.0.4:7443: i/o timeout",
		"the node is shutting down": "the node is shutting down",
	} {
		if got := reachError(msg); got != want {
			t.Errorf("reachError(%q) = %q, want %q", msg, got, want)
		}
	}
}
