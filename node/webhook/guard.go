package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"syscall"

	"github.com/knooppunt/knooppunt/node/config"
)

// Errors of CheckURL, of the dial guard and of a receiver's answer. A delivery refused with one
// of them (but ErrURL) becomes a dead letter at once: trying again changes nothing until the
// webhook, the config or the receiver does.
var (
	ErrURL       = errors.New("webhook: url")
	ErrAddress   = errors.New("webhook: address refused")
	ErrRedirect  = errors.New("webhook: the receiver answered with a redirect, which is not followed")
	ErrNoReshare = errors.New("webhook: no re-share")
	ErrRejected  = errors.New("webhook: the receiver rejected the delivery")
)

// CheckURL checks a webhook's URL before it is stored: HTTPS, or HTTP to loopback only; no user
// name or password; an IP address only if it is a public one (or private with allowPrivate);
// and never a host of another organisation, which would receive records the node may not pass
// on (see OtherOrg). Names are checked again, as addresses, when they are dialled.
func CheckURL(raw string, allowPrivate bool, peers []config.Peer) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%w: %q is not an absolute URL, such as https://hooks.example.nl/knooppunt", ErrURL, raw)
	}
	host := u.Hostname()
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && config.IsLoopback(host):
	default:
		return fmt.Errorf("%w: %q: use https (plain http only to loopback, such as http://127.0.0.1:8080/hook)", ErrURL, raw)
	}
	if u.User != nil {
		return fmt.Errorf("%w: %q holds a user name or password: put credentials in the receiver's check of the signature instead", ErrURL, raw)
	}
	if u.Fragment != "" {
		return fmt.Errorf("%w: %q has a #fragment, which is never sent: leave it out", ErrURL, raw)
	}
	if ip, err := netip.ParseAddr(host); err == nil && !config.IsLoopback(host) {
		if err := checkAddr(ip, allowPrivate); err != nil {
			return err
		}
	}
	if org := OtherOrg(host, peers); org != "" {
		return fmt.Errorf("%w: %q is a host of peer %s: webhooks deliver to this organisation's own systems only; share with a peer through a policy", ErrNoReshare, raw, org)
	}
	return nil
}

// OtherOrg returns the trust domain of the peer whose host this is, or "": the host is the
// peer's trust domain or a name under it, or the host of one of the peer's addresses or of its
// bundle endpoint. Loopback is this machine, never another organisation's, even when a peer's
// node runs on it too (as in the demo).
func OtherOrg(host string, peers []config.Peer) string {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || config.IsLoopback(host) {
		return ""
	}
	for _, p := range peers {
		td := strings.ToLower(p.TrustDomain)
		if td != "" && (host == td || strings.HasSuffix(host, "."+td)) {
			return p.TrustDomain
		}
		hosts := make([]string, 0, len(p.Addresses)+1)
		for _, a := range p.Addresses {
			if h, _, err := net.SplitHostPort(a); err == nil {
				hosts = append(hosts, h)
			}
		}
		if u, err := url.Parse(p.BundleEndpoint); err == nil && u.Host != "" {
			hosts = append(hosts, u.Hostname())
		}
		for _, h := range hosts {
			if strings.EqualFold(strings.TrimSuffix(h, "."), host) {
				return p.TrustDomain
			}
		}
	}
	return ""
}

// checkAddr refuses addresses a webhook must not reach: unspecified, multicast and broadcast
// always; private, link-local (cloud metadata at 169.254.169.254) and unique-local unless
// allowed.
func checkAddr(ip netip.Addr, allowPrivate bool) error {
	ip = ip.Unmap()
	if v4, ok := embeddedIPv4(ip); ok {
		// NAT64, 6to4 and the old IPv4-compatible form reach the IPv4 address they carry.
		if v4.IsLoopback() {
			return fmt.Errorf("%w: %s carries the loopback address %s", ErrAddress, ip, v4)
		}
		if err := checkAddr(v4, allowPrivate); err != nil {
			return fmt.Errorf("%w (carried in %s)", err, ip)
		}
		return nil
	}
	switch {
	case ip.IsUnspecified(), ip.IsMulticast(), ip.IsInterfaceLocalMulticast(), ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%w: %s is not a receiver's address", ErrAddress, ip)
	case thisNetwork.Contains(ip):
		return fmt.Errorf("%w: %s is not a receiver's address", ErrAddress, ip)
	case !allowPrivate && (ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || slices.ContainsFunc(internalSpace, func(p netip.Prefix) bool { return p.Contains(ip) })):
		return fmt.Errorf("%w: %s is a private address: set webhooks.allow_private in the config to deliver inside the network", ErrAddress, ip)
	}
	return nil
}

// internalSpace is as internal as the private ranges: carrier-grade NAT space (RFC 6598), the
// IETF's protocol assignments (192.0.0.0/24) and the benchmarking range (198.18.0.0/15).
var internalSpace = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("192.0.0.0/24"), netip.MustParsePrefix("198.18.0.0/15"),
}

// thisNetwork is "this network" (0.0.0.0/8): no receiver's.
var thisNetwork = netip.MustParsePrefix("0.0.0.0/8")

// IPv6 prefixes that carry an IPv4 address: NAT64's well-known and local-use prefixes (in the
// last 32 bits), 6to4 (in bits 16 to 47), and the deprecated IPv4-compatible form (::a.b.c.d).
var (
	nat64     = []netip.Prefix{netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("64:ff9b:1::/48")}
	sixToFour = netip.MustParsePrefix("2002::/16")
	v4Compat  = netip.MustParsePrefix("::/96")
)

// embeddedIPv4 is the IPv4 address an IPv6 address of those prefixes carries.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() || ip.IsUnspecified() || ip.IsLoopback() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	switch {
	case slices.ContainsFunc(nat64, func(p netip.Prefix) bool { return p.Contains(ip) }), v4Compat.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// dialGuard checks the address a connection is about to reach, after the name was resolved, so
// that a name that resolves to an internal address (DNS rebinding) is refused like the address
// itself. Loopback is allowed only to a webhook whose URL names loopback.
func dialGuard(loopbackOK, allowPrivate bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrAddress, address, err)
		}
		ip := ap.Addr().Unmap()
		if ip.IsLoopback() {
			if loopbackOK {
				return nil
			}
			return fmt.Errorf("%w: %s is loopback, but the webhook's URL does not name loopback", ErrAddress, ip)
		}
		return checkAddr(ip, allowPrivate)
	}
}
