// Package identity gives a node its SPIFFE identity and the trust bundles it verifies others
// with: X.509-SVIDs from the SPIRE Workload API or from files, the development CA that mints such
// files, the trust store of peer bundles, and the SPIFFE Federation bundle endpoint that keeps
// those bundles current.
//
// identity authenticates; it never decides what a caller may do. That is the authorisation
// table's job in node/api.
package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Files of a development CA directory.
const (
	caCertFile = "ca.crt"
	caKeyFile  = "ca.key"
	// BundleFile is the CA directory's trust bundle: the file handed to peers at onboarding.
	BundleFile = "bundle.pem"
)

// DefaultSVIDTTL is how long `ca issue` certificates live unless told otherwise.
const DefaultSVIDTTL = 24 * time.Hour

// DevCA is a development certificate authority for one trust domain. It is for the demo and for
// tests: production nodes get their SVIDs from SPIRE.
type DevCA struct {
	TrustDomain spiffeid.TrustDomain
	Cert        *x509.Certificate
	Key         crypto.Signer
}

// InitCA creates a CA for td in dir: ca.crt, ca.key (mode 0600) and bundle.pem. It refuses to
// overwrite an existing CA.
func InitCA(td spiffeid.TrustDomain, dir string, ttl time.Duration) (*DevCA, error) {
	if _, err := os.Stat(filepath.Join(dir, caKeyFile)); err == nil {
		return nil, fmt.Errorf("identity: %s already holds a CA: use another --dir, or remove it first", dir)
	}
	ca, err := NewCA(td, ttl)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	keyPEM, err := encodeKey(ca.Key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{caKeyFile, keyPEM, 0o600}, {caCertFile, certPEM, 0o644}, {BundleFile, certPEM, 0o644},
	} {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, err
		}
	}
	return ca, nil
}

// NewCA makes a CA in memory, valid for ttl (default ten years).
func NewCA(td spiffeid.TrustDomain, ttl time.Duration) (*DevCA, error) {
	if ttl <= 0 {
		ttl = 10 * 365 * 24 * time.Hour
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Knooppunt dev CA"}, CommonName: td.String()},
		URIs:                  []*url.URL{td.ID().URL()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("identity: create CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &DevCA{TrustDomain: td, Cert: cert, Key: key}, nil
}

// LoadCA reads the CA in dir.
func LoadCA(dir string) (*DevCA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, caCertFile))
	if err != nil {
		return nil, fmt.Errorf("identity: %s holds no CA (run knooppunt ca init): %w", dir, err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, caKeyFile))
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("identity: %s: ca.crt or ca.key is not PEM", dir)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity: ca.crt: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity: ca.key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("identity: ca.key is not a signing key")
	}
	if len(cert.URIs) != 1 {
		return nil, errors.New("identity: ca.crt names no trust domain")
	}
	id, err := spiffeid.FromURI(cert.URIs[0])
	if err != nil {
		return nil, fmt.Errorf("identity: ca.crt: %w", err)
	}
	return &DevCA{TrustDomain: id.TrustDomain(), Cert: cert, Key: signer}, nil
}

// SVIDOptions shape an issued SVID.
type SVIDOptions struct {
	// TTL is how long it is valid. Default DefaultSVIDTTL.
	TTL time.Duration
	// NotBefore moves the start of validity; zero means now (less a minute of clock skew).
	NotBefore time.Time
	// Key is the key to certify; nil makes a new P-256 key.
	Key crypto.Signer
	// Hosts are added besides the SPIFFE ID, each as a DNS SAN, or an IP SAN for an IP address
	// (the X.509-SVID spec allows both), so that an HTTPS client that checks host names, such as
	// curl, accepts a node's SVID on the REST API.
	Hosts []string
}

// hostSANs splits hosts into DNS names and IP addresses.
func hostSANs(hosts []string) (names []string, ips []net.IP) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			names = append(names, h)
		}
	}
	return names, ips
}

// Issue mints an X.509-SVID for id, which must be in the CA's trust domain. It follows the
// X.509-SVID spec: one URI SAN, a leaf (not a CA), digitalSignature key usage, and both server
// and client authentication.
func (ca *DevCA) Issue(id spiffeid.ID, opts SVIDOptions) ([]*x509.Certificate, crypto.Signer, error) {
	if id.TrustDomain() != ca.TrustDomain {
		return nil, nil, fmt.Errorf("identity: %s is not in the CA's trust domain %s", id, ca.TrustDomain)
	}
	if id.Path() == "" {
		return nil, nil, fmt.Errorf("identity: %s has no path: an SVID names a workload, such as spiffe://%s/node/r1", id, ca.TrustDomain)
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultSVIDTTL
	}
	key := opts.Key
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		key = k
	}
	start := opts.NotBefore
	if start.IsZero() {
		start = time.Now().Add(-time.Minute)
	}
	names, ips := hostSANs(opts.Hosts)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Knooppunt"}},
		URIs:                  []*url.URL{id.URL()},
		DNSNames:              names,
		IPAddresses:           ips,
		NotBefore:             start,
		NotAfter:              start.Add(opts.TTL),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		AuthorityKeyId:        ca.Cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: issue %s: %w", id, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return []*x509.Certificate{cert}, key, nil
}

// IssueFiles mints an SVID for id and writes PREFIX.crt (the chain) and PREFIX.key (mode 0600).
// Both are replaced atomically, so a node that reloads them never reads half a file.
func (ca *DevCA) IssueFiles(id spiffeid.ID, prefix string, opts SVIDOptions) error {
	chain, key, err := ca.Issue(id, opts)
	if err != nil {
		return err
	}
	var certPEM []byte
	for _, c := range chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	if dir := filepath.Dir(prefix); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("identity: %w", err)
		}
	}
	// The key first: a reader that sees the new certificate must find its key.
	if err := writeFileAtomic(prefix+".key", keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(prefix+".crt", certPEM, 0o644)
}

func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("identity: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: write %s: %w", path, err)
	}
	if err := errors.Join(tmp.Chmod(mode), tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("identity: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("identity: write %s: %w", path, err)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

func keyID(pub *ecdsa.PublicKey) []byte {
	b, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(b)
	return sum[:20]
}
