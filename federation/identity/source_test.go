package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
)

func serialOf(t *testing.T, src x509svid.Source) string {
	t.Helper()
	svid, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	return svid.Certificates[0].SerialNumber.String()
}

// watchedSource is a FileSource of files of r1's SVID (at prefix.crt and prefix.key) that its CA
// issued, looked at every 10ms, with its log; closed when the test ends.
func watchedSource(t *testing.T) (ca *identity.DevCA, prefix string, first *x509.Certificate, log *identitytest.Log, src *identity.FileSource) {
	t.Helper()
	dir := t.TempDir()
	ca = identitytest.NewCA(t, orgTD)
	prefix = filepath.Join(dir, "r1")
	bundle := filepath.Join(dir, "bundle.pem")
	identitytest.WriteBundle(t, bundle, ca)
	first = identitytest.WriteSVID(t, ca, "/node/r1", prefix, identity.SVIDOptions{})
	log = identitytest.NewLog()
	src, err := identity.NewFileSource(prefix+".crt", prefix+".key", bundle, 10*time.Millisecond, log.Logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return ca, prefix, first, log, src
}

// TestFileSourceReloads: re-issued SVID files are picked up without a restart; a broken file is
// logged and the last good SVID stays in use; once the files are good again they load.
func TestFileSourceReloads(t *testing.T) {
	ca, prefix, first, log, src := watchedSource(t)
	if got := serialOf(t, src); got != first.SerialNumber.String() {
		t.Fatalf("serial %s, want %s", got, first.SerialNumber)
	}

	second := identitytest.WriteSVID(t, ca, "/node/r1", prefix, identity.SVIDOptions{})
	identitytest.Eventually(t, 5*time.Second, "the re-issued SVID is loaded", func() bool {
		return serialOf(t, src) == second.SerialNumber.String()
	})
	log.Wait(t, 5*time.Second, "identity reloaded", func(e identitytest.Entry) bool { return e.Str("id") == "spiffe://"+orgTD+"/node/r1" })

	// A broken certificate file: the last good SVID stays.
	identitytest.WriteFile(t, prefix+".crt", []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"))
	e := log.Wait(t, 5*time.Second, "identity files changed but cannot be loaded: keeping the last good ones", nil)
	if !strings.Contains(e.Str("err"), "identity: SVID "+prefix+".crt / "+prefix+".key: ") {
		t.Errorf("logged err %q does not name the files", e.Str("err"))
	}
	if got := serialOf(t, src); got != second.SerialNumber.String() {
		t.Fatalf("after a broken file: serial %s, want the last good %s", got, second.SerialNumber)
	}

	// A certificate whose key is not the one in the key file is broken too.
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other := identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{Key: k})
	certPEM, _, err := other.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	identitytest.WriteFile(t, prefix+".crt", certPEM)
	log.Wait(t, 5*time.Second, "identity files changed but cannot be loaded: keeping the last good ones", func(e identitytest.Entry) bool {
		return strings.Contains(e.Str("err"), "leaf certificate does not match private key")
	})
	if got := serialOf(t, src); got != second.SerialNumber.String() {
		t.Fatalf("after a mismatched key: serial %s, want the last good %s", got, second.SerialNumber)
	}

	third := identitytest.WriteSVID(t, ca, "/node/r1", prefix, identity.SVIDOptions{})
	identitytest.Eventually(t, 5*time.Second, "the repaired files are loaded", func() bool {
		return serialOf(t, src) == third.SerialNumber.String()
	})
}

// TestFileSourceKeepsItsIdentity: once Require names the SVID's identity, files re-issued for
// another replica are refused at ERROR and the last good SVID stays (review AA, AA7); files of
// the same identity still load.
func TestFileSourceKeepsItsIdentity(t *testing.T) {
	ca, prefix, first, log, src := watchedSource(t)
	src.Require(spiffeid.RequireFromString("spiffe://" + orgTD + "/node/r1"))

	identitytest.WriteSVID(t, ca, "/node/r2", prefix, identity.SVIDOptions{})
	e := log.Wait(t, 5*time.Second, "identity files changed to an SVID of another identity: keeping the last good one; issue this process its own SVID", nil)
	if e.Str("level") != "ERROR" || !strings.Contains(e.Str("err"), "names spiffe://"+orgTD+"/node/r2, not spiffe://"+orgTD+"/node/r1") {
		t.Errorf("logged %v", e)
	}
	if got := serialOf(t, src); got != first.SerialNumber.String() {
		t.Fatalf("after another replica's SVID: serial %s, want the last good %s", got, first.SerialNumber)
	}
	// Said once, not at every look at the unchanged files (review AC, AC3).
	time.Sleep(20 * 10 * time.Millisecond)
	if n := log.Count("identity files changed to an SVID of another identity: keeping the last good one; issue this process its own SVID", nil); n != 1 {
		t.Errorf("the refusal was logged %d times over 20 looks, want once", n)
	}
	again := identitytest.WriteSVID(t, ca, "/node/r1", prefix, identity.SVIDOptions{})
	identitytest.Eventually(t, 5*time.Second, "its own re-issued SVID is loaded", func() bool {
		return serialOf(t, src) == again.SerialNumber.String()
	})
}

// TestFileSourceReloadsTheBundle: an org that adds a CA to its bundle file is trusted with both
// CAs once the file is reloaded.
func TestFileSourceReloadsTheBundle(t *testing.T) {
	dir := t.TempDir()
	oldCA := identitytest.NewCA(t, orgTD)
	newCA := identitytest.NewCA(t, orgTD)
	prefix := filepath.Join(dir, "r1")
	bundle := filepath.Join(dir, "bundle.pem")
	identitytest.WriteBundle(t, bundle, oldCA)
	identitytest.WriteSVID(t, oldCA, "/node/r1", prefix, identity.SVIDOptions{})
	src, err := identity.NewFileSource(prefix+".crt", prefix+".key", bundle, 10*time.Millisecond, identitytest.NewLog().Logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	td := spiffeid.RequireTrustDomainFromString(orgTD)
	fromNew := identitytest.SVID(t, newCA, "/user/anna", identity.SVIDOptions{})
	if _, _, err := x509svid.Verify(fromNew.Certificates, src); err == nil {
		t.Fatal("an SVID of the new CA verifies before the bundle has it")
	}
	identitytest.WriteBundle(t, bundle, oldCA, newCA)
	identitytest.Eventually(t, 5*time.Second, "the bundle with both CAs is loaded", func() bool {
		b, err := src.GetX509BundleForTrustDomain(td)
		return err == nil && len(b.X509Authorities()) == 2
	})
	if _, _, err := x509svid.Verify(fromNew.Certificates, src); err != nil {
		t.Fatalf("an SVID of the new CA after the bundle reload: %v", err)
	}
	if _, err := src.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("ncc.crisis.test")); err == nil ||
		err.Error() != `identity: no bundle for trust domain "ncc.crisis.test"` {
		t.Errorf("bundle of another trust domain: %v", err)
	}
}

func TestNewFileSourceRefusesBrokenFiles(t *testing.T) {
	dir := t.TempDir()
	ca := identitytest.NewCA(t, orgTD)
	prefix := filepath.Join(dir, "r1")
	bundle := filepath.Join(dir, "bundle.pem")
	identitytest.WriteSVID(t, ca, "/node/r1", prefix, identity.SVIDOptions{})

	_, err := identity.NewFileSource(prefix+".crt", prefix+".key", bundle, 0, nil)
	if want := "identity: bundle " + bundle + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("missing bundle: %v\nwant %s...", err, want)
	}
	identitytest.WriteBundle(t, bundle, ca)
	if err := os.Remove(prefix + ".key"); err != nil {
		t.Fatal(err)
	}
	_, err = identity.NewFileSource(prefix+".crt", prefix+".key", bundle, 0, nil)
	if want := "identity: SVID " + prefix + ".crt / " + prefix + ".key: "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("missing key: %v\nwant %s...", err, want)
	}
	// A bundle of the trust domain that does not hold the CA of the SVID (another CA's, or an
	// empty file) trusts nobody: refused, as a bundle's problem.
	identitytest.WriteSVID(t, ca, "/node/r1", prefix, identity.SVIDOptions{})
	identitytest.WriteBundle(t, bundle, identitytest.NewCA(t, orgTD))
	_, err = identity.NewFileSource(prefix+".crt", prefix+".key", bundle, 0, nil)
	fe, ok := errors.AsType[*identity.FileError](err)
	if want := "identity: bundle " + bundle + " does not verify the SVID spiffe://" + orgTD + "/node/r1 of " + prefix + ".crt ("; !ok || !fe.Bundle || !strings.HasPrefix(err.Error(), want) ||
		!strings.HasSuffix(err.Error(), "): use the bundle of the CA that issued it") {
		t.Errorf("another CA's bundle: %v\nwant %s...", err, want)
	}
	if err := os.WriteFile(bundle, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = identity.NewFileSource(prefix+".crt", prefix+".key", bundle, 0, nil); err == nil {
		t.Error("an empty bundle is taken")
	}
}

