package node_test

// The REST/JSON API through a real node: real HTTPS on loopback, X.509-SVIDs over mutual TLS and
// JWT-SVIDs as bearer tokens, each call decided by the same method→role table as over gRPC.

import (
	"bytes"
	"cmp"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// restAudience is the audience the test node's config names.
const restAudience = "https://api.vr-utrecht.crisis.test"

// restNode is a node serving the REST API, with the key that signs its org's JWT-SVIDs.
type restNode struct {
	*mtlsNode
	base   string // https://127.0.0.1:PORT
	jwtKey crypto.Signer
	kid    string
}

func startRESTNode(t *testing.T, opts ...func(*node.Options)) *restNode {
	t.Helper()
	return startRESTNodeWith(t, "", opts...)
}

// startRESTNodeWith is startRESTNode with more of the node's config (YAML, whole top-level keys).
func startRESTNodeWith(t *testing.T, config string, opts ...func(*node.Options)) *restNode {
	t.Helper()
	o := newMTLSOrg(t, mtlsOwnTD)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const kid = "jwt-1"
	doc, err := spiffebundle.FromJWTAuthorities(o.td, map[string]crypto.PublicKey{kid: key.Public()}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	bundleFile := filepath.Join(o.dir, "jwt-bundle.json")
	identitytest.WriteFile(t, bundleFile, doc)
	body := o.filesIdentity() + fmt.Sprintf(`roles:
  - {id: spiffe://%[1]s/user/rita, role: reader}
  - {id: spiffe://%[1]s/user/erik, role: editor}
  - {id: spiffe://%[1]s/user/olga, role: officer}
  - {id: spiffe://%[1]s/user/ada, role: admin}
http:
  listen: 127.0.0.1:0
  jwt_bundle_file: %[2]s
  audience: [%[3]s]
`, mtlsOwnTD, bundleFile, restAudience) + config
	n := startMTLSNode(t, o, body, opts...)
	if n.RESTAddr() == nil {
		t.Fatal("RESTAddr is nil with http.listen set")
	}
	return &restNode{mtlsNode: n, base: "https://" + n.RESTAddr().String(), jwtKey: key, kid: kid}
}

// mtlsClient calls the API with an X.509-SVID of path.
func (r *restNode) mtlsClient(t *testing.T, path string) *http.Client {
	svid := r.org.svid(t, path)
	conf := tlsconfig.MTLSClientConfig(svid, identitytest.Bundle(r.org.ca), tlsconfig.AuthorizeMemberOf(r.org.td))
	return restHTTP(t, conf)
}

// tlsClient calls the API without a client certificate, verifying the node's SVID.
func (r *restNode) tlsClient(t *testing.T) *http.Client {
	return restHTTP(t, tlsconfig.TLSClientConfig(identitytest.Bundle(r.org.ca), tlsconfig.AuthorizeMemberOf(r.org.td)))
}

func restHTTP(t *testing.T, conf *tls.Config) *http.Client {
	tr := &http.Transport{TLSClientConfig: conf}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// token mints a JWT-SVID for sub, signed with key under kid.
func mintJWT(t *testing.T, key crypto.Signer, kid, sub string, aud []string, exp time.Time) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{
		Subject: sub, Audience: aud, Expiry: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(time.Now().Add(-time.Minute)),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (r *restNode) jwt(t *testing.T, user string) string {
	return mintJWT(t, r.jwtKey, r.kid, "spiffe://"+mtlsOwnTD+"/user/"+user, []string{restAudience}, time.Now().Add(5*time.Minute))
}

// restResult is one answer of the API.
type restResult struct {
	code   int
	body   map[string]any
	raw    string
	header http.Header
	closed bool // the server closes the connection after this answer
}

// call sends method path with body (JSON, or nil) and, when token is set, a bearer token.
func (r *restNode) call(t *testing.T, c *http.Client, method, path, token string, body any, header ...string) restResult {
	t.Helper()
	var in io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := body.(string); ok {
			b = []byte(s)
		}
		in = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(mtlsCtx(t), method, r.base+path, in)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	res := restResult{code: resp.StatusCode, raw: string(raw), header: resp.Header, closed: resp.Close}
	json.Unmarshal(raw, &res.body)
	return res
}

func (res restResult) want(t *testing.T, what string, code int, contains ...string) {
	t.Helper()
	if res.code != code {
		t.Fatalf("%s: HTTP %d, want %d: %s", what, res.code, code, res.raw)
	}
	for _, c := range contains {
		if !strings.Contains(res.raw, c) {
			t.Fatalf("%s: answer does not contain %q: %s", what, c, res.raw)
		}
	}
}

// restRecord is a valid record as a REST client sends it: body is bytes, so base64 in JSON.
func restRecord(id string) map[string]any {
	return map[string]any{
		"id": id, "kind": "shelter.capacity", "crisis": "oekraine", "region": "VR09", "classification": "INTERNAL",
		"body": []byte(`{"municipality":"Utrecht","beds_total":100,"beds_free":14}`),
	}
}

// TestRESTOverMTLS: an editor writes and a reader reads over mutual TLS; a reader's write is
// 403, decided by MethodRoles and audited as a refused call.
func TestRESTOverMTLS(t *testing.T) {
	n := startRESTNode(t)
	editor, reader := n.mtlsClient(t, "/user/erik"), n.mtlsClient(t, "/user/rita")

	n.call(t, editor, "POST", "/v1/records", "", restRecord("rest-1")).want(t, "editor POST", 200, `"id":"rest-1"`, `"version":"1"`)
	got := n.call(t, reader, "GET", "/v1/records/rest-1", "", nil)
	got.want(t, "reader GET", 200, `"kind":"shelter.capacity"`, `"origin":"`+mtlsOwnTD+`"`)
	n.call(t, reader, "GET", "/v1/records?kind=shelter.capacity", "", nil).want(t, "reader list", 200, `"rest-1"`)
	n.call(t, reader, "GET", "/v1/status", "", nil).want(t, "reader status", 200, `"org":"`+mtlsOwnTD+`"`)
	n.call(t, reader, "GET", "/v1/pictures/oekraine", "", nil).want(t, "reader picture", 200, `rest-1`, `"partial":false`, `"peers":[]`)
	n.call(t, reader, "GET", "/v1/pictures/oekraine?skip_peer_check=true", "", nil).want(t, "reader picture, no peers asked", 200, `rest-1`)

	n.call(t, reader, "POST", "/v1/records", "", restRecord("rest-2")).want(t, "reader POST", 403, "needs the role editor", `"reason":"ROLE_DENIED"`, `"metadata":{"needs":"editor,admin"}`)
	n.call(t, reader, "GET", "/v1/records/rest-2", "", nil).want(t, "refused write stored nothing", 404)
	n.call(t, reader, "GET", "/v1/audit", "", nil).want(t, "reader audit", 403)
	n.log.Wait(t, 5*time.Second, "call refused", identitytest.Refusal("spiffe://"+mtlsOwnTD+"/user/rita", "may not call RecordService/Put"))
	// The refusal is in the audit log too, as one through the web interface is.
	officer := n.mtlsClient(t, "/user/olga")
	identitytest.Eventually(t, 5*time.Second, "the refused REST write in the audit log", func() bool {
		res := n.call(t, officer, "GET", "/v1/audit?action=access.denied&actor=spiffe://"+mtlsOwnTD+"/user/rita", "", nil)
		return res.code == 200 && strings.Contains(res.raw, "RecordService/Put")
	})

	// A peer's SVID verifies, but a peer may call only the FederationService.
	peer := newMTLSOrg(t, mtlsPeerTD)
	foreign := restHTTP(t, tlsconfig.MTLSClientConfig(peer.svid(t, "/user/x"), identitytest.Bundle(n.org.ca), tlsconfig.AuthorizeMemberOf(n.org.td)))
	req, _ := http.NewRequestWithContext(mtlsCtx(t), "GET", n.base+"/v1/records/rest-1", nil)
	if resp, err := foreign.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("an SVID of an unknown trust domain got HTTP %d, want a refused handshake", resp.StatusCode)
	}
	// Audited as on the gRPC listener, under the ID the certificate claims.
	identitytest.Eventually(t, 5*time.Second, "the refused REST handshake in the audit log", func() bool {
		res := n.call(t, officer, "GET", "/v1/audit?action=tls.refused", "", nil)
		return res.code == 200 && strings.Contains(res.raw, "spiffe://"+mtlsPeerTD+"/user/x")
	})
}

// TestRESTSyncPollSeesARecordRaised: a public dashboard's sync poll (max_classification PUBLIC,
// updated_since, include_deleted) gets a tombstone for a record its owner raised to confidential,
// in the classification it left, so that it drops its copy (review X, X2).
func TestRESTSyncPollSeesARecordRaised(t *testing.T) {
	n := startRESTNode(t)
	editor := n.mtlsClient(t, "/user/erik")
	rec := restRecord("verhoogd")
	rec["classification"] = "PUBLIC"
	n.call(t, editor, "POST", "/v1/records", "", rec).want(t, "a public record", 200)
	cut := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(10 * time.Millisecond) // the raise is stamped after the cut
	rec["classification"] = "CONFIDENTIAL"
	n.call(t, editor, "POST", "/v1/records", "", rec).want(t, "raised to confidential", 200, `"version":"2"`)
	poll := "/v1/records?max_classification=PUBLIC&include_deleted=true&updated_since=" + url.QueryEscape(cut)
	n.call(t, editor, "GET", poll, "", nil).want(t, "the poll after the raise", 200,
		`"id":"verhoogd"`, `"classification":"PUBLIC"`, `"tombstone":true`, `"version":"2"`)
}

// TestRESTDiskLow: a write refused for the disk (DISK_LOW: less free than the reserve, or full) is
// 503 with Retry-After over REST, which clients retry later, not 413, which says the request is
// too large and is dropped (review X, X3); reads go on.
func TestRESTDiskLow(t *testing.T) {
	n := startRESTNodeWith(t, "limits: {disk_reserve_mib: 1073741824}\n") // more than any disk
	editor := n.mtlsClient(t, "/user/erik")
	res := n.call(t, editor, "POST", "/v1/records", "", restRecord("laag-1"))
	res.want(t, "a write on a low disk", 503, `"reason":"DISK_LOW"`, "under its reserve")
	if got := res.header.Get("Retry-After"); got != "60" {
		t.Errorf("a write on a low disk: Retry-After %q, want 60", got)
	}
	n.call(t, editor, "POST", "/v1/records:batch", "", map[string]any{"records": []any{restRecord("laag-2")}}).want(t, "a batch on a low disk", 503, `"reason":"DISK_LOW"`)
	n.call(t, editor, "GET", "/v1/status", "", nil).want(t, "a read on a low disk", 200)
}

// TestRESTSearchSuggests: a REST search on a misspelt word gets the words to search with
// instead in the header Knooppunt-Suggest, as a gRPC caller gets them in a trailer, encoded so
// that a word that is not ASCII travels; a search that finds enough gets none.
func TestRESTSearchSuggests(t *testing.T) {
	n := startRESTNode(t)
	editor, reader := n.mtlsClient(t, "/user/erik"), n.mtlsClient(t, "/user/rita")
	body, _ := json.Marshal(map[string]string{"question": "Mag een ontheemde werken?", "answer": "Ja, zonder tewerkstellingsvergunning, ook wie uit Харків komt."})
	n.call(t, editor, "POST", "/v1/records", "", map[string]any{"id": "qa-werk", "kind": "qa", "crisis": "oekraine", "region": "NL",
		"classification": "PUBLIC", "body": body}).want(t, "editor POST", 200)
	search := func(text string) restResult {
		return n.call(t, reader, "POST", "/v1/search", "", map[string]any{"filter": map[string]any{"text": text}, "timeout_ms": 1000})
	}
	for text, want := range map[string]string{
		"tewerkstellingsvergunnign": "tewerkstellingsvergunning",
		"zonder хакрів":             "zonder%20%D1%85%D0%B0%D1%80%D0%BA%D1%96%D0%B2",
	} {
		res := search(text)
		res.want(t, "search "+text, 200)
		if got := res.header.Get("Knooppunt-Suggest"); got != want {
			t.Errorf("search %q: Knooppunt-Suggest %q, want %q", text, got, want)
		}
	}
	res := search("tewerkstellingsvergunning")
	res.want(t, "search spelt right", 200, "qa-werk")
	if got := res.header.Get("Knooppunt-Suggest"); got != "" {
		t.Errorf("a search that finds the record got Knooppunt-Suggest %q", got)
	}
}

// TestRESTClosesTheConnectionOfAnEndedSVID: a client's X.509-SVID is verified again on
// each request, not only at the handshake: on a connection kept open past the SVID's end, the
// next request is served and the connection closed, so that the one after needs a handshake,
// which the ended SVID fails (review fed-adversary 2).
func TestRESTClosesTheConnectionOfAnEndedSVID(t *testing.T) {
	n := startRESTNode(t)
	svid := identitytest.SVID(t, n.org.ca, "/user/rita", identity.SVIDOptions{NotBefore: time.Now(), TTL: 2 * time.Second})
	reader := restHTTP(t, tlsconfig.MTLSClientConfig(svid, identitytest.Bundle(n.org.ca), tlsconfig.AuthorizeMemberOf(n.org.td)))
	n.call(t, reader, "GET", "/v1/status", "", nil).want(t, "reader status", 200)
	time.Sleep(time.Until(svid.Certificates[0].NotAfter) + 100*time.Millisecond)
	res := n.call(t, reader, "GET", "/v1/status", "", nil)
	res.want(t, "reader status on the open connection after the SVID ended", 200)
	if !res.closed {
		t.Error("the connection of an ended SVID stays open: the client is to connect again, with its current SVID")
	}
	req, _ := http.NewRequestWithContext(mtlsCtx(t), "GET", n.base+"/v1/status", nil)
	if resp, err := reader.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("a request with an ended SVID on a new connection: HTTP %d, want a refused handshake", resp.StatusCode)
	}
}

// TestRESTOverJWTSVID: bearer JWT-SVIDs are checked against the org's JWT bundle with an
// audience that names this node; the role table decides as over mTLS.
func TestRESTOverJWTSVID(t *testing.T) {
	n := startRESTNode(t)
	c := n.tlsClient(t)

	n.call(t, c, "POST", "/v1/records", n.jwt(t, "erik"), restRecord("jwt-1")).want(t, "editor POST", 200, `"id":"jwt-1"`)
	n.call(t, c, "GET", "/v1/records/jwt-1", n.jwt(t, "rita"), nil).want(t, "reader GET", 200, `"crisis":"oekraine"`)
	n.call(t, c, "POST", "/v1/records", n.jwt(t, "rita"), restRecord("jwt-2")).want(t, "reader POST", 403, "needs the role editor")
	n.call(t, c, "GET", "/v1/policies", n.jwt(t, "olga"), nil).want(t, "officer policies", 200)
	n.call(t, c, "GET", "/v1/audit/verify", n.jwt(t, "olga"), nil).want(t, "officer audit verify", 200)
	n.call(t, c, "DELETE", "/v1/policies/x", n.jwt(t, "olga"), nil).want(t, "policies are read-only over REST", 501)

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rita := "spiffe://" + mtlsOwnTD + "/user/rita"
	soon := time.Now().Add(5 * time.Minute)
	for _, tc := range []struct {
		name, token, want string
	}{
		{"wrong audience", mintJWT(t, n.jwtKey, n.kid, rita, []string{"https://api.other.test"}, soon), "expected audience"},
		{"expired", mintJWT(t, n.jwtKey, n.kid, rita, []string{restAudience}, time.Now().Add(-2*time.Minute)), "expired"},
		{"signed by a foreign key under the same key id", mintJWT(t, other, n.kid, rita, []string{restAudience}, soon), "unable to get claims"},
		{"signed by an unknown key", mintJWT(t, other, "jwt-9", rita, []string{restAudience}, soon), "no JWT authority"},
		{"another trust domain", mintJWT(t, other, n.kid, "spiffe://"+mtlsPeerTD+"/user/x", []string{restAudience}, soon), "no bundle found"},
		{"not a JWT", "abc.def", "unable to parse"},
		// A bearer token that leaks works until it ends (review B, L2).
		{"valid for ten years", mintJWT(t, n.jwtKey, n.kid, rita, []string{restAudience}, time.Now().Add(10*365*24*time.Hour)), "over the 24h0m0s this node takes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := n.call(t, c, "GET", "/v1/records/jwt-1", tc.token, nil)
			res.want(t, tc.name, 401, tc.want)
		})
	}

	// No credentials at all, and the web interface's session cookie is not a credential here.
	res := n.call(t, c, "GET", "/v1/records/jwt-1", "", nil, "Cookie", "kp_session=anything")
	res.want(t, "cookie only", 401, "session is not accepted")

	// An X.509-SVID and a bearer token at once: which one would the call be made as?
	n.call(t, n.mtlsClient(t, "/user/rita"), "GET", "/v1/records/jwt-1", n.jwt(t, "erik"), nil).want(t, "both", 401, "send one of them")

	// The org rotates its JWT key: the file is read again, the old key is trusted no more, and
	// the new one is, without a restart (review B, L2).
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	doc, err := spiffebundle.FromJWTAuthorities(n.org.td, map[string]crypto.PublicKey{"jwt-2": newKey.Public()}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	identitytest.WriteFile(t, filepath.Join(n.org.dir, "jwt-bundle.json"), doc)
	identitytest.Eventually(t, 5*time.Second, "the rotated JWT bundle taken", func() bool {
		return n.call(t, c, "GET", "/v1/records/jwt-1", mintJWT(t, newKey, "jwt-2", rita, []string{restAudience}, soon), nil).code == 200
	})
	n.call(t, c, "GET", "/v1/records/jwt-1", n.jwt(t, "rita"), nil).want(t, "a token of the key rotated out", 401, "no JWT authority")
}

// TestRESTBadInput: a body that does not decode, or a record that does not check, is 400 naming
// the field, and stores nothing.
func TestRESTBadInput(t *testing.T) {
	n := startRESTNode(t)
	editor := n.mtlsClient(t, "/user/erik")
	for _, tc := range []struct {
		name string
		body any
		want string
	}{
		{"unknown field", `{"id":"bad-1","kindd":"x"}`, `kindd`},
		{"wrong type", `{"id":"bad-1","kind":5}`, `kind`},
		{"not JSON", `{"id":`, `unexpected`},
		{"body as an object", `{"id":"bad-1","kind":"sitrep","body":{"title":"x"}}`, `record.body is the base64 of the JSON object`},
		{"missing crisis", func() map[string]any { r := restRecord("bad-1"); delete(r, "crisis"); return r }(), `record.crisis`},
		{"unknown kind", func() map[string]any { r := restRecord("bad-1"); r["kind"] = "no.such.kind"; return r }(), `record.kind`},
		{"misspelt classification", func() map[string]any { r := restRecord("bad-1"); r["classification"] = "INTERNL"; return r }(), `classification: \"INTERNL\": use one of PUBLIC, INTERNAL, CONFIDENTIAL or SECRET`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n.call(t, editor, "POST", "/v1/records", "", tc.body).want(t, tc.name, 400, tc.want)
		})
	}
	// A body over the node's limit is 413, not the gateway's 429, which clients retry.
	big := restRecord("bad-1")
	big["body"] = base64.StdEncoding.EncodeToString([]byte(`{"notes":"` + strings.Repeat("x", 2<<20) + `"}`))
	n.call(t, editor, "POST", "/v1/records", "", big).want(t, "a body over the limit", 413, "record.body", "over the limit")
	n.call(t, editor, "GET", "/v1/records/bad-1", "", nil).want(t, "nothing stored", 404)
	// An escaped slash in a path parameter is part of it, refused by the field's check, not a
	// route the node lacks (review AF, AF10); an escaped colon is part of the id, not a verb.
	n.call(t, editor, "GET", "/v1/records/a%2Fb", "", nil).want(t, "an escaped slash in an id", 400, `path: \"/v1/records/a%2Fb\" holds an escaped slash (%2F)`)
	n.call(t, editor, "POST", "/v1/records", "", restRecord("doc:1")).want(t, "an id with a colon", 200)
	n.call(t, editor, "GET", "/v1/records/doc%3A1", "", nil).want(t, "an escaped colon in an id", 200, `"id":"doc:1"`)
	n.call(t, editor, "GET", "/v1/records/doc:1", "", nil).want(t, "a colon in an id", 200, `"id":"doc:1"`)
	n.call(t, editor, "GET", "/v1/records?page_size=x", "", nil).want(t, "bad query parameter", 400, `page_size: \"x\" is not a whole number`)
	// The node's words, not the libraries' (review AF, AF7): strconv's, protojson's prefix, Go's
	// message type names.
	n.call(t, editor, "GET", "/v1/records?include_deleted=ja", "", nil).want(t, "a word for a bool", 400, `include_deleted: \"ja\" is not true or false`)
	n.call(t, editor, "GET", "/v1/records?mode=x", "", nil).want(t, "a value for a message", 400, `mode: an object, not a value: give its fields as mode.FIELD=…, FIELD one of status, exercise`)
	for _, body := range []string{`null`, `[]`, `"x"`} {
		n.call(t, editor, "POST", "/v1/records", "", body).want(t, "a body of "+body, 400, `request body: `, `where the request is a JSON object: send {…} with the fields of Record`)
	}
	n.call(t, editor, "POST", "/v1/records", "", `{"id":"bad-6","bogus":1}`).want(t, "an unknown field of the request", 400, `bogus: Record has no field \"bogus\": use one of id,`)
	n.call(t, editor, "GET", "/v1/records?mode.status=EXCERCISE", "", nil).want(t, "bad nested enum query parameter", 400, `use one of ACTUAL, EXERCISE`)
	n.call(t, editor, "GET", "/v1/records?max_classification=INTERNL", "", nil).want(t, "bad enum query parameter", 400, `\"max_classification\": \"INTERNL\" is not a valid value: use one of PUBLIC, INTERNAL, CONFIDENTIAL or SECRET`)
	// A query parameter that names no field is refused, not dropped: a misspelt ceiling would
	// otherwise return what it was there to keep out.
	n.call(t, editor, "GET", "/v1/records?max_classificaton=PUBLIC", "", nil).want(t, "misspelt query parameter", 400,
		`query parameter \"max_classificaton\": ListRequest has no field \"max_classificaton\": use one of`)
	n.call(t, editor, "GET", "/v1/pictures/oekraine?mode.exercice=x", "", nil).want(t, "misspelt nested query parameter", 400,
		`Mode has no field \"exercice\"`)
	n.call(t, editor, "GET", "/v1/records?maxClassification=PUBLIC&mode.status=ACTUAL", "", nil).want(t, "JSON and nested names", 200)
	// A mangled page token is refused, not read as the end of the list.
	n.call(t, editor, "GET", "/v1/records?page_token=zzz", "", nil).want(t, "a mangled page token", 400, "page_token")
	// A time is RFC 3339 in the API; the gateway's own words name Go's layout, not what to send.
	n.call(t, editor, "GET", "/v1/records?updated_since=2h", "", nil).want(t, "a duration for a time", 400,
		`updated_since: \"2h\" is not a time: use RFC 3339 in UTC, such as 2026-12-05T10:00:00Z`)
	n.call(t, editor, "POST", "/v1/records", "", `{"id":"t1","updated_at":"yesterday"}`).want(t, "a word for a time", 400,
		`invalid google.protobuf.Timestamp value \"yesterday\": use RFC 3339 in UTC`)
	// A field is named as the proto names it, as every message does, not by its JSON name; a
	// duration says what it is (review X, X6).
	admin := n.mtlsClient(t, "/user/ada")
	n.call(t, admin, "POST", "/v1/webhooks", "", `{"url":"https://lcms.example.org/x","max_classification":"TOPSECRET"}`).want(t, "a misspelt enum in a body", 400,
		`enum field max_classification: \"TOPSECRET\": use one of PUBLIC, INTERNAL, CONFIDENTIAL or SECRET`)
	// A value of the wrong JSON type where protojson names only where it is: the field is named,
	// and what it takes.
	n.call(t, admin, "POST", "/v1/webhooks", "", `{"url":"https://lcms.example.org/x","kinds":"sitrep"}`).want(t, "a string for a list", 400,
		`"message":"kinds: syntax error (line 1:45): unexpected token \"sitrep\": kinds is a list: send a JSON array, such as [\"…\"]`)
	n.call(t, editor, "POST", "/v1/records:batch", "", `{"records":[{"id":"bad-3"},"bad-4"]}`).want(t, "a string for a record", 400,
		`"message":"records[1]: syntax error`, `each element of records is an object`)
	n.call(t, editor, "POST", "/v1/records", "", `{"id":"bad-5",
 "labels":["a"]}`).want(t, "a list for a map", 400,
		`"message":"labels: syntax error (line 2:11): unexpected token [: labels is a map: send a JSON object, such as {\"key\": \"…\"}`)
	n.call(t, admin, "POST", "/v1/webhooks/wh_x:rotate", "", `{"overlap":"1000h"}`).want(t, "hours for a duration", 400,
		`invalid google.protobuf.Duration value \"1000h\": a duration is seconds with an s, such as \"86400s\" for a day (not \"24h\")`)

	// A program finds the field apart from the message, in a google.rpc.BadRequest detail.
	bad := restRecord("bad-2")
	bad["region"] = "VR99"
	res := n.call(t, editor, "POST", "/v1/records", "", bad)
	res.want(t, "bad region", 400, "record.region")
	var got struct {
		Details []struct {
			Type            string                                `json:"@type"`
			FieldViolations []struct{ Field, Description string } `json:"field_violations"`
		}
	}
	if err := json.Unmarshal([]byte(res.raw), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Details) != 1 || got.Details[0].Type != "type.googleapis.com/google.rpc.BadRequest" || len(got.Details[0].FieldViolations) != 1 ||
		got.Details[0].FieldViolations[0].Field != "record.region" || !strings.Contains(got.Details[0].FieldViolations[0].Description, `"VR99" is not a region`) {
		t.Fatalf("the refusal's details: %s", res.raw)
	}
}

// TestRESTOpenAPIServed: the description is served and is the committed one.
func TestRESTOpenAPIServed(t *testing.T) {
	n := startRESTNode(t)
	res := n.call(t, n.tlsClient(t), "GET", "/openapi.json", "", nil)
	res.want(t, "openapi", 200, `"/v1/records/{id}"`)
	committed, err := os.ReadFile("../proto/knooppunt/v1/knooppunt.swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	if res.raw != string(committed) {
		t.Fatal("the served OpenAPI description differs from the committed one")
	}
}

// TestRESTEveryRoute calls every route of the OpenAPI description, over mutual TLS and with a
// JWT-SVID, as a caller whose role the table admits, and checks that the service answers it.
func TestRESTEveryRoute(t *testing.T) {
	n := startRESTNode(t)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(pb.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	type route struct{ verb, path string }
	var routes []route
	for p, ops := range doc.Paths {
		for verb := range ops {
			routes = append(routes, route{strings.ToUpper(verb), p})
		}
	}
	// Writes first, the delete last, so that each read finds the record.
	order := func(r route) int {
		switch r.verb {
		case "POST":
			return 0
		case "DELETE":
			return 2
		}
		return 1
	}
	slices.SortFunc(routes, func(a, b route) int {
		return cmp.Or(cmp.Compare(order(a), order(b)), cmp.Compare(a.path, b.path))
	})
	bodies := map[string]any{
		"/v1/records":       restRecord("every-1"),
		"/v1/records:batch": map[string]any{"records": []any{restRecord("every-2")}},
		"/v1/search":        map[string]any{"filter": map[string]any{"crisis": "oekraine"}, "timeout_ms": 1000},
		// A receiver on loopback that answers nothing: the delivery of the record's delete
		// fails and is retried in the background, which the test does not wait for.
		"/v1/webhooks":                 map[string]any{"url": "http://127.0.0.1:9/knooppunt", "kinds": []string{"shelter.capacity"}},
		"/v1/webhooks/{webhook}:retry": map[string]any{},
		"/v1/webhooks/{id}:rotate":     map[string]any{"overlap": "3600s"},
	}
	for _, how := range []string{"mTLS", "JWT-SVID"} {
		t.Run(how, func(t *testing.T) {
			for _, r := range routes {
				user := "rita"
				switch {
				case strings.HasPrefix(r.path, "/v1/policies"), strings.HasPrefix(r.path, "/v1/audit"):
					user = "olga"
				case strings.HasPrefix(r.path, "/v1/webhooks"):
					user = "ada"
				case r.verb != "GET":
					user = "erik"
				}
				c, token := n.mtlsClient(t, "/user/"+user), ""
				if how == "JWT-SVID" {
					c, token = n.tlsClient(t), n.jwt(t, user)
				}
				path := strings.NewReplacer("{id}", "every-1", "{crisis}", "oekraine", "{webhook}", "every-1").Replace(r.path)
				want := 200
				switch r.path {
				case "/v1/policies/{id}", "/v1/webhooks/{id}", "/v1/webhooks/{webhook}:retry", "/v1/webhooks/{id}:rotate":
					want = 404 // answered by the service: there is no such policy or webhook
				}
				res := n.call(t, c, r.verb, path, token, bodies[r.path])
				res.want(t, how+" "+user+" "+r.verb+" "+path, want)
			}
		})
	}
}

// TestRESTSpans: with tracing on, every authenticated REST call is a span, the parent of the spans
// the service makes for it; a caller of the node's own trust domain may put it into a trace of
// its own with a traceparent header.
func TestRESTSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	n := startRESTNode(t, func(o *node.Options) { o.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)) })
	reader := n.mtlsClient(t, "/user/rita")
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	n.call(t, reader, "POST", "/v1/search", "", map[string]any{"filter": map[string]any{"crisis": "oekraine"}}, "traceparent", parent).want(t, "search", 200)
	n.call(t, reader, "GET", "/v1/audit", "", nil).want(t, "reader audit", 403)
	var rest []tracetest.SpanStub
	var search tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		switch s.Name {
		case "knooppunt.rest":
			rest = append(rest, s)
		case "knooppunt.search":
			search = s
		}
	}
	if len(rest) != 2 {
		t.Fatalf("%d knooppunt.rest spans, want one a call", len(rest))
	}
	attrs := func(s tracetest.SpanStub) string {
		var out []string
		for _, a := range s.Attributes {
			out = append(out, string(a.Key)+"="+a.Value.Emit())
		}
		return strings.Join(out, " ")
	}
	if got := rest[0].SpanContext.TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" || rest[0].Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("the search's span is in trace %s under %s, want the caller's", got, rest[0].Parent.SpanID())
	}
	if want := "http.request.method=POST url.path=/v1/search http.response.status_code=200"; attrs(rest[0]) != want {
		t.Errorf("the search's span: %s, want %s", attrs(rest[0]), want)
	}
	if search.Parent.SpanID() != rest[0].SpanContext.SpanID() {
		t.Error("the search service's span is not a child of the REST call's")
	}
	if want := "http.request.method=GET url.path=/v1/audit http.response.status_code=403"; attrs(rest[1]) != want || rest[1].Parent.IsValid() {
		t.Errorf("the refused call's span: %s, parent %v; want %s in a trace of its own", attrs(rest[1]), rest[1].Parent.IsValid(), want)
	}
}
