// Package invite owns the invitation that lets two organisations' nodes trust each other with no
// central operator: what it holds, how a node signs it with its SVID key, how the other side
// checks it, and the fingerprint the two sides compare over the phone.
//
// An invitation carries its own trust bundle, so a valid signature alone proves only that it is
// whole: whoever made it holds a key that the bundle in it certifies. That the bundle is the
// partner's own is what the fingerprint, read aloud between two people who know each other, is
// for. invite never does I/O and never stores anything; the node's PeerService does.
package invite

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/node/netaddr"
	"github.com/knooppunt/knooppunt/policy"
)

// Format names the file format; a file of another format is refused.
const Format = "knooppunt-invitation/1"

// Limits on an invitation's lifetime.
const (
	DefaultTTL = 24 * time.Hour
	MaxTTL     = 30 * 24 * time.Hour
	// MaxSkew is how far ahead of the checker's clock an invitation may be issued: more means one
	// of the two clocks is wrong.
	MaxSkew = 5 * time.Minute
	// MaxBytes bounds an invitation file.
	MaxBytes = 1 << 20
	// MaxAfterSVID is how long after the end of the SVID that signed it an invitation is still
	// valid, whatever its own expiry: under SPIRE an SVID lives an hour, and a week is ample to
	// accept an invitation; the key of an SVID that ended before that no longer opens doors.
	MaxAfterSVID = 7 * 24 * time.Hour
)