// TestWorkloadSource: the SVID and the bundles, federated ones too, come from the Workload API,
// and a rotation pushed by the agent is followed.
func TestWorkloadSource(t *testing.T) {
	ca := identitytest.NewCA(t, orgTD)
	fed := identitytest.NewCA(t, "ncc.crisis.test")
	first := identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{})
	agent := identitytest.ServeWorkloadAPI(t, first, identitytest.Bundle(ca), identitytest.Bundle(fed))
	src := openWorkloadSource(t, agent, spiffeid.ID{}, nil)
	if got := serialOf(t, src); got != first.Certificates[0].SerialNumber.String() {
		t.Fatalf("serial %s, want %s", got, first.Certificates[0].SerialNumber)
	}
	if b, err := src.GetX509BundleForTrustDomain(fed.TrustDomain); err != nil || !b.Equal(identitytest.Bundle(fed)) {
		t.Fatalf("federated bundle: %v", err)
	}
	second := identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{})
	agent.Set(t, second, identitytest.Bundle(ca))
	identitytest.Eventually(t, 5*time.Second, "the rotated SVID", func() bool {
		return serialOf(t, src) == second.Certificates[0].SerialNumber.String()
	})
	if _, err := src.GetX509BundleForTrustDomain(fed.TrustDomain); err == nil {
		t.Error("a bundle no longer federated is still served")
	}
}

