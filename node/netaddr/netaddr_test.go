package netaddr_test

import (
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/netaddr"
)

func TestDialAndListen(t *testing.T) {
	for _, c := range []struct {
		addr         string
		dial, listen bool
	}{
		{"knooppunt.vr-utrecht.nl:7443", true, true},
		{"127.0.0.1:1", true, true},
		{"[::1]:65535", true, true},
		{":7443", false, true},               // every interface: listen only
		{"0.0.0.0:0", false, true},           // a port the system picks: listen only
		{"host:65536", false, false},         // beyond the ports
		{"host:+7443", false, false},         // a sign
		{"host:-1", false, false},            // a sign
		{"host:", false, false},              // no port
		{"host", false, false},               // no port
		{"a b:7443", false, false},           // a space
		{"a\u200bb:7443", false, false},      // a zero-width space
		{"evil\u202e.nl:7443", false, false}, // a bidirectional control
		{"a\tb:7443", false, false},          // a control character
		{strings.Repeat("a", netaddr.MaxLen) + ":1", false, false},
	} {
		if _, _, ok := netaddr.Dial(c.addr); ok != c.dial {
			t.Errorf("Dial(%q) ok %v, want %v", c.addr, ok, c.dial)
		}
		if _, _, ok := netaddr.Listen(c.addr); ok != c.listen {
			t.Errorf("Listen(%q) ok %v, want %v", c.addr, ok, c.listen)
		}
	}
	if host, port, ok := netaddr.Dial("[::1]:7444"); !ok || host != "::1" || port != 7444 {
		t.Errorf("Dial([::1]:7444) = %q, %d, %v", host, port, ok)
	}
}