// Invitation is what one node tells another about itself.
type Invitation struct {
	// ID names this invitation, so that accepting it twice is seen as the same step.
	ID string `json:"id"`
	// Name is the organisation's name, such as "VR Brabant-Noord".
	Name string `json:"name"`
	// TrustDomain is the organisation's SPIFFE trust domain.
	TrustDomain string `json:"trust_domain"`
	// Addresses are host:port of the node's replicas' mTLS listeners.
	Addresses []string `json:"addresses"`
	// BundleEndpoint is the https:// URL of the node's SPIFFE Federation bundle endpoint; empty
	// when it serves none.
	BundleEndpoint string `json:"bundle_endpoint,omitempty"`
	// SpiffeID is the SVID that signed the invitation, a replica of the node; it is also the
	// identity the bundle endpoint presents.
	SpiffeID string `json:"spiffe_id"`
	// Bundle is the trust domain's X.509 bundle (PEM) at the time of signing.
	Bundle string `json:"bundle"`
	// Groups are the peer groups the node proposes to be placed in. A proposal only: the side
	// that accepts decides, as groups decide what its policies grant.
	Groups []string `json:"groups,omitempty"`
	// AnswerTo is the ID of the invitation this one answers: the node that wrote it has accepted
	// that invitation already, so accepting this one completes the pair and needs no answer.
	AnswerTo  string    `json:"answer_to,omitempty"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// envelope is the file: the invitation's exact bytes, the signing SVID's chain and the signature.
// The invitation travels as bytes (base64 in JSON) so that no reformatting of the file can change
// what was signed.
type envelope struct {
	Format     string   `json:"format"`
	Invitation []byte   `json:"invitation"`
	Chain      [][]byte `json:"chain"`
	Signature  []byte   `json:"signature"`
}

// Errors of Open, for callers that map them to status codes. Each is wrapped with the detail.
var (
	// ErrMalformed: the file is not an invitation, or a field is missing or wrong.
	ErrMalformed = errors.New("invite: malformed invitation")
	// ErrSignature: the signature or the signing chain does not check out.
	ErrSignature = errors.New("invite: bad signature")
	// ErrExpired: the invitation expired, is dated ahead of the checker's clock, or is dated
	// outside the life of the SVID that signed it.
	ErrExpired = errors.New("invite: not valid now")
)

// Sign writes inv as a file signed with the SVID's key. It fills in ID when empty, cuts ExpiresAt
// to MaxAfterSVID past the SVID's end, and checks inv as Open will, so that a node never hands out
// an invitation its partner must refuse.
func Sign(inv Invitation, svid *x509svid.SVID) ([]byte, error) {
	if svid == nil || len(svid.Certificates) == 0 || svid.PrivateKey == nil {
		return nil, errors.New("invite: no SVID to sign with")
	}
	if inv.ID == "" {
		var b [12]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		inv.ID = hex.EncodeToString(b[:])
	}
	inv.SpiffeID = svid.ID.String()
	// Open honours an invitation no longer than MaxAfterSVID past the end of the SVID that signed
	// it: the file says so, rather than an expiry its partner would not keep.
	if end := svid.Certificates[0].NotAfter.Add(MaxAfterSVID).UTC().Truncate(time.Second); inv.ExpiresAt.After(end) {
		inv.ExpiresAt = end
	}
	if err := inv.check(); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(inv)
	if err != nil {
		return nil, err
	}
	sig, err := identity.SignPayload(svid, payload)
	if errors.Is(err, identity.ErrKeyType) {
		return nil, fmt.Errorf("%w: %w", ErrSignature, err)
	}
	if err != nil {
		return nil, fmt.Errorf("invite: sign: %w", err)
	}
	env := envelope{Format: Format, Invitation: payload, Signature: sig}
	for _, c := range svid.Certificates {
		env.Chain = append(env.Chain, c.Raw)
	}
	out, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Open checks an invitation file at the time now and returns what it says. It refuses a file
// that is not an invitation, one whose signature does not match its contents, one signed by an
// SVID that its own bundle does not certify, and one that expired or is dated ahead of now.
// Every error names the part that is wrong and what to do.
func Open(file []byte, now time.Time) (*Invitation, error) {
	if len(file) > MaxBytes {
		return nil, fmt.Errorf("%w: the file is %d bytes, more than an invitation's %d: is it the right file?", ErrMalformed, len(file), MaxBytes)
	}
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(file))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("%w: not an invitation file (%s): use the file `knooppunt peer invite` wrote", ErrMalformed, jsonProblem(err))
	}
	if env.Format != Format {
		return nil, fmt.Errorf("%w: format %q: this knooppunt reads %q", ErrMalformed, env.Format, Format)
	}
	var inv Invitation
	dec = json.NewDecoder(bytes.NewReader(env.Invitation))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&inv); err != nil {
		return nil, fmt.Errorf("%w: invitation: %s", ErrMalformed, jsonProblem(err))
	}
	if err := inv.check(); err != nil {
		return nil, err
	}
	td := spiffeid.RequireTrustDomainFromString(inv.TrustDomain) // check made sure
	bundle, err := x509bundle.Parse(td, []byte(inv.Bundle))
	if err != nil || bundle.Empty() {
		return nil, fmt.Errorf("%w: bundle: not a PEM bundle of CA certificates (%v)", ErrMalformed, err)
	}
	if len(env.Chain) == 0 {
		return nil, fmt.Errorf("%w: chain: missing: the invitation names no SVID that signed it", ErrSignature)
	}
	var chain []*x509.Certificate
	for i, der := range env.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: chain[%d]: not a certificate: %v", ErrSignature, i, err)
		}
		chain = append(chain, c)
	}
	// The chain is checked at the time of signing: an SVID lives hours under SPIRE, an invitation
	// may live days. But no longer than MaxAfterSVID after the SVID's own end: the key of an
	// SVID that expired long ago (an old replica's, one from a backup) can then no longer sign a
	// working invitation by dating it back into its life.
	id, _, err := x509svid.Verify(chain, bundle, x509svid.WithTime(inv.IssuedAt))
	if err != nil && (inv.IssuedAt.Before(chain[0].NotBefore) || inv.IssuedAt.After(chain[0].NotAfter)) {
		// A chain the bundle certifies at another time, over a signature that matches, is no
		// forgery: the invitation is dated outside the signing SVID's life, by a clock that was
		// wrong or by a key whose SVID was renewed between dating and signing.
		if _, _, err := x509svid.Verify(chain, bundle, x509svid.WithTime(chain[0].NotBefore)); err == nil && identity.CheckPayload(chain[0], env.Invitation, env.Signature) == nil {
			return nil, fmt.Errorf("%w: a time problem, not a forgery: it says it was issued at %s, outside the life of the SVID that signed it (%s to %s): the signing node's clock was wrong, or its SVID was renewed in between; ask %s to set its clock by NTP and write a new invitation",
				ErrExpired, inv.IssuedAt.UTC().Format(time.RFC3339), chain[0].NotBefore.UTC().Format(time.RFC3339), chain[0].NotAfter.UTC().Format(time.RFC3339), inv.Name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: the signing SVID does not verify against the invitation's own bundle of %s (%v): it was signed by a key outside that bundle, or the bundle was changed", ErrSignature, td, err)
	}
	if end := chain[0].NotAfter.Add(MaxAfterSVID); now.After(end) {
		return nil, fmt.Errorf("%w: the SVID that signed it expired at %s, more than %s ago: ask %s for a new invitation", ErrExpired, chain[0].NotAfter.UTC().Format(time.RFC3339), MaxAfterSVID, inv.Name)
	}
	if id.String() != inv.SpiffeID {
		return nil, fmt.Errorf("%w: spiffe_id: the invitation names %s but %s signed it", ErrSignature, inv.SpiffeID, id)
	}
	if err := identity.CheckPayload(chain[0], env.Invitation, env.Signature); errors.Is(err, identity.ErrKeyType) {
		return nil, fmt.Errorf("%w: %w", ErrSignature, err)
	} else if err != nil {
		return nil, fmt.Errorf("%w: the signature does not match the invitation's contents: it was changed after %s signed it, or damaged on the way; ask for a new one", ErrSignature, id)
	}
	if now.After(inv.ExpiresAt) {
		return nil, fmt.Errorf("%w: it expired at %s (%s ago): ask %s for a new invitation (or check this machine's clock)", ErrExpired, inv.ExpiresAt.UTC().Format(time.RFC3339), now.Sub(inv.ExpiresAt).Round(time.Second), inv.Name)
	}
	if inv.IssuedAt.After(now.Add(MaxSkew)) {
		return nil, fmt.Errorf("%w: it was issued at %s, %s ahead of this machine's clock: one of the two clocks is wrong; set both by NTP", ErrExpired, inv.IssuedAt.UTC().Format(time.RFC3339), inv.IssuedAt.Sub(now).Round(time.Second))
	}
	return &inv, nil
}

// jsonProblem says what is wrong with JSON that does not decode into an invitation, in JSON's
// words: the decoder's own text names Go types (review AF, AF7).
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends too soon"
	case errors.As(err, &syntax):
		return fmt.Sprintf("not JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ) && typ.Field == "":
		return fmt.Sprintf("a JSON %s, where it takes an object", typ.Value)
	case errors.As(err, &typ):
		return fmt.Sprintf("%s is a JSON %s, where it takes %s", typ.Field, typ.Value, jsonKind(typ.Type))
	}
	// An unknown field ("json: unknown field \"x\""), a time or base64 that does not read.
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind names the JSON a field of Go type t takes.
func jsonKind(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[[]byte]():
		return "base64 text"
	case t == reflect.TypeFor[time.Time]():
		return "an RFC 3339 time"
	}
	switch t.Kind() {
	case reflect.String:
		return "text"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "another type"
}

// check checks the fields, naming the one that is wrong.
func (inv *Invitation) check() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrMalformed, field, fmt.Sprintf(format, a...))
	}
	if inv.ID == "" {
		return bad("id", "missing")
	}
	if !idRe.MatchString(inv.ID) {
		return bad("id", "%s is not an invitation id: 1 to 64 letters, digits, - and _", policy.Quote(inv.ID))
	}
	if inv.AnswerTo != "" && !idRe.MatchString(inv.AnswerTo) {
		return bad("answer_to", "%s is not an invitation id: 1 to 64 letters, digits, - and _", policy.Quote(inv.AnswerTo))
	}
	if strings.TrimSpace(inv.Name) == "" {
		return bad("name", "missing: the organisation's name")
	}
	// A person reads the name, the groups and the addresses before confirming the fingerprint:
	// nothing in them may act on a terminal, or read otherwise than it is.
	if err := plainText(inv.Name, maxName); err != nil {
		return bad("name", "%s: %v", policy.Quote(inv.Name), err)
	}
	td, err := spiffeid.TrustDomainFromString(inv.TrustDomain)
	if err != nil || strings.Contains(inv.TrustDomain, "/") {
		return bad("trust_domain", "%q is not a trust domain", inv.TrustDomain)
	}
	id, err := spiffeid.FromString(inv.SpiffeID)
	if err != nil {
		return bad("spiffe_id", "%q is not a SPIFFE ID", inv.SpiffeID)
	}
	if id.TrustDomain() != td || !strings.HasPrefix(id.Path(), "/node/") {
		return bad("spiffe_id", "%s is not a replica of %s: a node signs with spiffe://%s/node/<replica>", id, td, td)
	}
	if len(inv.Addresses) == 0 {
		return bad("addresses", "none: the node names no address to reach it at (set advertise in its config)")
	}
	if len(inv.Addresses) > maxAddresses {
		return bad("addresses", "%d, over the limit of %d", len(inv.Addresses), maxAddresses)
	}
	for i, a := range inv.Addresses {
		if _, _, err := netaddr.Dial(a); err != nil {
			return bad(fmt.Sprintf("addresses[%d]", i), "%s: %v", policy.Quote(a), err)
		}
	}
	if inv.BundleEndpoint != "" && !strings.HasPrefix(inv.BundleEndpoint, "https://") {
		return bad("bundle_endpoint", "%q is not an https:// URL", inv.BundleEndpoint)
	}
	if inv.Bundle == "" {
		return bad("bundle", "missing: the trust bundle")
	}
	if len(inv.Groups) > MaxGroups {
		return bad("groups", "%d, over the limit of %d", len(inv.Groups), MaxGroups)
	}
	for i, g := range inv.Groups {
		if g == "" || strings.ContainsAny(g, " \t\n,:") || plainText(g, maxName) != nil {
			return bad(fmt.Sprintf("groups[%d]", i), "%s is not a group name", policy.Quote(g))
		}
	}
	if inv.IssuedAt.IsZero() || inv.ExpiresAt.IsZero() {
		return bad("expires_at", "issued_at and expires_at must both be set")
	}
	if !inv.ExpiresAt.After(inv.IssuedAt) || inv.ExpiresAt.Sub(inv.IssuedAt) > MaxTTL {
		return bad("expires_at", "%s is not within %s after issued_at %s", inv.ExpiresAt.UTC().Format(time.RFC3339), MaxTTL, inv.IssuedAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// MaxGroups bounds the groups an invitation proposes, and those a node places a peer in.
const MaxGroups = 64

// Bounds on an invitation's fields that a person reads.
const (
	maxName      = 200
	maxAddresses = 16
)

var idRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// plainText checks text a person reads to decide: valid UTF-8 of at most max bytes, without a
// character that policy.Hidden names (controls, bidi and other invisible formatting, line and
// paragraph separators), each of which could make it read otherwise than it is.
func plainText(s string, max int) error {
	switch {
	case len(s) > max:
		return fmt.Errorf("%d bytes, over the limit of %d", len(s), max)
	case !utf8.ValidString(s):
		return errors.New("not UTF-8")
	case strings.ContainsFunc(s, policy.Hidden):
		return errors.New("holds a control or invisible formatting character")
	}
	return nil
}

// Fingerprint is what two people compare over the phone: six groups of five digits over the trust
// domain and the CA certificates of its bundle, in any order. It is the same for every invitation
// of a trust domain until its CA changes, like Signal's safety numbers for a contact's key.
func Fingerprint(td spiffeid.TrustDomain, bundle *x509bundle.Bundle) string {
	var ders [][]byte
	for _, c := range bundle.X509Authorities() {
		ders = append(ders, c.Raw)
	}
	slices.SortFunc(ders, bytes.Compare)
	h := sha256.New()
	h.Write([]byte("knooppunt-fingerprint/1\x00"))
	h.Write([]byte(td.Name()))
	for _, d := range ders {
		sum := sha256.Sum256(d)
		h.Write([]byte{0})
		h.Write(sum[:])
	}
	sum := h.Sum(nil)
	groups := make([]string, 6)
	for i := range groups {
		// Five bytes give 40 bits; modulo 100000 their bias is below one in ten million.
		var b [8]byte
		copy(b[3:], sum[i*5:i*5+5])
		groups[i] = fmt.Sprintf("%05d", binary.BigEndian.Uint64(b[:])%100000)
	}
	return strings.Join(groups, " ")
}

// Fingerprint is the fingerprint of the invitation's trust domain and bundle.
func (inv *Invitation) Fingerprint() (string, error) {
	td, err := spiffeid.TrustDomainFromString(inv.TrustDomain)
	if err != nil {
		return "", fmt.Errorf("%w: trust_domain: %v", ErrMalformed, err)
	}
	b, err := x509bundle.Parse(td, []byte(inv.Bundle))
	if err != nil {
		return "", fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
	}
	return Fingerprint(td, b), nil
}
