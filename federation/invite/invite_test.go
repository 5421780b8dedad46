package invite_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/federation/invite"
)

// t0 is now, to the second: the test CA issues its SVIDs at the real clock, so an invitation's
// times must be around it.
var t0 = time.Now().UTC().Truncate(time.Second)

func bundlePEM(t *testing.T, ca *identity.DevCA) string {
	t.Helper()
	pem, err := identitytest.Bundle(ca).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(pem)
}

func newInvitation(t *testing.T, ca *identity.DevCA) invite.Invitation {
	return invite.Invitation{
		Name: "VR Brabant-Noord", TrustDomain: ca.TrustDomain.Name(), Addresses: []string{"127.0.0.1:7443"},
		BundleEndpoint: "https://127.0.0.1:8443", Bundle: bundlePEM(t, ca), Groups: []string{"veiligheidsregios"},
		IssuedAt: t0, ExpiresAt: t0.Add(invite.DefaultTTL),
	}
}

func sign(t *testing.T, inv invite.Invitation, ca *identity.DevCA) []byte {
	t.Helper()
	// From t0, when the invitations say they were issued: the CAs begin a minute before they are
	// made, so never after it. A minute before t0 preceded a CA made more than a second after t0
	// (in whole seconds), which is not valid then, and a test that checks the chain at the SVID's
	// start failed on a busy machine.
	svid := identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{NotBefore: t0, TTL: time.Hour})
	file, err := invite.Sign(inv, svid)
	if err != nil {
		t.Fatal(err)
	}
	return file
}

// rewrite decodes a file, changes its invitation with edit, and encodes it again with the
// original chain and signature: what someone who tampers with a file on its way would do.
func rewrite(t *testing.T, file []byte, edit func(inv map[string]any)) []byte {
	t.Helper()
	var env map[string]any
	if err := json.Unmarshal(file, &env); err != nil {
		t.Fatal(err)
	}
	var payload []byte
	raw, _ := json.Marshal(env["invitation"])
	if err := json.Unmarshal(raw, &payload); err != nil {
		t.Fatal(err)
	}
	var inv map[string]any
	if err := json.Unmarshal(payload, &inv); err != nil {
		t.Fatal(err)
	}
	edit(inv)
	payload, _ = json.Marshal(inv)
	env["invitation"] = payload
	out, _ := json.Marshal(env)
	return out
}

// rewrap is file with the invitation's bytes replaced by payload, unsigned anew.
func rewrap(t *testing.T, file, payload []byte) []byte {
	t.Helper()
	var env map[string]any
	if err := json.Unmarshal(file, &env); err != nil {
		t.Fatal(err)
	}
	env["invitation"] = payload
	out, _ := json.Marshal(env)
	return out
}

