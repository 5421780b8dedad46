package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/proctest"
)

// freeAddrs returns n loopback addresses with ports free now. Another process may take one
// before the node binds it; the node then stops with an error naming the address, and the test
// says so, rather than hanging. The ports are below the kernel's range of ephemeral ports
// (32768 and up), from which every outgoing connection of the other tests takes its own: a port
// that :0 gave was taken so before the node bound it, in a CI run.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	for tries := 0; len(out) < n; tries++ {
		if tries == 1000 {
			t.Fatalf("no free port below 32768 in %d tries", tries)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// initOrg runs `knooppunt init --dev-ca` for td in a new directory, with loopback ports, and
// returns the data directory and its mTLS address.
func initOrg(t *testing.T, td, name string, extra ...string) (dataDir, addr string) {
	t.Helper()
	dataDir, addr, _ = initOrgSaying(t, td, name, extra...)
	return dataDir, addr
}

// initOrgSaying is initOrg, and what init printed.
func initOrgSaying(t *testing.T, td, name string, extra ...string) (dataDir, addr, said string) {
	t.Helper()
	dataDir = filepath.Join(shortDir(t), "d")
	a := freeAddrs(t, 3)
	args := append([]string{"init", "--org", td, "--name", name, "--dev-ca", "--data-dir", dataDir,
		"--host", "127.0.0.1", "--listen", a[0], "--bundle-listen", a[1], "--metrics-addr", a[2], "--admin", "ops"}, extra...)
	return dataDir, a[0], cli(t, nil, "", args...).want(t, 0).stdout
}

// serveInit starts `serve` on a directory that init made and waits until it answers.
func serveInit(t *testing.T, dataDir string) *proctest.Proc {
	t.Helper()
	p := proctest.Start(t, nil, "serve", "--data-dir", dataDir, "--config", filepath.Join(dataDir, configName), "--log-level", "warn")
	waitServing(t, p, filepath.Join(dataDir, node.SocketName))
	return p
}

// TestInitThenServe: a data directory from `init --dev-ca` starts as it is, answers on its
// socket and over mTLS as the admin init named, and init refuses to touch it again.
func TestInitThenServe(t *testing.T) {
	dataDir, addr, said := initOrgSaying(t, "vr-brabant-noord.crisis.test", "VR Brabant-Noord", "--officer", "anna", "--officer", "bram")
	cfg, err := os.ReadFile(filepath.Join(dataDir, configName))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"org: vr-brabant-noord.crisis.test",
		"{id: spiffe://vr-brabant-noord.crisis.test/user/ops, role: admin}",
		"{id: spiffe://vr-brabant-noord.crisis.test/user/anna, role: officer}",
		"{id: spiffe://vr-brabant-noord.crisis.test/user/bram, role: officer}",
		"source: files",
	} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("node.yaml lacks %q:\n%s", want, cfg)
		}
	}
	// The data directory alone: its node.yaml is the config, not the demo defaults (review25 F2).
	p := proctest.Start(t, nil, "serve", "--data-dir", dataDir, "--log-level", "warn")
	waitServing(t, p, filepath.Join(dataDir, node.SocketName))

	sock := "unix://" + filepath.Join(dataDir, node.SocketName)
	var st map[string]any
	cli(t, nil, "", "status", "--node", sock, "-o", "json").want(t, 0).oneJSON(t, &st)
	if st["org"] != "vr-brabant-noord.crisis.test" || st["node_name"] != "VR Brabant-Noord" {
		t.Fatalf("status over the socket = %v", st)
	}
	certs := filepath.Join(dataDir, "certs")
	mtls := []string{"--node", addr, "--svid-cert", filepath.Join(certs, "ops.crt"), "--svid-key", filepath.Join(certs, "ops.key"),
		"--bundle", filepath.Join(dataDir, "ca", "bundle.pem")}
	cli(t, nil, "", append([]string{"status", "-o", "json"}, mtls...)...).want(t, 0).oneJSON(t, &st)
	if st["org"] != "vr-brabant-noord.crisis.test" {
		t.Fatalf("status over mTLS as the admin = %v", st)
	}
	// The variables init prints to act as a person do, with NAME filled in.
	var env []string
	for _, line := range strings.Split(said, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "export "); ok {
			env = append(env, strings.Fields(strings.ReplaceAll(rest, "NAME", "anna"))...)
		}
	}
	if len(env) != 4 {
		t.Fatalf("init prints %d variables to act as a person, want 4:\n%s", len(env), said)
	}
	cli(t, env, "", "status", "-o", "json").want(t, 0).oneJSON(t, &st)
	if st["org"] != "vr-brabant-noord.crisis.test" {
		t.Fatalf("status with the variables init printed = %v", st)
	}

	// init never overwrites: not the running node's directory, and nothing in it changes.
	before, _ := os.ReadFile(filepath.Join(dataDir, configName))
	r := cli(t, nil, "", "init", "--org", "other.crisis.test", "--name", "Other", "--dev-ca", "--data-dir", dataDir).want(t, 1)
	if !strings.Contains(r.stderr, "is not empty") || !strings.Contains(r.stderr, "init never overwrites") {
		t.Fatalf("second init: stderr %q", r.stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(dataDir, configName)); string(after) != string(before) {
		t.Fatal("a refused init changed node.yaml")
	}
}

