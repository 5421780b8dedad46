package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/knooppunt/knooppunt/federation/identity"
)

func newCACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "A development CA that mints X.509- and JWT-SVIDs (for the demo and tests, not production)",
		Long: `A development certificate authority for one trust domain. Production nodes get their SVIDs
from SPIRE; this CA lets the demo and tests run with nothing outside the project.`,
	}
	cmd.AddCommand(newCAInitCmd(), newCAIssueCmd(), newCAJWTCmd())
	return cmd
}

func newCAInitCmd() *cobra.Command {
	var (
		td, dir string
		ttl     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a CA for a trust domain",
		Long: `Create a CA in DIR: ca.crt, ca.key (mode 0600) and bundle.pem. bundle.pem is the trust
bundle to hand to peers at onboarding.`,
		Example: `  knooppunt ca init --trust-domain vr-utrecht.crisis.test --dir ./ca`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkTTL(ttl, "87600h (10 years)"); err != nil {
				return err
			}
			t, err := spiffeid.TrustDomainFromString(td)
			if err != nil {
				return fmt.Errorf("--trust-domain %q: %w", td, err)
			}
			if _, err := identity.InitCA(t, dir, ttl); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "CA for %s in %s; hand %s to peers\n", t, dir, filepath.Join(dir, identity.BundleFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&td, "trust-domain", "", "trust domain, such as vr-utrecht.crisis.test")
	cmd.Flags().StringVar(&dir, "dir", "", "directory for the CA")
	durationFlag(cmd.Flags(), &ttl, "ttl", 10*365*24*time.Hour, "how long the CA is valid")
	cmd.MarkFlagRequired("trust-domain")
	cmd.MarkFlagRequired("dir")
	return cmd
}

func newCAIssueCmd() *cobra.Command {
	var (
		dir, id, out string
		ttl          time.Duration
		dns          []string
	)
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue an X.509-SVID",
		Long: `Issue an ECDSA P-256 X.509-SVID for a SPIFFE ID of the CA's trust domain, and write
PREFIX.crt (the chain) and PREFIX.key. Replicas are spiffe://TD/node/NAME, people and apps
spiffe://TD/user/NAME. A node reloads its files when they change, so re-issuing rotates the SVID.`,
		Example: `  knooppunt ca issue --dir ./ca --id spiffe://vr-utrecht.crisis.test/node/r1 --out ./certs/r1
  knooppunt ca issue --dir ./ca --id spiffe://vr-utrecht.crisis.test/user/anna --out ./certs/anna --ttl 8h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkTTL(ttl, "8h"); err != nil {
				return err
			}
			sid, err := spiffeid.FromString(id)
			if err != nil {
				return fmt.Errorf("--id %q: %w", id, err)
			}
			ca, err := identity.LoadCA(dir)
			if err != nil {
				return err
			}
			if err := ca.IssueFiles(sid, out, identity.SVIDOptions{TTL: ttl, Hosts: dns}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s.crt, %s.key (valid %s)\n", sid, out, out, ttl)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the CA's directory")
	cmd.Flags().StringVar(&id, "id", "", "SPIFFE ID to certify")
	cmd.Flags().StringVar(&out, "out", "", "output prefix: writes PREFIX.crt and PREFIX.key")
	durationFlag(cmd.Flags(), &ttl, "ttl", identity.DefaultSVIDTTL, "how long the SVID is valid")
	cmd.Flags().StringSliceVar(&dns, "dns", nil, "host names or IP addresses to add besides the SPIFFE ID, for HTTPS clients that check them (the REST API)")
	for _, f := range []string{"dir", "id", "out"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}

func newCAJWTCmd() *cobra.Command {
	var (
		dir, id  string
		audience []string
		ttl      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "jwt",
		Short: "Mint a JWT-SVID for the REST API",
		Long: `Mint a JWT-SVID (ES256) for a SPIFFE ID of the CA's trust domain and print it, for
Authorization: Bearer on a node's REST API. The first use makes the CA's JWT signing key,
jwt.key (mode 0600; a key of its own, not the X.509 CA key), and its JWT bundle,
jwt-bundle.json, in DIR: give that file to the node as http.jwt_bundle_file. The audience must
name the node: one of its http.audience, by default its replica ID spiffe://TD/node/r1.`,
		Example: `  knooppunt ca jwt --dir ./ca --id spiffe://vr-utrecht.crisis.test/user/erik --audience spiffe://vr-utrecht.crisis.test/node/r1`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkTTL(ttl, "5m"); err != nil {
				return err
			}
			sid, err := spiffeid.FromString(id)
			if err != nil {
				return fmt.Errorf("--id %q: %w", id, err)
			}
			ca, err := identity.LoadCA(dir)
			if err != nil {
				return err
			}
			key, created, err := identity.LoadOrCreateJWTKey(dir, ca.TrustDomain)
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(cmd.ErrOrStderr(), "made the JWT signing key; its bundle is %s (http.jwt_bundle_file)\n", filepath.Join(dir, identity.JWTBundleFile))
			}
			tok, err := key.Mint(sid, audience, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the CA's directory")
	cmd.Flags().StringVar(&id, "id", "", "SPIFFE ID the token is for, such as spiffe://TD/user/NAME")
	cmd.Flags().StringSliceVar(&audience, "audience", nil, "audience naming the node (repeat or comma-separate)")
	durationFlag(cmd.Flags(), &ttl, "ttl", 5*time.Minute, "how long the token is valid")
	for _, f := range []string{"dir", "id", "audience"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}

// checkTTL refuses a --ttl that is not a positive duration: the CA would otherwise put its own
// default in the certificate, while the command said the value given.
func checkTTL(ttl time.Duration, example string) error {
	if ttl <= 0 {
		return fmt.Errorf("--ttl: %s: use a positive duration, such as %s", ttl, example)
	}
	return nil
}
