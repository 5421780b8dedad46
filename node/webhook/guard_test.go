package webhook

import (
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/config"
)

// TestDialGuardChecksTheResolvedAddress: the guard judges the address a connection goes to,
// not the URL's name: a name that resolves to loopback or a private address (DNS rebinding) is
// refused like the address itself; loopback only for a URL that names it.
func TestDialGuardChecksTheResolvedAddress(t *testing.T) {
	for _, tc := range []struct {
		addr                  string
		loopbackOK, allowPriv bool
		refused               bool
	}{
		{"127.0.0.1:443", false, false, true},
		{"127.0.0.1:443", true, false, false},
		{"[::1]:443", false, true, true},
		{"10.0.0.7:443", false, false, true},
		{"10.0.0.7:443", false, true, false},
		{"172.16.3.4:443", false, false, true},
		{"192.168.1.1:443", false, false, true},
		{"169.254.169.254:80", false, false, true},
		{"100.64.0.1:443", false, false, true},
		{"[fd12::1]:443", false, false, true},
		{"[fe80::1]:443", false, false, true},
		{"0.0.0.0:443", true, true, true},
		{"224.0.0.1:443", false, true, true},
		{"[::ffff:10.0.0.1]:443", false, false, true},
		{"93.184.216.34:443", false, false, false},
		{"[2001:db8::1]:443", false, false, false},
		// IPv6 forms that carry an internal IPv4 address, and more internal IPv4 space
		// (review B, L3).
		{"[64:ff9b::a00:7]:443", false, false, true},      // NAT64 of 10.0.0.7
		{"[64:ff9b::7f00:1]:443", true, true, true},       // NAT64 of 127.0.0.1
		{"[64:ff9b:1::a9fe:a9fe]:80", false, false, true}, // local-use NAT64 of 169.254.169.254
		{"[2002:a00:7::1]:443", false, false, true},       // 6to4 of 10.0.0.7
		{"[::a00:7]:443", false, false, true},             // IPv4-compatible 10.0.0.7
		{"[64:ff9b::5db8:d822]:443", false, false, false}, // NAT64 of a public address
		{"[2002:a00:7::1]:443", false, true, false},       // allowed when private is
		{"192.0.0.170:443", false, false, true},
		{"198.18.0.1:443", false, false, true},
		{"0.1.2.3:443", false, true, true},
	} {
		err := dialGuard(tc.loopbackOK, tc.allowPriv)("tcp", tc.addr, nil)
		if (err != nil) != tc.refused || (err != nil && !errors.Is(err, ErrAddress)) {
			t.Errorf("%s (loopback ok %v, private ok %v): %v, want refused %v", tc.addr, tc.loopbackOK, tc.allowPriv, err, tc.refused)
		}
	}
}

// TestClientRefusesRebindingAndRedirects: a webhook client whose URL names a host that is not
// loopback never reaches a loopback receiver, whatever the name resolved to; and a redirect is
// answered back to the caller, not followed.
func TestClientRefusesRebindingAndRedirects(t *testing.T) {
	followed := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/next" {
			followed = true
			return
		}
		http.Redirect(w, r, "/next", http.StatusFound)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	set := config.Webhooks{Timeout: 2 * time.Second}
	// As if hooks.example.nl had resolved to 127.0.0.1: the URL does not name loopback.
	named := newClient(&url.URL{Scheme: "https", Host: "hooks.example.nl"}, set)
	if _, err := named.Post(srv.URL, "application/json", nil); !errors.Is(err, ErrAddress) {
		t.Fatalf("a non-loopback webhook dialled loopback: %v, want ErrAddress", err)
	}
	resp, err := newClient(u, set).Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || followed {
		t.Fatalf("redirect: status %d, followed %v: want the 302 back, not followed", resp.StatusCode, followed)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		t.Fatal(err)
	}
}

// TestBackoff: the wait doubles from min to max, with jitter within its upper half.
func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 12: time.Minute} {
		for range 50 {
			got := Backoff(n, time.Second, time.Minute)
			if got < want/2 || got > want {
				t.Fatalf("Backoff(%d) = %s, want within [%s, %s]", n, got, want/2, want)
			}
		}
	}
}

// TestClientTrustsTheConfiguredCA: a receiver whose certificate chains to an org's own CA is
// reached once webhooks.ca_file names that CA, and refused (unknown authority) without it; a
// ca_file that holds no certificate is a config error that names the field.
func TestClientTrustsTheConfiguredCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(caFile string) (*config.Config, error) {
		path := filepath.Join(dir, "node.yaml")
		if err := os.WriteFile(path, []byte("webhooks:\n  ca_file: "+caFile+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return config.Load(path)
	}
	cfg, err := load("ca.pem") // relative to the config file
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL)
	resp, err := newClient(u, cfg.Webhooks).Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatalf("with webhooks.ca_file: %v", err)
	}
	resp.Body.Close()
	set := cfg.Webhooks
	set.Roots = nil
	if _, err := newClient(u, set).Post(srv.URL, "application/json", nil); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("without webhooks.ca_file: %v, want an unknown authority", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := load("junk.pem"); err == nil || !strings.Contains(err.Error(), "webhooks.ca_file") || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatalf("a ca_file without a certificate: %v", err)
	}
}