// openWorkloadSource is the source of agent for want (zero: the agent's default), logging to
// log; it is closed when the test ends.
func openWorkloadSource(t *testing.T, agent *identitytest.WorkloadAPI, want spiffeid.ID, log *slog.Logger) identity.Source {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	src, err := identity.NewWorkloadSource(ctx, agent.Addr, want, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// TestWorkloadSourcePicksByID: when the agent offers a caller several SVIDs, the wanted ID picks
// one, the zero ID takes the first, and an ID the agent does not offer fails with the ones it does.
func TestWorkloadSourcePicksByID(t *testing.T) {
	ca := identitytest.NewCA(t, orgTD)
	a := identitytest.SVID(t, ca, "/user/officer-a", identity.SVIDOptions{})
	b := identitytest.SVID(t, ca, "/user/officer-b", identity.SVIDOptions{})
	agent := identitytest.ServeWorkloadAPI(t, a, identitytest.Bundle(ca))
	agent.AddSVID(t, b)
	open := func(want spiffeid.ID) (identity.Source, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		src, err := identity.NewWorkloadSource(ctx, agent.Addr, want, nil)
		if err == nil {
			t.Cleanup(func() { src.Close() })
		}
		return src, err
	}
	for _, tc := range []struct {
		want spiffeid.ID
		got  *x509svid.SVID
	}{{spiffeid.ID{}, a}, {a.ID, a}, {b.ID, b}} {
		src, err := open(tc.want)
		if err != nil {
			t.Fatalf("want %q: %v", tc.want, err)
		}
		if got := serialOf(t, src); got != tc.got.Certificates[0].SerialNumber.String() {
			t.Errorf("want %q: got the SVID with serial %s, want %s (%s)", tc.want, got, tc.got.Certificates[0].SerialNumber, tc.got.ID)
		}
	}
	missing := spiffeid.RequireFromPath(ca.TrustDomain, "/user/officer-c")
	_, err := open(missing)
	want := "offers spiffe://" + orgTD + "/user/officer-a, spiffe://" + orgTD + "/user/officer-b, not spiffe://" + orgTD + "/user/officer-c"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("an ID the agent does not offer: %v\nwant it to say %q", err, want)
	}
}

// TestWorkloadSourceSaysWhatToCheck: with no socket where the config points, the error says so
// and asks whether the agent runs there; with a socket that gives nothing in time, it names the
// process's uid, user and path, which a SPIRE entry's selectors must match.
func TestWorkloadSourceSaysWhatToCheck(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := identity.NewWorkloadSource(ctx, "unix://"+filepath.Join(dir, "none.sock"), spiffeid.ID{}, nil)
	if err == nil || !strings.Contains(err.Error(), "no socket at "+filepath.Join(dir, "none.sock")+": is the SPIRE agent running") {
		t.Errorf("no socket: %v", err)
	}
	// A socket that takes the connection and answers nothing, as an agent that issues this
	// process no SVID keeps it waiting.
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = identity.NewWorkloadSource(ctx, "unix://"+sock, spiffeid.ID{}, nil)
	if err == nil || !strings.Contains(err.Error(), "gave this process no SVID in time: register a SPIRE entry whose selectors match it (uid "+strconv.Itoa(os.Getuid())) {
		t.Errorf("a silent agent: %v", err)
	}
}

// TestWorkloadSourceSaysWhenRenewalFails: when the agent stops giving the SVID (here its entry
// deleted: PermissionDenied), the source says so at once, once for the outage however often
// go-spiffe retries, keeps the SVID it has, and Renewal says since when and why; when the agent
// gives it again, the source says so and Renewal is clear (review AK, AK1).
func TestWorkloadSourceSaysWhenRenewalFails(t *testing.T) {
	ca := identitytest.NewCA(t, orgTD)
	first := identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{})
	agent := identitytest.ServeWorkloadAPI(t, first, identitytest.Bundle(ca))
	logs := identitytest.NewLog()
	src := openWorkloadSource(t, agent, spiffeid.ID{}, logs.Logger)
	renewal := src.(interface{ Renewal() (time.Time, string) }).Renewal
	if since, why := renewal(); !since.IsZero() {
		t.Fatalf("a source the agent serves: renewal failing since %v: %s", since, why)
	}

	agent.Refuse(status.Error(codes.PermissionDenied, "no identity issued"))
	// The first retry comes a second after the failure: its line is at debug level.
	logs.Wait(t, 8*time.Second, "the Workload API still gives no SVID", nil)
	if n := logs.Count("the Workload API gives this replica no SVID now: the one it has is not renewed, and partners and replicas refuse it once it expires",
		func(e identitytest.Entry) bool { return e["level"] == "WARN" }); n != 1 {
		t.Errorf("the outage is said %d times at WARN, want once:\n%s", n, logs.String())
	}
	if since, why := renewal(); since.IsZero() || !strings.Contains(why, "the SPIRE agent issues this process no identity") {
		t.Errorf("renewal during the outage: since %v, %q", since, why)
	}
	if got := serialOf(t, src); got != first.Certificates[0].SerialNumber.String() {
		t.Errorf("the source serves serial %s during the outage, want the SVID it had (%s)", got, first.Certificates[0].SerialNumber)
	}

	second := identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{})
	agent.Set(t, second, identitytest.Bundle(ca))
	agent.Resume()
	identitytest.Eventually(t, 8*time.Second, "the renewed SVID", func() bool {
		return serialOf(t, src) == second.Certificates[0].SerialNumber.String()
	})
	if since, why := renewal(); !since.IsZero() || logs.Count("the Workload API renews this replica's SVID again", nil) != 1 {
		t.Errorf("after the outage: renewal failing since %v (%q); log:\n%s", since, why, logs.String())
	}
}