// certFile is the first certificate of a PEM file.
func certFile(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s holds no PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestInitNodeSVIDNamesTheHost: the node's development SVID names --host as a DNS name, so that
// curl and partner systems accept it on the REST API, which the config init writes offers, with
// federation.purpose and the web interface, commented out; with their #s removed, the config loads.
func TestInitNodeSVIDNamesTheHost(t *testing.T) {
	dataDir := filepath.Join(shortDir(t), "d")
	cli(t, nil, "", "init", "--org", "ggd.crisis.test", "--name", "GGD", "--dev-ca", "--data-dir", dataDir, "--host", "localhost",
		"--listen", "127.0.0.1:7443", "--bundle-listen", "127.0.0.1:7444").want(t, 0)
	cert := certFile(t, filepath.Join(dataDir, "certs", "r1.crt"))
	if !slices.Equal(cert.DNSNames, []string{"localhost"}) || len(cert.URIs) != 1 || cert.URIs[0].String() != "spiffe://ggd.crisis.test/node/r1" {
		t.Fatalf("the node's SVID names %v and %v, want the SPIFFE ID and localhost", cert.URIs, cert.DNSNames)
	}
	// An IP address as the host is named as one, which a client that connects to it checks.
	ipDir := filepath.Join(shortDir(t), "d")
	cli(t, nil, "", "init", "--org", "ggd.crisis.test", "--name", "GGD", "--dev-ca", "--data-dir", ipDir, "--host", "127.0.0.1",
		"--listen", "127.0.0.1:7443", "--bundle-listen", "127.0.0.1:7444").want(t, 0)
	ipCert := certFile(t, filepath.Join(ipDir, "certs", "r1.crt"))
	if err := ipCert.VerifyHostname("127.0.0.1"); err != nil || len(ipCert.DNSNames) != 0 {
		t.Errorf("with --host 127.0.0.1 the node's SVID names DNS %v and IP %v: %v", ipCert.DNSNames, ipCert.IPAddresses, err)
	}
	cfg, _ := os.ReadFile(filepath.Join(dataDir, configName))
	for _, want := range []string{"# http:\n#   listen: ", "# ui:\n#   listen: ", "# federation:\n#   purpose: "} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("node.yaml lacks %q:\n%s", want, cfg)
		}
	}
	// With their #s removed, as the comments say, the sections make a config the node takes.
	var on []string
	section := false
	for _, line := range strings.Split(string(cfg), "\n") {
		switch {
		case line == "# http:" || line == "# ui:" || line == "# federation:":
			section, line = true, line[2:]
		case section && strings.HasPrefix(line, "#   "):
			line = line[2:]
		default:
			section = false
		}
		on = append(on, line)
	}
	uncommented := filepath.Join(dataDir, "uncommented.yaml")
	if err := os.WriteFile(uncommented, []byte(strings.Join(on, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(uncommented)
	if err != nil {
		t.Fatalf("node.yaml with its commented sections on: %v", err)
	}
	if c.HTTP.Listen == "" || c.UI.Listen == "" || c.UI.OIDC.Issuer == "" || c.Federation.Purpose == "" {
		t.Errorf("the sections on: http %+v, ui %+v, federation %+v", c.HTTP, c.UI, c.Federation)
	}
}

// TestInitRefuses: bad flags name what to fix, and leave no directory behind.
func TestInitRefuses(t *testing.T) {
	dir := shortDir(t)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no identity", []string{"--org", "a.crisis.test", "--name", "A"}, "give --dev-ca"},
		{"two identities", []string{"--org", "a.crisis.test", "--name", "A", "--dev-ca", "--spire", "unix:///x.sock"}, "one of them"},
		{"bad org", []string{"--org", "A B", "--name", "A", "--dev-ca"}, `--org "A B" is not a trust domain`},
		{"no port", []string{"--org", "a.crisis.test", "--name", "A", "--dev-ca", "--listen", "0.0.0.0"}, "--listen"},
		{"no such port", []string{"--org", "a.crisis.test", "--name", "A", "--dev-ca", "--listen", "127.0.0.1:99999"}, `--listen "127.0.0.1:99999": the port "99999" is not a number from 1 to 65535: give host:port with a fixed port from 1 to 65535`},
		{"host with a space", []string{"--org", "a.crisis.test", "--name", "A", "--dev-ca", "--host", "a b"}, `--host "a b": the host holds a space: give the host name or IP address`},
		{"officer twice", []string{"--org", "a.crisis.test", "--name", "A", "--dev-ca", "--admin", "ops", "--officer", "anna", "--officer", "anna"}, "named twice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
			r := cli(t, nil, "", append([]string{"init", "--data-dir", d}, c.args...)...).want(t, 1)
			if !strings.Contains(r.stderr, c.want) {
				t.Fatalf("stderr %q, want it to contain %q", r.stderr, c.want)
			}
			if _, err := os.Stat(d); err == nil {
				t.Fatalf("a refused init made %s", d)
			}
		})
	}
}

