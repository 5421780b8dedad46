package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// restURL is the base of the org's REST API: its node's SVID names 127.0.0.1 (and localhost), so
// that curl checks it as any HTTPS server.
func (o *demoOrg) restURL() string { return fmt.Sprintf("https://127.0.0.1:%d", o.restPort) }

// restCurl is the curl command that reads path from the org's REST API with the editor's SVID,
// run in the org's directory.
func (o *demoOrg) restCurl(path string) string {
	return "curl --cacert ca/bundle.pem --cert certs/editor.crt --key certs/editor.key " + o.restURL() + path
}

// showREST reads the org's picture over its REST API, as a system of the org's own would with
// its SVID (docs/integration.md), and says what came back.
func showREST(ctx context.Context, out io.Writer, o *demoOrg) error {
	cert, err := tls.LoadX509KeyPair(filepath.Join(o.dir, "certs", "editor.crt"), filepath.Join(o.dir, "certs", "editor.key"))
	if err != nil {
		return err
	}
	bundle, err := os.ReadFile(filepath.Join(o.dir, "ca", "bundle.pem"))
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		return fmt.Errorf("%s: no certificate in ca/bundle.pem", o.name)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, MinVersion: tls.VersionTLS12},
	}}
	defer client.CloseIdleConnections()
	const path = "/v1/pictures/oekraine?skip_peer_check=true"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.restURL()+path, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s's REST API: %w", o.title, err)
	}
	defer resp.Body.Close()
	var pic struct {
		Entries []json.RawMessage `json:"entries"`
		Sources []string          `json:"sources"`
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("%s's REST API answered %s: %s", o.title, resp.Status, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(&pic); err != nil {
		return fmt.Errorf("%s's REST API: %w", o.title, err)
	}
	fmt.Fprintf(out, "\n=== The REST API, as a system of %s's own with the editor's SVID (docs/integration.md) ===\n", o.title)
	fmt.Fprintf(out, "  GET %s%s: %s, %d entries from %d sources\n", o.restURL(), path, resp.Status, len(pic.Entries), len(pic.Sources))
	return nil
}