// TestWorkloadSourceKeepsItsIDWhenTheAgentDropsIt: a replica that picks its ID among several the
// agent offers keeps its SVID when an update no longer offers that ID (its entry deleted, the
// others still there), and says so, where go-spiffe would serve none at once; an update that
// offers it again is taken (review AK, AK3).
func TestWorkloadSourceKeepsItsIDWhenTheAgentDropsIt(t *testing.T) {
	ca := identitytest.NewCA(t, orgTD)
	r1 := identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{})
	r2 := identitytest.SVID(t, ca, "/node/r2", identity.SVIDOptions{})
	agent := identitytest.ServeWorkloadAPI(t, r1, identitytest.Bundle(ca))
	agent.AddSVID(t, r2)
	logs := identitytest.NewLog()
	src := openWorkloadSource(t, agent, r2.ID, logs.Logger)
	renewal := src.(interface{ Renewal() (time.Time, string) }).Renewal

	agent.Set(t, r1, identitytest.Bundle(ca)) // r2's entry deleted
	identitytest.Eventually(t, 5*time.Second, "the source hears that r2 is no longer offered", func() bool {
		since, _ := renewal()
		return !since.IsZero()
	})
	if got, err := src.GetX509SVID(); err != nil || got.ID != r2.ID || got.Certificates[0].SerialNumber.Cmp(r2.Certificates[0].SerialNumber) != 0 {
		t.Fatalf("after r2's entry went: %v (%v), want r2's SVID still", got, err)
	}
	if _, why := renewal(); !strings.Contains(why, "the SPIRE agent no longer offers "+r2.ID.String()+" (it offers "+r1.ID.String()+")") {
		t.Errorf("why: %q", why)
	}
	if logs.Count("the Workload API gives this replica no SVID now: the one it has is not renewed, and partners and replicas refuse it once it expires",
		func(e identitytest.Entry) bool { return e["level"] == "WARN" && e.Str("id") == r2.ID.String() }) != 1 {
		t.Errorf("the loss is not logged once as a warning:\n%s", logs.String())
	}

	again := identitytest.SVID(t, ca, "/node/r2", identity.SVIDOptions{})
	agent.AddSVID(t, again)
	identitytest.Eventually(t, 5*time.Second, "r2's new SVID", func() bool {
		return serialOf(t, src) == again.Certificates[0].SerialNumber.String()
	})
	if since, _ := renewal(); !since.IsZero() {
		t.Errorf("renewal still failing since %v once r2 is offered again", since)
	}
}

// TestWorkloadSourceNamesAnAgentThatIsNotThere: a socket file with no agent behind it (one a
// killed agent left) is said as that, not as an entry to register (review AK, AK2).
func TestWorkloadSourceNamesAnAgentThatIsNotThere(t *testing.T) {
	dir, err := os.MkdirTemp("", "kpwl")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = identity.NewWorkloadSource(ctx, "unix://"+sock, spiffeid.ID{}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "the socket is there, but no SPIRE agent answers on it: is the agent running?") {
		t.Errorf("a socket with no agent: %v", err)
	}
}