// TestInitSpire: with --spire the config takes the node's SVID from the Workload API, names the
// replica's SPIFFE ID, loads, and init prints the SPIRE entries to register.
func TestInitSpire(t *testing.T) {
	dataDir := filepath.Join(shortDir(t), "d")
	r := cli(t, nil, "", "init", "--org", "vr-brabant-noord.crisis.test", "--name", "VR Brabant-Noord", "--spire", "unix:///run/spire/agent.sock",
		"--data-dir", dataDir, "--host", "node1.vrbn.example", "--admin", "ops").want(t, 0)
	// The node's selector is the user it runs as: never root's uid, which would hand its SVID
	// to every root process.
	runAs := fmt.Sprintf("-selector unix:uid:%d\n", os.Getuid())
	if os.Geteuid() == 0 {
		runAs = "-selector unix:user:knooppunt\n"
	}
	for _, want := range []string{
		"spire-server entry create -spiffeID spiffe://vr-brabant-noord.crisis.test/node/r1 -parentID <agent ID> " + runAs,
		"spire-server entry create -spiffeID spiffe://vr-brabant-noord.crisis.test/user/ops -parentID <agent ID> -selector unix:user:ops",
		"knooppunt serve --data-dir " + dataDir,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("init --spire does not print %q:\n%s", want, r.stdout)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(dataDir, configName))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"source: workloadapi", "workload_api: unix:///run/spire/agent.sock", "spiffe_id: spiffe://vr-brabant-noord.crisis.test/node/r1",
		`advertise: ["node1.vrbn.example:7443"]`, `url: "https://node1.vrbn.example:8443"`,
		"# - {id: spiffe://vr-brabant-noord.crisis.test/user/OFFICER1, role: officer}",
	} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("node.yaml lacks %q:\n%s", want, cfg)
		}
	}
	if entries, _ := os.ReadDir(dataDir); len(entries) != 1 {
		t.Errorf("init --spire made more than the config: %v", entries)
	}
}