func TestOpenSigned(t *testing.T) {
	ca := identitytest.NewCA(t, "vr-brabant-noord.crisis.test")
	file := sign(t, newInvitation(t, ca), ca)
	inv, err := invite.Open(file, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if inv.TrustDomain != "vr-brabant-noord.crisis.test" || inv.SpiffeID != "spiffe://vr-brabant-noord.crisis.test/node/r1" ||
		inv.Addresses[0] != "127.0.0.1:7443" || inv.ID == "" || inv.Groups[0] != "veiligheidsregios" {
		t.Fatalf("opened %+v", inv)
	}
	// The SVID that signed it expired long ago: the chain counts at the time of signing.
	if _, err := invite.Open(file, t0.Add(20*time.Hour)); err != nil {
		t.Fatalf("an invitation within its expiry, signed by an SVID that has since expired: %v", err)
	}
	fp, err := inv.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\d{5}( \d{5}){5}$`).MatchString(fp) {
		t.Fatalf("fingerprint %q is not six groups of five digits", fp)
	}
	// The same trust domain and bundle give the same fingerprint in every invitation; another CA
	// gives another.
	again, _ := invite.Open(sign(t, newInvitation(t, ca), ca), t0)
	if fp2, _ := again.Fingerprint(); fp2 != fp {
		t.Fatalf("fingerprints of two invitations of one CA differ: %s, %s", fp, fp2)
	}
	other := identitytest.NewCA(t, "vr-brabant-noord.crisis.test")
	if fp3 := invite.Fingerprint(spiffeid.RequireTrustDomainFromString("vr-brabant-noord.crisis.test"), identitytest.Bundle(other)); fp3 == fp {
		t.Fatal("two CAs of one trust domain give one fingerprint")
	}
}

func TestOpenRefuses(t *testing.T) {
	ca := identitytest.NewCA(t, "vr-brabant-noord.crisis.test")
	mallory := identitytest.NewCA(t, "vr-brabant-noord.crisis.test")
	good := sign(t, newInvitation(t, ca), ca)
	now := t0.Add(time.Hour)

	// Signed by a key of another CA, with the genuine bundle in it.
	foreign := sign(t, newInvitation(t, ca), mallory)

	expired := newInvitation(t, ca)
	expired.ExpiresAt = t0.Add(time.Minute)

	// Dated before the signing SVID began: a clock, not a forgery (review onboard F6).
	early := newInvitation(t, ca)
	early.IssuedAt = t0.Add(-2 * time.Hour)
	earlyForeign := sign(t, early, mallory)

	for _, c := range []struct {
		name string
		file []byte
		at   time.Time
		want error
		text string
	}{
		{"changed address", rewrite(t, good, func(inv map[string]any) { inv["addresses"] = []string{"evil.example:7443"} }), now, invite.ErrSignature, "does not match the invitation's contents"},
		{"changed trust domain", rewrite(t, good, func(inv map[string]any) { inv["trust_domain"] = "ncc.crisis.test" }), now, invite.ErrMalformed, "spiffe_id"},
		{"changed bundle", rewrite(t, good, func(inv map[string]any) { inv["bundle"] = bundlePEM(t, mallory) }), now, invite.ErrSignature, "does not verify against the invitation's own bundle"},
		{"added bundle CA", rewrite(t, good, func(inv map[string]any) { inv["bundle"] = inv["bundle"].(string) + bundlePEM(t, mallory) }), now, invite.ErrSignature, "does not match the invitation's contents"},
		{"changed expiry", rewrite(t, good, func(inv map[string]any) { inv["expires_at"] = t0.Add(72 * time.Hour) }), now, invite.ErrSignature, "does not match"},
		{"signed outside its bundle", foreign, now, invite.ErrSignature, "signed by a key outside that bundle"},
		{"expired", sign(t, expired, ca), now, invite.ErrExpired, "expired at " + t0.Add(time.Minute).Format(time.RFC3339)},
		{"issued in the future", good, t0.Add(-time.Hour), invite.ErrExpired, "ahead of this machine's clock"},
		{"issued before its signer", sign(t, early, ca), now, invite.ErrExpired, "a time problem, not a forgery: it says it was issued at " + early.IssuedAt.Format(time.RFC3339) + ", outside the life of the SVID that signed it"},
		{"issued before a foreign signer", earlyForeign, now, invite.ErrSignature, "signed by a key outside that bundle"},
		{"issued before its signer, changed", rewrite(t, sign(t, early, ca), func(inv map[string]any) { inv["addresses"] = []string{"evil.example:7443"} }), now, invite.ErrSignature, "signed by a key outside that bundle"},
		{"not an invitation", []byte(`{"hello":1}`), now, invite.ErrMalformed, "not an invitation file"},
		// In JSON's words, never Go's (review AF, AF7).
		{"a JSON array", []byte(`[]`), now, invite.ErrMalformed, "malformed invitation: not an invitation file (a JSON array, where it takes an object): use the file `knooppunt peer invite` wrote"},
		{"a field of another type", []byte(`{"format":["x"]}`), now, invite.ErrMalformed, "(format is a JSON array, where it takes text)"},
		{"a chain of another type", []byte(`{"chain":{}}`), now, invite.ErrMalformed, "(chain is a JSON object, where it takes a list)"},
		{"not JSON", []byte(`{"format":`), now, invite.ErrMalformed, "(the JSON ends too soon)"},
		{"garbage", []byte(`zz`), now, invite.ErrMalformed, "(not JSON at byte 1)"},
		{"an invitation that is a number", rewrap(t, good, []byte(`12`)), now, invite.ErrMalformed, "invitation: a JSON number, where it takes an object"},
		{"other format", []byte(`{"format":"x/9"}`), now, invite.ErrMalformed, `format "x/9"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			inv, err := invite.Open(c.file, c.at)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("Open = %+v, %v; want %v containing %q", inv, err, c.want, c.text)
			}
		})
	}
}

