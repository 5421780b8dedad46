package netaddr_test

import (
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/netaddr"
)

// TestDialAndListen: what each check accepts, and for what it refuses, the words that say why.
func TestDialAndListen(t *testing.T) {
	long := strings.Repeat("a", netaddr.MaxLen) + ":1"
	for _, c := range []struct {
		addr         string
		dial, listen string // "" accepted, else the reason
	}{
		{"knooppunt.vr-utrecht.nl:7443", "", ""},
		{"127.0.0.1:1", "", ""},
		{"[::1]:65535", "", ""},
		{":7443", "no host before the port: name the host others reach it at", ""}, // every interface: listen only
		{"0.0.0.0:0", `the port "0" is not a number from 1 to 65535`, ""},          // a port the system picks: listen only
		{"host:65536", `the port "65536" is not a number from 1 to 65535`, `the port "65536" is not a number from 0 to 65535`},
		{"host:+7443", `the port "+7443" is not a number from 1 to 65535`, `the port "+7443" is not a number from 0 to 65535`},
		{"host:-1", `the port "-1" is not a number from 1 to 65535`, `the port "-1" is not a number from 0 to 65535`},
		{"host:", "no port after the colon", "no port after the colon"},
		{"host", "no port", "no port"},
		{"::1:7443", "too many colons (an IPv6 address goes in brackets, such as [::1]:7443)", "too many colons (an IPv6 address goes in brackets, such as [::1]:7443)"},
		{"[::1:7443", "its brackets do not enclose the host", "its brackets do not enclose the host"},
		{"a b:7443", "the host holds a space", "the host holds a space"},
		{"a\u00a0b:7443", "the host holds U+00A0, a space or hidden character", "the host holds U+00A0, a space or hidden character"},
		{"a\u200bb:7443", "the host holds U+200B, a space or hidden character", "the host holds U+200B, a space or hidden character"},
		{"evil\u202e.nl:7443", "the host holds U+202E, a space or hidden character", "the host holds U+202E, a space or hidden character"},
		{"a\tb:7443", "the host holds U+0009, a space or hidden character", "the host holds U+0009, a space or hidden character"},
		{long, "261 bytes, over the limit of 259", "261 bytes, over the limit of 259"},
	} {
		if _, _, err := netaddr.Dial(c.addr); reason(err) != c.dial {
			t.Errorf("Dial(%q): %q, want %q", c.addr, reason(err), c.dial)
		}
		if _, _, err := netaddr.Listen(c.addr); reason(err) != c.listen {
			t.Errorf("Listen(%q): %q, want %q", c.addr, reason(err), c.listen)
		}
		// A fixed port is as Dial's, on any host.
		want := c.dial
		if c.addr == ":7443" {
			want = ""
		}
		if _, _, err := netaddr.ListenFixed(c.addr); reason(err) != want {
			t.Errorf("ListenFixed(%q): %q, want %q", c.addr, reason(err), want)
		}
	}
	if host, port, err := netaddr.Dial("[::1]:7444"); err != nil || host != "::1" || port != 7444 {
		t.Errorf("Dial([::1]:7444) = %q, %d, %v", host, port, err)
	}
}

func reason(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
