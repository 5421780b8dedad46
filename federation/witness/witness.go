// Package witness lets peers witness each other's audit chains. A node signs its chain's head
// (seq, hash, time) with the key of its X.509-SVID and hands it, with the certificate chain, to
// every peer, which keeps it through Raft. Later `audit verify --witnesses` asks the peers for
// the heads they keep and checks that the chain still holds each one: a chain rewritten from its
// first entry, every hash recomputed, verifies on its own but not against a head a peer kept.
//
// witness signs, verifies and checks; the peer server keeps what it receives, and the audit
// service reports. It never changes the chain.
package witness

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/identity"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// payloadPrefix keeps a head's signature from being taken for a signature over anything else
// the SVID's key signs (a TLS handshake signs other bytes, but a fixed prefix rules it out).
const payloadPrefix = "knooppunt audit head v1\x00"

// Payload is the bytes a head's signature covers: the prefix, then the org, the seq, the hash
// and the time in Unix nanoseconds, each with its length or at a fixed width.
func Payload(h *pb.SignedHead) []byte {
	b := make([]byte, 0, len(payloadPrefix)+len(h.Org)+len(h.Hash)+32)
	b = append(b, payloadPrefix...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(h.Org)))
	b = append(b, h.Org...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Seq))
	b = binary.BigEndian.AppendUint32(b, uint32(len(h.Hash)))
	b = append(b, h.Hash...)
	return binary.BigEndian.AppendUint64(b, uint64(h.GetAt().AsTime().UnixNano()))
}

// Sign signs the head (seq, hash) of the org's chain at at with svid's key.
func Sign(svid *x509svid.SVID, seq int64, hash []byte, at time.Time) (*pb.SignedHead, error) {
	h := &pb.SignedHead{Org: svid.ID.TrustDomain().Name(), Seq: seq, Hash: hash, At: timestamppb.New(at)}
	for _, c := range svid.Certificates {
		h.Chain = append(h.Chain, c.Raw)
	}
	var err error
	if h.Signature, err = identity.SignPayload(svid, Payload(h)); err != nil {
		return nil, fmt.Errorf("witness: sign head %d: %w", seq, err)
	}
	return h, nil
}

// MaxChainBytes bounds the certificate chain of a head, all certificates together.
const MaxChainBytes = 16 << 10

// Verify checks a head of td's chain: its certificate chain is an X.509-SVID of a replica of td
// (spiffe://td/node/...) that bundles vouched for at the head's time, and its signature is that
// SVID's. It returns the signer's ID. Checking at the head's time, not now, keeps a head
// verifiable after the SVID that signed it expired or rotated.
func Verify(h *pb.SignedHead, td spiffeid.TrustDomain, bundles x509bundle.Source) (spiffeid.ID, error) {
	if h == nil {
		return spiffeid.ID{}, errors.New("no head")
	}
	if h.Org != td.Name() {
		return spiffeid.ID{}, fmt.Errorf("the head is of %q, not of %s", h.Org, td.Name())
	}
	if h.Seq < 1 || len(h.Hash) != sha256.Size || h.At == nil || h.At.CheckValid() != nil {
		return spiffeid.ID{}, fmt.Errorf("the head needs seq 1 or more, a hash of %d bytes and a valid time", sha256.Size)
	}
	if len(h.Chain) == 0 || len(h.Chain) > 8 {
		return spiffeid.ID{}, errors.New("the head needs its signer's certificate chain, leaf first, of at most 8 certificates")
	}
	// Every head is kept with its chain: one padded with megabytes of certificates filled the
	// disk (review D, F1). An SVID's chain is a few kilobytes.
	size := 0
	for _, der := range h.Chain {
		size += len(der)
	}
	if size > MaxChainBytes {
		return spiffeid.ID{}, fmt.Errorf("the signer's certificate chain is %d bytes, over the %d a head may carry", size, MaxChainBytes)
	}
	certs := make([]*x509.Certificate, len(h.Chain))
	for i, der := range h.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return spiffeid.ID{}, fmt.Errorf("chain[%d]: %w", i, err)
		}
		certs[i] = c
	}
	id, _, err := x509svid.Verify(certs, bundles, x509svid.WithTime(h.At.AsTime()))
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("the signer's chain does not verify at %s: %w", h.At.AsTime().UTC().Format(time.RFC3339), err)
	}
	if id.TrustDomain() != td || !strings.HasPrefix(id.Path(), "/node/") {
		return spiffeid.ID{}, fmt.Errorf("the signer %s is not a replica of %s", id, td.Name())
	}
	if err := identity.CheckPayload(certs[0], Payload(h), h.Signature); err != nil {
		if errors.Is(err, identity.ErrKeyType) {
			return spiffeid.ID{}, fmt.Errorf("the signer's key cannot sign heads: %w", err)
		}
		return spiffeid.ID{}, fmt.Errorf("the signature does not verify with %s's key", id)
	}
	return id, nil
}