func TestSignChecks(t *testing.T) {
	ca := identitytest.NewCA(t, "vr-brabant-noord.crisis.test")
	inv := newInvitation(t, ca)
	inv.Addresses = nil
	svid := identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{})
	if _, err := invite.Sign(inv, svid); !errors.Is(err, invite.ErrMalformed) || !strings.Contains(err.Error(), "addresses: none") {
		t.Fatalf("Sign with no addresses: %v", err)
	}
	user := identitytest.SVID(t, ca, "/user/anna", identity.SVIDOptions{})
	if _, err := invite.Sign(newInvitation(t, ca), user); err == nil || !strings.Contains(err.Error(), "is not a replica") {
		t.Fatalf("Sign with a user's SVID: %v", err)
	}
}

// TestOpenRefusesWhatMisleadsAReader: the fields a person reads before confirming the fingerprint
// hold no character a terminal acts on, nor any that shows nothing or reorders the text, and are
// bounded (review20 H1: a name's escapes wrote a partner's genuine fingerprint over the real one).
func TestOpenRefusesWhatMisleadsAReader(t *testing.T) {
	ca := identitytest.NewCA(t, "vr-brabant-noord.crisis.test")
	good := sign(t, newInvitation(t, ca), ca)
	now := t0.Add(time.Hour)
	for _, c := range []struct {
		field string
		value any
	}{
		{"name", "NCC\x1b7\x1b[1A\r\x1b[2KFingerprint: 29800 04454 12345 61209 19462 40951\x1b8"},
		{"name", "NCC\u202egnicsiR"},
		{"name", "N\u200bCC"},
		{"name", "NCC\u2028Fingerprint"},
		{"name", strings.Repeat("N", 201)},
		{"id", "\x1b]52;c;ZXZpbA==\a"},
		{"id", strings.Repeat("a", 65)},
		{"answer_to", strings.Repeat("\u202e", 10)},
		{"groups", []string{"rijk\x1b[8m"}},
		{"groups", make([]string, 65)},
		{"addresses", []string{"host\x1bM\u202e:7443"}},
		{"addresses", []string{"a b:7443"}},
		{"addresses", []string{"host:99999"}},
		{"addresses", []string{"h:1", "h:2", "h:3", "h:4", "h:5", "h:6", "h:7", "h:8", "h:9", "h:10", "h:11", "h:12", "h:13", "h:14", "h:15", "h:16", "h:17"}},
	} {
		file := rewrite(t, good, func(inv map[string]any) { inv[c.field] = c.value })
		if inv, err := invite.Open(file, now); !errors.Is(err, invite.ErrMalformed) || !strings.Contains(err.Error(), c.field) || strings.ContainsAny(err.Error(), "\x1b\a\u202e\u200b\u2028") {
			t.Errorf("%s %q: Open = %+v, %v; want ErrMalformed naming %s, with no raw escape", c.field, c.value, inv, err, c.field)
		}
	}
}

// TestOpenRefusesAStaleSigner: an invitation whose signing SVID ended weeks ago (an old replica's
// key, one from a backup, dated back into its life) does not open, however far its own expiry
// reaches; one whose SVID ended two days ago does (review20 M1).
func TestOpenRefusesAStaleSigner(t *testing.T) {
	ca := identitytest.NewCA(t, "vr-brabant-noord.crisis.test")
	svid := identitytest.SVID(t, ca, "/node/old", identity.SVIDOptions{NotBefore: t0.Add(-time.Minute), TTL: time.Hour})
	inv := newInvitation(t, ca)
	inv.ExpiresAt = t0.Add(invite.MaxTTL)
	file, err := invite.Sign(inv, svid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := invite.Open(file, t0.Add(25*24*time.Hour)); !errors.Is(err, invite.ErrExpired) || !strings.Contains(err.Error(), "the SVID that signed it expired") {
		t.Errorf("25 days after the signing SVID ended: %v; want ErrExpired naming the SVID", err)
	}
	inv2, err := invite.Open(file, t0.Add(48*time.Hour))
	if err != nil {
		t.Fatalf("47 hours after the signing SVID ended, the invitation valid for 30 days: %v", err)
	}
	// The file says the expiry its partner keeps: a week past the SVID's end, not the 30 days
	// asked (review21 M3).
	if want := svid.Certificates[0].NotAfter.Add(invite.MaxAfterSVID).UTC().Truncate(time.Second); !inv2.ExpiresAt.Equal(want) {
		t.Errorf("expires at %s, want %s: a week after the signing SVID's end", inv2.ExpiresAt, want)
	}
}
