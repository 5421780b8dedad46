package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ErrKeyType refuses a key that SignPayload and CheckPayload do not sign or check with.
var ErrKeyType = errors.New("identity: the key is not ECDSA, RSA or Ed25519")

// signing is how a key of pub's type signs a payload: the algorithm x509 checks it with, and the
// hash of the payload that is signed (0: the payload itself, as Ed25519 signs).
func signing(pub any) (x509.SignatureAlgorithm, crypto.Hash, error) {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		return x509.ECDSAWithSHA256, crypto.SHA256, nil
	case *rsa.PublicKey:
		return x509.SHA256WithRSA, crypto.SHA256, nil
	case ed25519.PublicKey:
		return x509.PureEd25519, 0, nil
	}
	return 0, 0, fmt.Errorf("%w: it is a %T", ErrKeyType, pub)
}

// SignPayload signs payload with svid's key: an ECDSA or RSA key its SHA-256 digest, an Ed25519
// key the payload itself. CheckPayload checks what it signs. Signed heads of the audit chain and
// invitations are signed so.
func SignPayload(svid *x509svid.SVID, payload []byte) ([]byte, error) {
	_, hash, err := signing(svid.PrivateKey.Public())
	if err != nil {
		return nil, err
	}
	digest, opts := payload, crypto.SignerOpts(crypto.Hash(0))
	if hash != 0 {
		h := hash.New()
		h.Write(payload)
		digest, opts = h.Sum(nil), hash
	}
	return svid.PrivateKey.Sign(rand.Reader, digest, opts)
}

// CheckPayload checks that sig is the signature over payload, as SignPayload makes it, of the key
// that cert certifies.
func CheckPayload(cert *x509.Certificate, payload, sig []byte) error {
	alg, _, err := signing(cert.PublicKey)
	if err != nil {
		return err
	}
	return cert.CheckSignature(alg, payload, sig)
}
