package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/netaddr"
)

// configName is the config file `init` writes into the data directory.
const configName = "node.yaml"

// devNodeSVIDTTL is how long the node's SVID from `init --dev-ca` lives: a trial node should not
// stop trusting itself after a day, and files are reloaded when re-issued.
const devNodeSVIDTTL = 90 * 24 * time.Hour

// initOptions are the flags of `knooppunt init`.
type initOptions struct {
	org, name, dataDir, spire, admin                    string
	devCA                                               bool
	listen, bundleListen, host, metricsAddr, replica    string
	officers                                            []string
	stdout                                              io.Writer
	listenPort, bundlePort, address, bundleURL, adminID string
}

var userName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

func newInitCmd() *cobra.Command {
	o := initOptions{}
	cmd := &cobra.Command{
		Use:   "init --org TD --name NAME (--spire SOCKET | --dev-ca)",
		Short: "Make a data directory and a complete config for a new organisation's node",
		Long: `Make a data directory with a complete node config (DIR/node.yaml): the org's trust domain
and name, the identity (the SPIRE Workload API, or a development CA for a first trial), the
built-in kinds, metrics, a bundle endpoint for peers, you as the first admin and a place for the
two security officers. With --dev-ca it also makes the CA (DIR/ca) and SVIDs (DIR/certs) for the
node, for you and for the officers named with --officer.

It refuses to overwrite anything: the data directory must not exist, or be empty. It prints what
to do next; docs/onboarding.md has the whole way to a first shared record.`,
		Example: `  knooppunt init --org vr-brabant-noord.crisis.test --name "VR Brabant-Noord" --dev-ca \
      --host node1.vrbn.example --officer anna --officer bram
  knooppunt init --org vr-brabant-noord.crisis.test --name "VR Brabant-Noord" \
      --spire unix:///run/spire/agent/public/api.sock --data-dir /var/lib/knooppunt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.stdout = cmd.OutOrStdout()
			return o.run()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.org, "org", "", "the organisation's SPIFFE trust domain, such as vr-brabant-noord.crisis.test (required)")
	f.StringVar(&o.name, "name", "", "the organisation's name, shown to peers (required)")
	f.StringVar(&o.dataDir, "data-dir", "knooppunt-data", "the data directory to make; it must not exist or be empty")
	f.StringVar(&o.spire, "spire", "", "identity from this SPIRE agent's Workload API socket, unix:///path")
	f.BoolVar(&o.devCA, "dev-ca", false, "identity from a development CA made in DIR/ca (a first trial, not production)")
	f.StringVar(&o.admin, "admin", "", "your user name: spiffe://TD/user/NAME becomes the first admin (default: your login name)")
	f.StringArrayVar(&o.officers, "officer", nil, "a security officer's user name (give two for the four-eyes rule; repeat the flag)")
	f.StringVar(&o.listen, "listen", "0.0.0.0:7443", "the mTLS gRPC listener for users, replicas and peers")
	f.StringVar(&o.bundleListen, "bundle-listen", "0.0.0.0:8443", "the SPIFFE Federation bundle endpoint's listener")
	f.StringVar(&o.host, "host", "", "the host name or IP at which peers reach this node (default: this machine's host name)")
	f.StringVar(&o.metricsAddr, "metrics-addr", "127.0.0.1:9464", "Prometheus /metrics; empty turns it off")
	f.StringVar(&o.replica, "replica", "r1", "this replica's id: the node's SVID is spiffe://TD/node/ID")
	cmd.MarkFlagRequired("org")
	cmd.MarkFlagRequired("name")
	return cmd
}

func (o *initOptions) run() error {
	if o.devCA == (o.spire != "") {
		return errors.New("identity: give --dev-ca (a development CA, for a first trial) or --spire unix:///path/agent.sock (production), one of them")
	}
	if o.spire != "" && !strings.HasPrefix(o.spire, "unix://") && !strings.HasPrefix(o.spire, "tcp://") {
		return fmt.Errorf("--spire %q: give the agent's socket as unix:///path/agent.sock", o.spire)
	}
	td, err := spiffeid.TrustDomainFromString(o.org)
	if err != nil || strings.Contains(o.org, "://") {
		return fmt.Errorf("--org %q is not a trust domain: use lower-case letters, digits, dots and dashes, such as vr-brabant-noord.crisis.test", o.org)
	}
	if strings.TrimSpace(o.name) == "" || strings.ContainsAny(o.name, "\n\r\"") {
		return fmt.Errorf("--name %q: give the organisation's name on one line, without double quotes", o.name)
	}
	if !userName.MatchString(o.replica) {
		return fmt.Errorf("--replica %q: use lower-case letters, digits, dots, dashes or underscores", o.replica)
	}
	if o.admin == "" {
		if u, err := user.Current(); err == nil {
			o.admin = strings.ToLower(u.Username)
		}
	}
	if !userName.MatchString(o.admin) {
		return fmt.Errorf("--admin %q: give your user name in lower-case letters, digits, dots, dashes or underscores", o.admin)
	}
	seen := map[string]bool{o.admin: true}
	for _, off := range o.officers {
		if !userName.MatchString(off) {
			return fmt.Errorf("--officer %q: give a user name in lower-case letters, digits, dots, dashes or underscores", off)
		}
		if seen[off] {
			return fmt.Errorf("--officer %q: named twice, or also the admin: the officers are two other people", off)
		}
		seen[off] = true
	}
	if o.listenPort, err = port("--listen", o.listen); err != nil {
		return err
	}
	if o.bundlePort, err = port("--bundle-listen", o.bundleListen); err != nil {
		return err
	}
	if o.host == "" {
		if o.host, err = os.Hostname(); err != nil {
			return fmt.Errorf("--host: this machine's host name: %w: give --host", err)
		}
	}
	o.address = net.JoinHostPort(o.host, o.listenPort)
	if _, _, err := netaddr.Dial(o.address); err != nil {
		return fmt.Errorf("--host %q: %v: give the host name or IP address partners reach this node at, such as node1.vrbn.example", o.host, err)
	}
	if strings.ContainsAny(o.host, "/:") && net.ParseIP(o.host) == nil {
		return fmt.Errorf("--host %q: give the host name or IP address partners reach this node at, such as node1.vrbn.example", o.host)
	}
	o.bundleURL = "https://" + net.JoinHostPort(o.host, o.bundlePort)
	o.adminID = "spiffe://" + td.Name() + "/user/" + o.admin

	if err := makeEmptyDir(o.dataDir); err != nil {
		return err
	}
	cfgPath := filepath.Join(o.dataDir, configName)
	if o.devCA {
		ca, err := identity.InitCA(td, filepath.Join(o.dataDir, "ca"), 10*365*24*time.Hour)
		if err != nil {
			return err
		}
		issue := func(path, file string, opts identity.SVIDOptions) error {
			id, err := spiffeid.FromPath(td, path)
			if err != nil {
				return err
			}
			return ca.IssueFiles(id, filepath.Join(o.dataDir, "certs", file), opts)
		}
		// The node's SVID names the host too, so that an HTTPS client that checks host names
		// (curl, a partner system) accepts it on the REST API.
		node := identity.SVIDOptions{TTL: devNodeSVIDTTL, Hosts: []string{o.host}}
		if err := issue("/node/"+o.replica, o.replica, node); err != nil {
			return err
		}
		for _, u := range append([]string{o.admin}, o.officers...) {
			if err := issue("/user/"+u, u, identity.SVIDOptions{TTL: identity.DefaultSVIDTTL * 30}); err != nil {
				return err
			}
		}
	}
	if err := writeNew(cfgPath, []byte(o.config(td)), 0o600); err != nil {
		return err
	}
	// The config must load as written: a node that init made must start.
	if _, err := config.Load(cfgPath); err != nil {
		return fmt.Errorf("init wrote a config that does not load (a bug; please report it): %w", err)
	}
	o.printNext(td)
	return nil
}

// port returns the port of a host:port flag.
func port(flag, addr string) (string, error) {
	_, p, err := netaddr.ListenFixed(addr)
	if err != nil {
		return "", fmt.Errorf("%s %q: %v: give host:port with a fixed port from 1 to 65535, such as 0.0.0.0:7443", flag, addr, err)
	}
	return strconv.Itoa(p), nil
}

// makeEmptyDir makes dir, or accepts it when it exists and is empty: init never overwrites.
func makeEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("--data-dir %s: %w", dir, err)
	case len(entries) > 0:
		return fmt.Errorf("--data-dir %s is not empty (it holds %s): init never overwrites; give a new directory", dir, entries[0].Name())
	}
	return nil
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("init: %w", err)
	}
	return f.Close()
}

// config is the node config init writes. It is text rather than a marshalled struct so that it
// can carry comments that explain each part to the person who edits it next.
func (o *initOptions) config(td spiffeid.TrustDomain) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	// c writes a line with a comment, the comments of such lines in one column.
	c := func(line, comment string) { fmt.Fprintf(&b, "%-39s # %s\n", line, comment) }
	p("# The node of %s, made by `knooppunt init` on %s.\n", o.name, time.Now().UTC().Format(time.DateOnly))
	p("# Roles and peers reload without a restart; the rest needs one. See docs/operator.md.\n")
	p("name: %q\n", o.name)
	p("org: %s\n", td.Name())
	p("replica_id: %s\n", o.replica)
	c(fmt.Sprintf("listen: %q", o.listen), "mTLS gRPC for users, apps, replicas and peers")
	c(fmt.Sprintf("advertise: [%q]", o.address), "where peers reach it; `peer invite` hands these on")
	c(fmt.Sprintf("metrics_addr: %q", o.metricsAddr), "Prometheus /metrics; empty turns it off")
	p("identity:\n")
	if o.devCA {
		p("  # A development CA (ca/) for a first trial. Production: source workloadapi with SPIRE.\n")
		p("  source: files\n")
		p("  cert_file: certs/%s.crt\n", o.replica)
		p("  key_file: certs/%s.key\n", o.replica)
		p("  bundle_file: ca/%s\n", identity.BundleFile)
	} else {
		p("  source: workloadapi\n")
		p("  workload_api: %s\n", o.spire)
		p("  spiffe_id: spiffe://%s/node/%s\n", td.Name(), o.replica)
	}
	c("bundle_endpoint:", "peers keep this org's trust bundle current from here")
	p("  listen: %q\n", o.bundleListen)
	p("  url: %q\n", o.bundleURL)
	c("roles:", "this org's own SPIFFE IDs: reader, editor, officer, admin")
	p("  - {id: %s, role: admin}\n", o.adminID)
	for _, off := range o.officers {
		p("  - {id: spiffe://%s/user/%s, role: officer}\n", td.Name(), off)
	}
	for i := len(o.officers); i < 2; i++ {
		p("  # Security officer %d of 2: policies need two (four eyes). Name them and remove the #:\n", i+1)
		p("  # - {id: spiffe://%s/user/OFFICER%d, role: officer}\n", td.Name(), i+1)
	}
	p("# Peers accepted with `knooppunt peer accept` live in the node's Raft log, on every replica.\n")
	p("# Peers listed here work too; `knooppunt peer list` shows where each came from.\n")
	p("peers: []\n")
	p("# The REST/JSON API for your own systems (docs/integration.md): HTTPS with the node's SVID,\n")
	p("# mutual TLS or a bearer JWT-SVID. Off until you remove the #s (needs a restart).\n")
	p("# http:\n")
	p("#   listen: \"0.0.0.0:18443\"\n")
	p("# The web interface for your organisation's people (docs/operator.md, The web interface): they\n")
	p("# sign in at your own OpenID Connect provider, where you register a client whose redirect URI\n")
	p("# is PUBLIC_URL/auth/callback. Off until you remove the #s and fill in yours (needs a restart).\n")
	p("# ui:\n")
	p("#   listen: \"0.0.0.0:8444\"\n")
	p("#   tls: {cert_file: ui/knooppunt.crt, key_file: ui/knooppunt.key}\n")
	p("#   public_url: \"https://knooppunt.YOUR-DOMAIN.nl\"\n")
	p("#   oidc:\n")
	p("#     issuer: \"https://login.YOUR-DOMAIN.nl/realms/crisis\"\n")
	p("#     client_id: knooppunt\n")
	p("#     client_secret_file: ui/client-secret\n")
	p("#     claim: preferred_username  # names the person: only if people cannot change it at the provider\n")
	p("# What this node states it needs partners' records for (doelbinding), on its subscriptions\n")
	p("# and searches. A partner's policy with accept_purposes grants only the purposes it lists:\n")
	p("# agree the wording with your partners' officers, then remove the #s (needs a restart).\n")
	p("# federation:\n")
	p("#   purpose: \"crisisbeheersing en informatievoorziening\"\n")
	c("kinds: []", "empty: the built-in kinds (shelter.capacity, sitrep, qa, guidance, permit, signal); alert, assessment and assessment.response are always there")
	return b.String()
}

func (o *initOptions) printNext(td spiffeid.TrustDomain) {
	w := o.stdout
	sock := filepath.Join(o.dataDir, node.SocketName)
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	fmt.Fprintf(w, "Made the node of %s (%s) in %s:\n", o.name, td.Name(), o.dataDir)
	fmt.Fprintf(w, "  %-22s the config\n", filepath.Join(o.dataDir, configName))
	if o.devCA {
		fmt.Fprintf(w, "  %-22s a development CA for a first trial (production uses SPIRE)\n", filepath.Join(o.dataDir, "ca")+"/")
		fmt.Fprintf(w, "  %-22s SVIDs: node/%s, and user/%s for you (admin)", filepath.Join(o.dataDir, "certs")+"/", o.replica, o.admin)
		for _, off := range o.officers {
			fmt.Fprintf(w, ", user/%s", off)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "\nNext:")
	step := 1
	if !o.devCA {
		// The selector of the user the node will run as: not root, whom init often runs as to
		// write under /var/lib, which would hand the node's SVID to every root process.
		runAs := fmt.Sprintf("unix:uid:%d", os.Getuid())
		if os.Geteuid() == 0 {
			runAs = "unix:user:knooppunt"
		}
		fmt.Fprintf(w, "  %d. Register the node with SPIRE (see deploy/spire/README.md), for the user it runs as:\n", step)
		fmt.Fprintf(w, "       spire-server entry create -spiffeID spiffe://%s/node/%s -parentID <agent ID> -selector %s\n", td.Name(), o.replica, runAs)
		fmt.Fprintf(w, "     and yourself, on the host you work from:\n")
		fmt.Fprintf(w, "       spire-server entry create -spiffeID %s -parentID <agent ID> -selector unix:user:%s\n", o.adminID, o.admin)
		if os.Geteuid() == 0 {
			fmt.Fprintf(w, "     Run the node as that user, not root, and give it the data directory: chown -R knooppunt %s\n", o.dataDir)
		}
		step++
	}
	fmt.Fprintf(w, "  %d. Start the node:\n       knooppunt serve --data-dir %s --config %s\n", step, o.dataDir, filepath.Join(o.dataDir, configName))
	step++
	fmt.Fprintf(w, "  %d. Connect to a partner (docs/onboarding.md). Either you were invited: accept their file, and\n", step)
	fmt.Fprintf(w, "     hand them the answer it writes:\n")
	fmt.Fprintf(w, "       knooppunt peer accept THEIR-INVITATION.json --node unix://%s\n", abs(sock))
	fmt.Fprintf(w, "     or you invite: hand them invitation.json by any channel, read them the fingerprint, and\n")
	fmt.Fprintf(w, "     accept the answer they send back:\n")
	fmt.Fprintf(w, "       knooppunt peer invite --node unix://%s -o invitation.json\n", abs(sock))
	fmt.Fprintf(w, "       knooppunt peer accept THEIR-ANSWER.json --node unix://%s\n", abs(sock))
	step++
	fmt.Fprintf(w, "  %d. If a partner's policies bind purposes (accept_purposes), state yours: federation.purpose\n", step)
	fmt.Fprintf(w, "     in %s. Without it such a partner sends nothing.\n", filepath.Join(o.dataDir, configName))
	step++
	fmt.Fprintf(w, "  %d. For your people's browsers, turn on the web interface: the ui section in %s,\n", step, filepath.Join(o.dataDir, configName))
	fmt.Fprintf(w, "     with a client at your OpenID Connect provider (docs/operator.md, The web interface).\n")
	step++
	if len(o.officers) < 2 {
		fmt.Fprintf(w, "  %d. Name your two security officers under roles in %s (it reloads by itself).\n", step, filepath.Join(o.dataDir, configName))
		if o.devCA {
			fmt.Fprintf(w, "     Each needs an SVID of their own (30 days, as init's):\n       knooppunt ca issue --dir %s --id spiffe://%s/user/NAME --out %s --ttl 720h\n",
				abs(filepath.Join(o.dataDir, "ca")), o.org, abs(filepath.Join(o.dataDir, "certs", "NAME")))
		}
	}
	if o.devCA {
		fmt.Fprintf(w, "\nTo act as a person (an officer approving a policy, say), call the node over mutual TLS with their SVID:\n")
		fmt.Fprintf(w, "  export KNOOPPUNT_NODE=%s KNOOPPUNT_BUNDLE=%s\n", o.address, abs(filepath.Join(o.dataDir, "ca", identity.BundleFile)))
		fmt.Fprintf(w, "  export KNOOPPUNT_SVID_CERT=%s KNOOPPUNT_SVID_KEY=%s\n", abs(filepath.Join(o.dataDir, "certs", "NAME.crt")), abs(filepath.Join(o.dataDir, "certs", "NAME.key")))
		fmt.Fprintf(w, "The development SVIDs expire: the node's after %d days, the people's after 30. Issue them again with\n", int(devNodeSVIDTTL.Hours()/24))
		fmt.Fprintf(w, "`knooppunt ca issue` (same --id and --out) before then; the node reloads its files by itself.\n")
	}
	fmt.Fprintln(w, "\nThe whole way to a first shared record: docs/onboarding.md.")
}
