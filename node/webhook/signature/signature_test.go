package signature_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/webhook/signature"
)

// TestSignVerify: a signed delivery verifies; any change to the body, the id, the timestamp or
// the secret, a stale timestamp and a missing header are refused with the reason.
func TestSignVerify(t *testing.T) {
	s, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := signature.ParseSecret(s.String())
	if err != nil {
		t.Fatalf("ParseSecret(String()): %v", err)
	}
	other, _ := signature.NewSecret()
	now := time.Unix(1_790_000_000, 0)
	body := []byte(`{"record":{"id":"s1"}}`)
	signed := func() http.Header {
		h := http.Header{}
		s.Sign(h, "msg_1", now, body)
		return h
	}
	if id, err := parsed.Verify(signed(), body, now.Add(time.Minute), 0); err != nil || id != "msg_1" {
		t.Fatalf("Verify: %q, %v", id, err)
	}
	// A receiver that also accepts a rotated secret's signature: several, space-separated.
	h := signed()
	h.Set(signature.HeaderSignature, "v1,AAAA v2,xyz "+h.Get(signature.HeaderSignature))
	if _, err := s.Verify(h, body, now, 0); err != nil {
		t.Fatalf("Verify with several signatures: %v", err)
	}
	for _, tc := range []struct {
		name   string
		secret signature.Secret
		change func(http.Header)
		body   string
		at     time.Time
		want   error
	}{
		{"another body", s, nil, `{"record":{"id":"s2"}}`, now, signature.ErrNoValidSigns},
		{"another id", s, func(h http.Header) { h.Set(signature.HeaderID, "msg_2") }, "", now, signature.ErrNoValidSigns},
		{"another timestamp", s, func(h http.Header) { h.Set(signature.HeaderTimestamp, "1790000001") }, "", now, signature.ErrNoValidSigns},
		{"another secret", other, nil, "", now, signature.ErrNoValidSigns},
		{"too old", s, nil, "", now.Add(6 * time.Minute), signature.ErrStale},
		{"from the future", s, nil, "", now.Add(-6 * time.Minute), signature.ErrStale},
		{"no signature", s, func(h http.Header) { h.Del(signature.HeaderSignature) }, "", now, signature.ErrMissing},
		{"bad timestamp", s, func(h http.Header) { h.Set(signature.HeaderTimestamp, "soon") }, "", now, signature.ErrTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := signed()
			if tc.change != nil {
				tc.change(h)
			}
			b := body
			if tc.body != "" {
				b = []byte(tc.body)
			}
			if _, err := tc.secret.Verify(h, b, tc.at, 0); !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestSignatureIsTheConvention: the signature is HMAC-SHA256 with the secret's decoded key over
// "id.timestamp.body", base64, after "v1,", so a receiver's own Standard Webhooks code agrees.
func TestSignatureIsTheConvention(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	s, err := signature.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	body := []byte(`{"test": 2432232314}`)
	s.Sign(h, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), body)
	key, _ := base64.StdEncoding.DecodeString(secret[len("whsec_"):])
	m := hmac.New(sha256.New, key)
	m.Write([]byte("msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	if got := h.Get(signature.HeaderSignature); got != want {
		t.Fatalf("webhook-signature %q, want %q", got, want)
	}
	for _, bad := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!", "whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, err := signature.ParseSecret(bad); !errors.Is(err, signature.ErrSecret) {
			t.Errorf("ParseSecret(%q): %v, want ErrSecret", bad, err)
		}
	}
}
