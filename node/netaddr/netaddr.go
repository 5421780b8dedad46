// Package netaddr checks the host:port addresses a node is given: those it dials or hands to
// others (a peer, a replica's advertise address, an invitation's addresses), and those it
// listens on. One check serves the config, the command line, Raft and invitations alike.
package netaddr

import (
	"net"
	"strconv"
	"strings"
	"unicode"

	"github.com/knooppunt/knooppunt/policy"
)

// MaxLen bounds an address: a DNS name is at most 253 bytes, and the port adds at most six.
const MaxLen = 259

// Dial splits an address another process dials: a host that is not empty, holds no space (of
// any kind, such as U+00A0) and no hidden character, and a port from 1 to 65535.
func Dial(addr string) (host string, port int, ok bool) {
	host, port, ok = split(addr)
	return host, port, ok && host != "" && port >= 1
}

// Listen splits an address to listen on: the host may be empty (every interface), and port 0
// lets the system pick one.
func Listen(addr string) (host string, port int, ok bool) {
	return split(addr)
}

func split(addr string) (string, int, bool) {
	if len(addr) > MaxLen {
		return "", 0, false
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil || p == "" || strings.TrimLeft(p, "0123456789") != "" {
		return "", 0, false
	}
	port, err := strconv.Atoi(p)
	if err != nil || port > 65535 || strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || policy.Hidden(r) }) {
		return "", 0, false
	}
	return host, port, true
}
