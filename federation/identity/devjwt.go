package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Files of a development CA directory for JWT-SVIDs.
const (
	jwtKeyFile = "jwt.key"
	// JWTBundleFile is the CA directory's JWT bundle: a SPIFFE bundle document with the
	// jwt-svid key that verifies the JWT-SVIDs the CA mints (a node's http.jwt_bundle_file).
	JWTBundleFile = "jwt-bundle.json"
)

// DevJWTKey signs development JWT-SVIDs for one trust domain. It is a key of its own, not the
// X.509 CA key, as SPIRE keeps them apart: one key is not used for two kinds of signature.
type DevJWTKey struct {
	TrustDomain spiffeid.TrustDomain
	Key         crypto.Signer
	// KeyID names the key in the bundle and in each token's header.
	KeyID string
}

// LoadOrCreateJWTKey reads the JWT signing key in dir, or makes it and writes jwt.key (mode
// 0600) and jwt-bundle.json. created says it was made now.
func LoadOrCreateJWTKey(dir string, td spiffeid.TrustDomain) (k *DevJWTKey, created bool, err error) {
	path := filepath.Join(dir, jwtKeyFile)
	keyPEM, err := os.ReadFile(path)
	switch {
	case err == nil:
		b, _ := pem.Decode(keyPEM)
		if b == nil {
			return nil, false, fmt.Errorf("identity: %s is not PEM", path)
		}
		parsed, err := parsePKCS8Signer(b.Bytes)
		if err != nil {
			return nil, false, fmt.Errorf("identity: %s: %w", path, err)
		}
		return newDevJWTKey(td, parsed), false, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, false, fmt.Errorf("identity: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, false, err
	}
	k = newDevJWTKey(td, key)
	doc, err := spiffebundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{k.KeyID: key.Public()}).Marshal()
	if err != nil {
		return nil, false, fmt.Errorf("identity: JWT bundle: %w", err)
	}
	encoded, err := encodeKey(key)
	if err != nil {
		return nil, false, err
	}
	// The key first: a bundle on disk always has its key beside it.
	if err := writeFileAtomic(path, encoded, 0o600); err != nil {
		return nil, false, err
	}
	if err := writeFileAtomic(filepath.Join(dir, JWTBundleFile), doc, 0o644); err != nil {
		return nil, false, err
	}
	return k, true, nil
}

func newDevJWTKey(td spiffeid.TrustDomain, key crypto.Signer) *DevJWTKey {
	pub, _ := key.Public().(*ecdsa.PublicKey)
	var kid string
	if pub != nil {
		kid = hex.EncodeToString(keyID(pub))
	}
	return &DevJWTKey{TrustDomain: td, Key: key, KeyID: kid}
}

// Mint signs a JWT-SVID for id with audience, valid for ttl (default five minutes).
func (k *DevJWTKey) Mint(id spiffeid.ID, audience []string, ttl time.Duration) (string, error) {
	if !id.MemberOf(k.TrustDomain) {
		return "", fmt.Errorf("identity: %s is not in the trust domain %s", id, k.TrustDomain)
	}
	if len(audience) == 0 {
		return "", errors.New("identity: a JWT-SVID needs an audience that names the node it is for")
	}
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k.Key, KeyID: k.KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	now := time.Now()
	return jwt.Signed(signer).Claims(jwt.Claims{
		Subject: id.String(), Audience: audience,
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(ttl)),
	}).Serialize()
}

func parsePKCS8Signer(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("not a signing key")
	}
	return s, nil
}
