package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// ServerTLS is the mTLS configuration of a node's gRPC listener: it presents the node's SVID and
// accepts any client whose SVID verifies against a known bundle. Which caller may call what is
// decided after the handshake, per method. Every handshake refusal is logged with the SPIFFE ID
// the client claimed and the reason.
func ServerTLS(svid x509svid.Source, bundles x509bundle.Source, log *slog.Logger) *tls.Config {
	return serverTLS(svid, bundles, tlsconfig.AuthorizeAny(), log, nil)
}

// ServerTLSFor is ServerTLS that admits only the clients authorize approves, for listeners
// without per-method authorisation, such as the Raft transport.
func ServerTLSFor(svid x509svid.Source, bundles x509bundle.Source, authorize tlsconfig.Authorizer, log *slog.Logger) *tls.Config {
	return serverTLS(svid, bundles, authorize, log, nil)
}

// RefusalFunc is told of each handshake a server refused: the SPIFFE ID the client's
// certificate claims, which did not verify and so must not be trusted, and the reason.
type RefusalFunc func(claimed, reason string)

// ServerCredentialsReporting is ServerCredentials that also hands every refused handshake,
// full or resumed, to refused, so that the node can audit it. refused runs on the handshake's
// goroutine and must not block.
func ServerCredentialsReporting(svid x509svid.Source, bundles x509bundle.Source, log *slog.Logger, refused RefusalFunc) credentials.TransportCredentials {
	return credentials.NewTLS(serverTLS(svid, bundles, tlsconfig.AuthorizeAny(), log, refused))
}

// ServerTLSReporting is ServerTLS that also hands every refused handshake to refused, as
// ServerCredentialsReporting does, for HTTPS listeners such as the REST API.
func ServerTLSReporting(svid x509svid.Source, bundles x509bundle.Source, log *slog.Logger, refused RefusalFunc) *tls.Config {
	return serverTLS(svid, bundles, tlsconfig.AuthorizeAny(), log, refused)
}

func serverTLS(svid x509svid.Source, bundles x509bundle.Source, authorize tlsconfig.Authorizer, log *slog.Logger, refused RefusalFunc) *tls.Config {
	cfg := tlsconfig.MTLSServerConfig(svid, bundles, authorize)
	cfg.MinVersion = tls.VersionTLS12
	verify := cfg.VerifyPeerCertificate
	said := newRefusalLog(log)
	cfg.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
		err := verify(raw, chains)
		if err != nil {
			claimed := claimedID(raw)
			said.note(claimed, err.Error())
			if refused != nil {
				refused(claimed, err.Error())
			}
		}
		return err
	}
	verifyResumed(cfg)
	return cfg
}

// verifyResumed makes cfg verify the peer on resumed sessions too. crypto/tls skips
// VerifyPeerCertificate when a session resumes from a ticket, so without this a peer whose
// bundle was removed or rotated away could go on resuming, until its certificate or the ticket
// expires, after its full handshakes are refused.
func verifyResumed(cfg *tls.Config) {
	verify := cfg.VerifyPeerCertificate
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if !cs.DidResume {
			return nil
		}
		raw := make([][]byte, len(cs.PeerCertificates))
		for i, c := range cs.PeerCertificates {
			raw[i] = c.Raw
		}
		return verify(raw, nil)
	}
}

// ServerCredentials wraps ServerTLS for gRPC.
func ServerCredentials(svid x509svid.Source, bundles x509bundle.Source, log *slog.Logger) credentials.TransportCredentials {
	return credentials.NewTLS(ServerTLS(svid, bundles, log))
}

// ClientTLS is the mTLS configuration of a client: it presents the client's SVID and accepts
// only servers that authorize approves.
func ClientTLS(svid x509svid.Source, bundles x509bundle.Source, authorize tlsconfig.Authorizer) *tls.Config {
	cfg := tlsconfig.MTLSClientConfig(svid, bundles, authorize)
	cfg.MinVersion = tls.VersionTLS12
	verifyResumed(cfg)
	return cfg
}

