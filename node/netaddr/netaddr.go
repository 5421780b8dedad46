// Package netaddr checks the host:port addresses a node is given: those it dials or hands to
// others (a peer, a replica's advertise address, an invitation's addresses), and those it
// listens on. One check serves the config, the command line, Raft and invitations alike, and
// says what is wrong with an address, so that each message names the part to fix.
package netaddr

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/knooppunt/knooppunt/policy"
)

// MaxLen bounds an address: a DNS name is at most 253 bytes, and the port adds at most six.
const MaxLen = 259

// Dial splits an address another process dials: a host that is not empty, holds no space (of
// any kind, such as U+00A0) and no hidden character, and a port from 1 to 65535. The error
// says what is wrong, as words that follow the address in a message.
func Dial(addr string) (host string, port int, err error) {
	if host, port, err = split(addr, 1); err == nil && host == "" {
		err = errors.New("no host before the port: name the host others reach it at")
	}
	return host, port, err
}

// Listen splits an address to listen on: the host may be empty (every interface), and port 0
// lets the system pick one.
func Listen(addr string) (host string, port int, err error) {
	return split(addr, 0)
}

// ListenFixed splits an address to listen on at a port that others are told in advance (an
// invitation names it): as Listen, but the port is from 1 to 65535.
func ListenFixed(addr string) (host string, port int, err error) {
	return split(addr, 1)
}

func split(addr string, minPort int) (string, int, error) {
	if len(addr) > MaxLen {
		return "", 0, fmt.Errorf("%d bytes, over the limit of %d", len(addr), MaxLen)
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		if ae := (*net.AddrError)(nil); errors.As(err, &ae) {
			switch ae.Err {
			case "missing port in address":
				return "", 0, errors.New("no port")
			case "too many colons in address":
				return "", 0, errors.New("too many colons (an IPv6 address goes in brackets, such as [::1]:7443)")
			}
		}
		return "", 0, errors.New("its brackets do not enclose the host")
	}
	if p == "" {
		return "", 0, errors.New("no port after the colon")
	}
	port, err := strconv.Atoi(p)
	if strings.TrimLeft(p, "0123456789") != "" || err != nil || port < minPort || port > 65535 {
		return "", 0, fmt.Errorf("the port %s is not a number from %d to 65535", policy.Quote(p), minPort)
	}
	if i := strings.IndexFunc(host, func(r rune) bool { return unicode.IsSpace(r) || policy.Hidden(r) }); i >= 0 {
		r, _ := utf8.DecodeRuneInString(host[i:])
		if r == ' ' {
			return "", 0, errors.New("the host holds a space")
		}
		return "", 0, fmt.Errorf("the host holds %U, a space or hidden character", r)
	}
	return host, port, nil
}
