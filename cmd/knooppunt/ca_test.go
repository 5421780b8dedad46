package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

// TestCAJWTAndDNS: `ca jwt` mints a JWT-SVID that verifies against the jwt-bundle.json it writes
// the first time, for the audience asked; `ca issue --dns` adds DNS names besides the SPIFFE ID.
func TestCAJWTAndDNS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	const td = "vr-utrecht.crisis.test"
	cli(t, nil, "", "ca", "init", "--trust-domain", td, "--dir", dir).want(t, 0)

	aud := "spiffe://" + td + "/node/r1"
	first := cli(t, nil, "", "ca", "jwt", "--dir", dir, "--id", "spiffe://"+td+"/user/rita", "--audience", aud).want(t, 0)
	if !strings.Contains(first.stderr, "jwt-bundle.json") {
		t.Errorf("the first ca jwt does not say where the bundle is: %q", first.stderr)
	}
	second := cli(t, nil, "", "ca", "jwt", "--dir", dir, "--id", "spiffe://"+td+"/user/erik", "--audience", aud).want(t, 0)
	if second.stderr != "" {
		t.Errorf("the second ca jwt made a key again: %q", second.stderr)
	}
	b, err := spiffebundle.Load(spiffeid.RequireTrustDomainFromString(td), filepath.Join(dir, "jwt-bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	for user, out := range map[string]string{"rita": first.stdout, "erik": second.stdout} {
		svid, err := jwtsvid.ParseAndValidate(strings.TrimSpace(out), b, []string{aud})
		if err != nil || svid.ID.String() != "spiffe://"+td+"/user/"+user {
			t.Errorf("%s's token: %v, %v", user, svid, err)
		}
	}
	res := cli(t, nil, "", "ca", "jwt", "--dir", dir, "--id", "spiffe://ncc.crisis.test/user/x", "--audience", aud)
	if res.code == 0 || !strings.Contains(res.stderr, "not in the trust domain") {
		t.Errorf("a token for another trust domain: exit %d, %q", res.code, res.stderr)
	}

	out := filepath.Join(t.TempDir(), "r1")
	cli(t, nil, "", "ca", "issue", "--dir", dir, "--id", aud, "--out", out, "--dns", "localhost,knooppunt.vr-utrecht.nl,192.0.2.7").want(t, 0)
	cert := certFile(t, out+".crt")
	if strings.Join(cert.DNSNames, ",") != "localhost,knooppunt.vr-utrecht.nl" || len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != "192.0.2.7" ||
		len(cert.URIs) != 1 || cert.URIs[0].String() != aud {
		t.Errorf("SANs: DNS %v, IP %v, URIs %v", cert.DNSNames, cert.IPAddresses, cert.URIs)
	}
}

// TestCATTLMustBePositive: a --ttl of 0 or less is refused, naming the flag, rather than said
// back while the certificate gets a default lifetime.
func TestCATTLMustBePositive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	const td = "vr-utrecht.crisis.test"
	if r := cli(t, nil, "", "ca", "init", "--trust-domain", td, "--dir", dir, "--ttl", "-1h").want(t, 1); !strings.HasPrefix(r.stderr, "knooppunt: --ttl: -1h0m0s: use a positive duration") {
		t.Errorf("ca init --ttl -1h: %q", r.stderr)
	}
	cli(t, nil, "", "ca", "init", "--trust-domain", td, "--dir", dir).want(t, 0)
	for _, ttl := range []string{"-1h", "0s"} {
		out := filepath.Join(t.TempDir(), "anna")
		r := cli(t, nil, "", "ca", "issue", "--dir", dir, "--id", "spiffe://"+td+"/user/anna", "--out", out, "--ttl", ttl).want(t, 1)
		if !strings.HasPrefix(r.stderr, "knooppunt: --ttl: ") {
			t.Errorf("ca issue --ttl %s: %q", ttl, r.stderr)
		}
		if _, err := os.Stat(out + ".crt"); err == nil {
			t.Errorf("ca issue --ttl %s wrote a certificate", ttl)
		}
		r = cli(t, nil, "", "ca", "jwt", "--dir", dir, "--id", "spiffe://"+td+"/user/anna", "--audience", "spiffe://"+td+"/node/r1", "--ttl", ttl).want(t, 1)
		if !strings.HasPrefix(r.stderr, "knooppunt: --ttl: ") {
			t.Errorf("ca jwt --ttl %s: %q", ttl, r.stderr)
		}
	}
}
