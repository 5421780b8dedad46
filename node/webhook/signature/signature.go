// Package signature signs and verifies webhook deliveries after the Standard Webhooks convention
// (webhook-id, webhook-timestamp and webhook-signature headers, HMAC-SHA256 over
// "id.timestamp.body"), with signing secrets shown as whsec_ and base64.
//
// It imports the standard library alone, so that a receiver verifies what a node sends with it
// without the node (SQLite, Raft, cgo): go get the module and import this package only.
package signature

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of the Standard Webhooks convention.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// secretPrefix marks a secret as a Standard Webhooks signing secret, so that receivers' libraries
// take it as it is shown.
const secretPrefix = "whsec_"

// DefaultTolerance is how far a delivery's timestamp may lie from the receiver's clock before
// Verify refuses it as a replay.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify and ParseSecret.
var (
	ErrSecret       = errors.New("webhook: the secret is not a signing secret: want whsec_ and base64 of 24 to 64 bytes")
	ErrMissing      = errors.New("webhook: webhook-id, webhook-timestamp and webhook-signature are all required")
	ErrTimestamp    = errors.New("webhook: webhook-timestamp is not a time in whole seconds since 1970")
	ErrStale        = errors.New("webhook: webhook-timestamp is too far from now: a replay, or a clock that is off")
	ErrNoValidSigns = errors.New("webhook: no webhook-signature matches the body")
)

// Secret is a signing secret.
type Secret struct{ key []byte }

// NewSecret makes a random secret of 32 bytes.
func NewSecret() (Secret, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return Secret{}, fmt.Errorf("webhook: %w", err)
	}
	return Secret{key: key}, nil
}

// ParseSecret reads a secret as String shows it.
func ParseSecret(s string) (Secret, error) {
	enc, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return Secret{}, ErrSecret
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(key) < 24 || len(key) > 64 {
		return Secret{}, ErrSecret
	}
	return Secret{key: key}, nil
}

// String is the secret as it is shown once, at creation, and as a receiver configures it.
func (s Secret) String() string { return secretPrefix + base64.StdEncoding.EncodeToString(s.key) }

// sign is the v1 signature of one delivery.
func (s Secret) sign(id string, at int64, body []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	fmt.Fprintf(m, "%s.%d.", id, at)
	m.Write(body)
	return m.Sum(nil)
}

// Sign sets the three headers of a delivery of body with id at time at. The same id is sent on
// every attempt of one delivery, so that the receiver can drop a repeat (the idempotency key).
// Each secret of also adds its signature, space-separated, as while a rotated secret's
// predecessor still signs: a receiver that holds either finds one that matches.
func (s Secret) Sign(h http.Header, id string, at time.Time, body []byte, also ...Secret) {
	ts := at.Unix()
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	sigs := "v1," + base64.StdEncoding.EncodeToString(s.sign(id, ts, body))
	for _, o := range also {
		sigs += " v1," + base64.StdEncoding.EncodeToString(o.sign(id, ts, body))
	}
	h.Set(HeaderSignature, sigs)
}

// Verify checks a delivery as a receiver does: the headers are present, the timestamp lies
// within tolerance of now (DefaultTolerance when 0), and one of the space-separated v1
// signatures is the body's. It returns the delivery's id.
func (s Secret) Verify(h http.Header, body []byte, now time.Time, tolerance time.Duration) (string, error) {
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return "", ErrMissing
	}
	at, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", ErrTimestamp
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Sub(time.Unix(at, 0)); d > tolerance || d < -tolerance {
		return "", ErrStale
	}
	want := s.sign(id, at, body)
	for _, sig := range strings.Fields(sigs) {
		version, enc, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue // another scheme: a receiver must skip what it does not know
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err == nil && hmac.Equal(got, want) {
			return id, nil
		}
	}
	return "", ErrNoValidSigns
}