// ClientCredentials wraps ClientTLS for gRPC.
func ClientCredentials(svid x509svid.Source, bundles x509bundle.Source, authorize tlsconfig.Authorizer) credentials.TransportCredentials {
	return credentials.NewTLS(ClientTLS(svid, bundles, authorize))
}

// AuthorizeReplica accepts the replicas of a node: spiffe://TD/node/*.
func AuthorizeReplica(td spiffeid.TrustDomain) tlsconfig.Authorizer {
	return func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		if !IsReplica(td, id) {
			return &refusal{msg: id.String() + " is not a replica of " + td.String() + " (spiffe://" + td.Name() + "/node/...)"}
		}
		return nil
	}
}

// IsReplica reports whether id names a replica of the node of td.
func IsReplica(td spiffeid.TrustDomain, id spiffeid.ID) bool {
	return id.MemberOf(td) && strings.HasPrefix(id.Path(), "/node/")
}

type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

// PeerID is the SPIFFE ID of the caller of a gRPC call that came in over ServerCredentials. The
// handshake verified the certificate, so the ID is authenticated.
func PeerID(ctx context.Context) (spiffeid.ID, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffeid.ID{}, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return spiffeid.ID{}, false
	}
	id, err := x509svid.IDFromCert(info.State.PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, false
	}
	return id, true
}

// claimedID reads, without trusting it, the SPIFFE ID a refused certificate names, for the log.
func claimedID(raw [][]byte) string {
	if len(raw) == 0 {
		return "(no certificate)"
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return "(unparseable certificate)"
	}
	id, err := x509svid.IDFromCert(cert)
	if err != nil {
		return "(no SPIFFE ID)"
	}
	return id.String()
}

// refusalLog logs the handshakes a server refused, as "handshake refused" with the caller and
// the reason: the first of a caller and reason as a warning, then once a refusalEvery with how
// many came since (repeated), and at debug level in between. A replica removed from its group,
// or one whose SVID has expired, dials again at every election or heartbeat, dozens of times a
// minute for as long as it runs (review AM, AM2). Reasons that differ in their digits alone (the
// time in an expiry) are one.
type refusalLog struct {
	log *slog.Logger
	now func() time.Time
	mu  sync.Mutex
	// seen holds, by caller and reason, when the refusal was last logged as a warning and how
	// many came since.
	seen map[string]*refusalSeen
}

type refusalSeen struct {
	logged time.Time
	since  int
}

// refusalEvery is how often a refusal of one caller, for one reason, is logged as a warning.
const refusalEvery = time.Minute

// maxRefusalKeys bounds what a refusalLog holds: callers may claim any ID.
const maxRefusalKeys = 1024

func newRefusalLog(log *slog.Logger) *refusalLog {
	return &refusalLog{log: log, now: time.Now, seen: map[string]*refusalSeen{}}
}

func (l *refusalLog) note(caller, reason string) {
	key := caller + "\x00" + strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, reason)
	l.mu.Lock()
	now := l.now()
	s := l.seen[key]
	if s != nil && now.Sub(s.logged) < refusalEvery {
		s.since++
		l.mu.Unlock()
		l.log.Debug("handshake refused", "caller", caller, "reason", reason)
		return
	}
	since := 0
	if s != nil {
		since = s.since
	}
	if len(l.seen) >= maxRefusalKeys {
		for k, old := range l.seen {
			if now.Sub(old.logged) >= refusalEvery {
				delete(l.seen, k)
			}
		}
		if len(l.seen) >= maxRefusalKeys {
			clear(l.seen)
		}
	}
	l.seen[key] = &refusalSeen{logged: now}
	l.mu.Unlock()
	attrs := []any{"caller", caller, "reason", reason}
	if since > 0 {
		attrs = append(attrs, "repeated", since)
	}
	l.log.Warn("handshake refused", attrs...)
}
