package identity_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/knooppunt/knooppunt/federation/identity"
)

// TestSignPayload: a payload signed with an ECDSA, RSA or Ed25519 SVID key checks against the
// certificate, and not once a byte of it changed; a key of another type is ErrKeyType.
func TestSignPayload(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("head 42 of vr-utrecht.crisis.test")
	for name, key := range map[string]crypto.Signer{"ECDSA": ecKey, "RSA": rsaKey, "Ed25519": edKey} {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := identity.SignPayload(&x509svid.SVID{Certificates: []*x509.Certificate{cert}, PrivateKey: key}, payload)
		if err != nil {
			t.Fatalf("%s: sign: %v", name, err)
		}
		if err := identity.CheckPayload(cert, payload, sig); err != nil {
			t.Errorf("%s: the signature does not check: %v", name, err)
		}
		changed := append([]byte(nil), payload...)
		changed[5] ^= 1
		if err := identity.CheckPayload(cert, changed, sig); err == nil {
			t.Errorf("%s: a changed payload checks", name)
		}
	}
	odd := &x509.Certificate{PublicKey: "not a key"}
	if err := identity.CheckPayload(odd, payload, []byte{1}); !errors.Is(err, identity.ErrKeyType) {
		t.Errorf("a key of another type: %v, want ErrKeyType", err)
	}
}
