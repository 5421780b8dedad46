// Package config reads a node's configuration file. With no file, a node runs as a single replica
// of the demo org with the built-in demo kinds.
//
// config only parses and checks; it never opens sockets or databases.
package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // ui.time_zone is checked on a host without a zone database
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/knooppunt/knooppunt/node/netaddr"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Config is a node's configuration.
type Config struct {
	// Name is the node's name, shown to users and peers. Default: the org's first label.
	Name string `yaml:"name"`
	// Org is the trust domain of the node's organisation, such as vr-utrecht.crisis.test.
	Org string `yaml:"org"`
	// ReplicaID names this replica in the node's Raft group. Default r1.
	ReplicaID string `yaml:"replica_id"`
	// MetricsAddr is where /metrics listens; empty turns it off.
	MetricsAddr string `yaml:"metrics_addr"`
	// Listen is the mTLS gRPC address for users, apps, replicas and peers, such as
	// 0.0.0.0:7443. Empty: only the local socket is served.
	Listen string `yaml:"listen"`
	// Advertise are the host:port addresses at which peers reach the node's mTLS listeners, one
	// per replica. `peer invite` hands them to a partner. Default: the raft servers' api
	// addresses, or Listen when its host is not a wildcard.
	Advertise []string `yaml:"advertise"`
	// Identity says where the node's SVID comes from. Needed when Listen is set.
	Identity Identity `yaml:"identity"`
	// BundleEndpoint serves the org's trust bundle to peers (SPIFFE Federation).
	BundleEndpoint BundleEndpoint `yaml:"bundle_endpoint"`
	// Roles map SPIFFE IDs of the org's own trust domain to roles. They reload without a restart.
	Roles []RoleBinding `yaml:"roles"`
	// Peers are the other orgs' nodes this node trusts. They reload without a restart.
	Peers      []Peer     `yaml:"peers"`
	Limits     Limits     `yaml:"limits"`
	Raft       Raft       `yaml:"raft"`
	Policy     Policy     `yaml:"policy"`
	Federation Federation `yaml:"federation"`
	Erasure    Erasure    `yaml:"erasure"`
	// Attachments bound the files records name (see node/attach).
	Attachments Attachments `yaml:"attachments"`
	History     History     `yaml:"history"`
	Rules       Rules       `yaml:"rules"`
	// Kinds are the record kinds the node accepts. Empty means the built-in demo kinds.
	Kinds []KindConfig `yaml:"kinds"`
	// UI is the web interface for the org's own people. Off unless ui.listen is set.
	UI UI `yaml:"ui"`
	// HTTP is the REST/JSON API for the org's own systems (node/api/rest). Off unless
	// http.listen is set.
	HTTP HTTP `yaml:"http"`
	// Webhooks configures the delivery of outbound webhooks (node/webhook).
	Webhooks Webhooks `yaml:"webhooks"`
	// Tracing exports OpenTelemetry traces. Off unless tracing.endpoint is set.
	Tracing Tracing `yaml:"tracing"`
	// Log configures the node's log.
	Log Log `yaml:"log"`
	// CAP configures CAP 1.2 alerts (node/cap).
	CAP CAP `yaml:"cap"`
	// Feed is the Atom feed of the node's public alerts on a listener of its own. The web
	// interface serves the same feed at /feeds/alerts.atom.
	Feed Feed `yaml:"feed"`
}

// Webhooks configures how the leader delivers webhooks.
type Webhooks struct {
	// RetryFor is how long a delivery is retried, backing off with jitter, before it becomes a
	// dead letter. Default 24h.
	RetryFor time.Duration `yaml:"retry_for"`
	// MinBackoff and MaxBackoff bound the wait between attempts, which doubles from the one to
	// the other, with jitter. Default 1s and 5m.
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Timeout bounds one attempt. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// AllowPrivate lets webhooks reach private, link-local and unique-local addresses
	// (10.0.0.0/8, 192.168.0.0/16, fd00::/8 and so on), which a webhook could otherwise use to
	// probe the node's own network. Loopback is always allowed. Default false.
	AllowPrivate bool `yaml:"allow_private"`
	// CAFile is a PEM file of CA certificates that an HTTPS receiver's certificate may chain
	// to besides the system's roots: an internal PKI of the org, as municipal and GGD receivers
	// often have. Relative to the config file. Read at start.
	CAFile string `yaml:"ca_file"`
	// Roots are the system's roots and CAFile's certificates, as Load read them; nil without
	// CAFile (the system's roots).
	Roots *x509.CertPool `yaml:"-"`
}

// Tracing configures OpenTelemetry tracing.
type Tracing struct {
	// Endpoint is the OTLP/gRPC collector, host:port. Empty turns tracing off, at no cost.
	Endpoint string `yaml:"endpoint"`
	// Insecure sends to the collector without TLS, for a collector on the same host.
	Insecure bool `yaml:"insecure"`
	// SampleRatio is the share of traces recorded, 0 to 1. Default 1.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// PropagateToPeers lets the trace context (traceparent) cross to and from peers'
	// nodes. Default false: a partner never learns this node's trace ids, nor sets its.
	PropagateToPeers bool `yaml:"propagate_to_peers"`
}

// Log configures the node's log.
type Log struct {
	// Format is text (the default) or json.
	Format string `yaml:"format"`
}

// CAP configures how CAP 1.2 alerts become records.
type CAP struct {
	// Scopes map a CAP scope (Public, Restricted, Private) to the classification an imported
	// alert's record gets. Default: Public public, Restricted internal, Private confidential; a
	// scope left out keeps its default.
	Scopes map[string]string `yaml:"scopes"`
}

// ScopeClassifications is Scopes over the defaults, as classifications. Check has checked them.
func (c CAP) ScopeClassifications() map[string]pb.Classification {
	out := maps.Clone(record.AlertScopes)
	for scope, name := range c.Scopes {
		if cl, err := record.ParseClassification(name); err == nil {
			out[scope] = cl
		}
	}
	return out
}

// Check checks the cap section; its errors name the field.
func (c CAP) Check() error {
	for scope, name := range c.Scopes {
		if _, ok := record.AlertScopes[scope]; !ok {
			return fmt.Errorf("cap.scopes.%s: not a CAP scope: use Public, Restricted or Private", scope)
		}
		if cl, err := record.ParseClassification(name); err != nil || cl == pb.Classification_CLASSIFICATION_UNSPECIFIED {
			return fmt.Errorf("cap.scopes.%s: %q is not a classification: use public, internal, confidential or secret", scope, name)
		}
	}
	return nil
}

// Feed is the Atom feed of public alerts on a listener of its own.
type Feed struct {
	// Listen is the feed's address, such as 127.0.0.1:8088. Empty: the feed is served only on
	// the web interface's listener, if that is on.
	Listen string `yaml:"listen"`
	// TLS is the certificate clients see. Without it the feed serves plain HTTP, which is
	// allowed only on a loopback address (put a reverse proxy in front).
	TLS UITLS `yaml:"tls"`
}

// Check checks the feed section; its errors name the field.
func (f Feed) Check() error {
	if f.Listen == "" {
		if f.TLS.CertFile != "" || f.TLS.KeyFile != "" {
			return errors.New("feed.listen: missing: feed.tls configures the feed's own listener, which is off without it")
		}
		return nil
	}
	_, err := checkHTTPListener("feed", f.Listen, "127.0.0.1:8088", f.TLS)
	return err
}

// MaxEventsPerSecond bounds federation.events_per_second: a second's worth of events is the
// burst the node lets a peer's events through in, and it must fit in a whole number (int64).
const MaxEventsPerSecond = 1e18

// MaxPeerCalls bounds federation.peer_calls. A peer's node needs a few calls at once (its
// subscriptions, searches and file fetches), and every open call costs this node a goroutine and
// a stream: a bound far above what the node can hold guards it against nothing.
const MaxPeerCalls = 10000

// MinEraseWithin bounds erasure.within from below. An erasure is a Raft snapshot of the whole
// database, a cut of the log and a checkpoint, run half the bound after a delete; a failed step is
// tried again a tenth of the bound later but never sooner than 100ms (store's eraseLoop). Under
// a second no retry fits in the other half, and a snapshot on every delete holds up the node.
const MinEraseWithin = time.Second

// MaxApprovals bounds policy.approvals when a prefix gives the officer role, so that the node
// cannot count its officers: more approvals than this would hold up every policy in a crisis.
const MaxApprovals = 10

// DefaultHeartbeat is federation.heartbeat when it is not set: what a peer on defaults sends its
// subscribers when it has nothing else to send.
const DefaultHeartbeat = 5 * time.Second

// MaxBodyLimit bounds limits.max_body_bytes: a partner's node takes a message of at most 4 MiB
// (peerclient), and a record shared whole must fit in one with its labels and envelope. A body
// over it would stop every partner's feed from this node at that record.
const MaxBodyLimit = 3 << 20

// checkDialAddr checks an address that others dial: a host without spaces or hidden characters,
// and a port from 1 to 65535 (netaddr.Dial).
func checkDialAddr(field, addr, example string) error {
	if _, _, err := netaddr.Dial(addr); err != nil {
		return fmt.Errorf("%s: %q: %v: use host:port, such as %s", field, addr, err, example)
	}
	return nil
}

// checkListenAddr checks an address this node listens on: host:port, where an empty host is every
// interface and port 0 one the system picks (netaddr.Listen).
func checkListenAddr(field, addr, example string) error {
	if _, _, err := netaddr.Listen(addr); err != nil {
		return fmt.Errorf("%s: %q: %v: use host:port, such as %s", field, addr, err, example)
	}
	return nil
}

// secondDocument is the line of a second YAML document in data that holds anything, or 0.
func secondDocument(data []byte) int {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return 0 // the decoder says what is wrong, where
	}
	line, _, _ := policy.SecondDocument(f)
	return line
}

// checkHTTPListener checks the listen address and certificate of the HTTP listener of a section
// (ui, feed): host:port, both certificate files or neither, and without them a loopback
// address, where plain HTTP is allowed. It returns the host.
func checkHTTPListener(section, listen, example string, t UITLS) (string, error) {
	host, _, err := netaddr.Listen(listen)
	if err != nil {
		return "", fmt.Errorf("%s.listen: %q: %v: use host:port, such as %s", section, listen, err, example)
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return "", fmt.Errorf("%s.tls: give both cert_file and key_file, or neither (plain HTTP, loopback only)", section)
	}
	if t.CertFile == "" && !IsLoopback(host) {
		return "", fmt.Errorf("%[1]s.listen: %[2]s is not a loopback address: plain HTTP is allowed only on loopback; set %[1]s.tls.cert_file and %[1]s.tls.key_file, or listen on 127.0.0.1", section, listen)
	}
	return host, nil
}

// HTTP configures the REST/JSON API. It serves HTTPS with the node's X.509-SVID, so it needs
// listen and identity as the gRPC listener does.
type HTTP struct {
	// Listen is the HTTPS address of the API, such as 0.0.0.0:18443. Empty: off.
	Listen string `yaml:"listen"`
	// JWTBundleFile is the org's JWT bundle: a SPIFFE bundle (JWKS) document whose jwt-svid
	// keys sign the org's JWT-SVIDs, such as `spire-server bundle show -format spiffe` writes.
	// Empty: bearer JWT-SVIDs are refused and only mutual TLS is accepted. Read at start.
	JWTBundleFile string `yaml:"jwt_bundle_file"`
	// Audience lists the audiences of which a JWT-SVID must name at least one. Default: the
	// replica's own SPIFFE ID (spiffe://ORG/node/REPLICA). Name the address clients use, such
	// as https://api.vr-utrecht.nl, when several replicas serve behind one name.
	Audience []string `yaml:"audience"`
}

// Check checks the http section; its errors name the field.
func (h *HTTP) Check(listen string) error {
	if h.Listen == "" {
		if h.JWTBundleFile != "" || len(h.Audience) > 0 {
			return errors.New("http.listen: missing: jwt_bundle_file and audience configure the REST API, which is off without it")
		}
		return nil
	}
	if _, _, err := netaddr.Listen(h.Listen); err != nil {
		return fmt.Errorf("http.listen: %q: %v: use host:port, such as 0.0.0.0:18443", h.Listen, err)
	}
	if listen == "" {
		return errors.New("http.listen: the REST API serves HTTPS with the node's X.509-SVID: set listen and identity too")
	}
	for i, a := range h.Audience {
		if strings.TrimSpace(a) == "" {
			return fmt.Errorf("http.audience[%d]: empty: name this node, such as https://api.example.nl", i)
		}
	}
	return nil
}

// UI configures the node's web interface (node/ui).
type UI struct {
	// Listen is the address the web interface serves, such as 0.0.0.0:8080. Empty: off.
	Listen string `yaml:"listen"`
	// TLS is the certificate browsers see. Without it the interface serves plain HTTP, which
	// is allowed only on a loopback address.
	TLS UITLS `yaml:"tls"`
	// PublicURL is the address people type, such as https://knooppunt.vr-utrecht.nl. The
	// identity provider sends them back to PublicURL + /auth/callback. It may be left out on
	// loopback only: it is then the address the node listens on.
	PublicURL string `yaml:"public_url"`
	// OIDC is the org's own OpenID Connect provider, where people sign in.
	OIDC OIDC `yaml:"oidc"`
	// SessionTTL is how long a sign-in lasts before the person signs in again. Default 8h.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// TimeZone is the zone the interface writes times in, such as Europe/Amsterdam (the
	// default): a node in a container runs in UTC, its people do not.
	TimeZone string `yaml:"time_zone"`
}

// UITLS is the web interface's certificate and key (PEM files).
type UITLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// OIDC is an OpenID Connect provider and this node's client registration there.
type OIDC struct {
	// Issuer is the provider's issuer URL, such as https://login.vr-utrecht.nl/realms/crisis.
	Issuer string `yaml:"issuer"`
	// ClientID is the node's client at the provider.
	ClientID string `yaml:"client_id"`
	// ClientSecretFile holds the client secret. Empty: a public client (PKCE only).
	ClientSecretFile string `yaml:"client_secret_file"`
	// Claim names the ID-token claim that becomes the person's name in
	// spiffe://ORG/user/NAME. Default preferred_username, which some providers let a person
	// change: ClaimDefaulted says the config left it out, and the node warns of it.
	Claim          string `yaml:"claim"`
	ClaimDefaulted bool   `yaml:"-"`
	// Scopes are asked for besides openid. Default [profile].
	Scopes []string `yaml:"scopes"`
	// SignOut is where signing out ends the person's session: SignOutProvider (the default, also
	// when empty) ends it at the provider too, when the provider offers an end_session_endpoint,
	// so that the next person at a shared computer is not signed in by the provider's single
	// sign-on; SignOutNode ends the node's session alone.
	SignOut string `yaml:"sign_out"`
}

// Where signing out ends a session (OIDC.SignOut).
const (
	SignOutProvider = "provider"
	SignOutNode     = "node"
)

// Identity sources.
const (
	SourceWorkloadAPI = "workloadapi"
	SourceFiles       = "files"
)

// Identity says where the node's X.509-SVID and own bundle come from.
type Identity struct {
	// Source is workloadapi (SPIRE; the default) or files (development and the demo).
	Source string `yaml:"source"`
	// WorkloadAPI is the SPIRE agent socket, unix:///path. Empty: SPIFFE_ENDPOINT_SOCKET.
	WorkloadAPI string `yaml:"workload_api"`
	// SpiffeID picks the node's SVID when the agent offers the process more than one, such as
	// spiffe://ORG/node/r1. Empty: the agent's first.
	SpiffeID string `yaml:"spiffe_id"`
	// CertFile, KeyFile and BundleFile are the SVID chain, its key and the org's trust bundle,
	// for the files source. They are reloaded when they change.
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	BundleFile string `yaml:"bundle_file"`
}

// BundleEndpoint configures the node's SPIFFE Federation bundle endpoint.
type BundleEndpoint struct {
	// Listen is its address, such as 0.0.0.0:8443. Empty: not served.
	Listen string `yaml:"listen"`
	// URL is the https:// address at which peers reach the endpoint, for `peer invite`.
	// Default: https:// and Listen, when its host is not a wildcard.
	URL string `yaml:"url"`
	// RefreshHint tells peers how often to fetch the bundle. Default 5m.
	RefreshHint time.Duration `yaml:"refresh_hint"`
}

// Roles a SPIFFE ID of the org's own trust domain can be given.
const (
	RoleReader  = "reader"
	RoleEditor  = "editor"
	RoleOfficer = "officer"
	RoleAdmin   = "admin"
)

// RoleBinding gives a role to one SPIFFE ID or to every ID under a path prefix.
type RoleBinding struct {
	// ID is an exact SPIFFE ID, such as spiffe://vr-utrecht.crisis.test/user/anna.
	ID string `yaml:"id"`
	// Prefix matches every ID under a path, such as spiffe://vr-utrecht.crisis.test/user/apps/.
	Prefix string `yaml:"prefix"`
	// Role is reader, editor, officer or admin.
	Role string `yaml:"role"`
}

// Peer is another org's node.
type Peer struct {
	// Name is how users and logs call the peer, such as ncc.
	Name string `yaml:"name"`
	// OrgName is the peer organisation's name for people, such as GGD GHOR Nederland: the web
	// interface shows it for the partner's records. A peer accepted from an invitation has
	// the name it gave there. Empty: the interface shows Name.
	OrgName string `yaml:"org_name"`
	// TrustDomain is the peer org's trust domain.
	TrustDomain string `yaml:"trust_domain"`
	// Addresses are the peer's replicas, host:port of their mTLS listeners.
	Addresses []string `yaml:"addresses"`
	// BundleFile is the peer's trust bundle handed over at onboarding (PEM).
	BundleFile string `yaml:"bundle_file"`
	// BundleEndpoint is the peer's SPIFFE Federation bundle endpoint URL, such as
	// https://ncc.example:8443. Empty: the bundle file is all there is.
	BundleEndpoint string `yaml:"bundle_endpoint"`
	// EndpointID is the SPIFFE ID the bundle endpoint presents. Default spiffe://TD/node/r1.
	EndpointID string `yaml:"endpoint_id"`
	// Groups name the peer in policies, such as veiligheidsregios.
	Groups []string `yaml:"groups"`

	// Bundle is the peer's trust bundle (PEM) when it came with an invitation rather than a file.
	// It is never read from the config file.
	Bundle []byte `yaml:"-"`
	// Source says where the peer was declared: SourceConfig or SourceRaft.
	Source string `yaml:"-"`
}

// Where a peer was declared.
const (
	// PeerFromConfig is a peer listed in the config file.
	PeerFromConfig = "config"
	// PeerFromRaft is a peer added with `knooppunt peer accept`, kept in the node's Raft log.
	PeerFromRaft = "raft"
)

// Federation tunes the exchange with peers.
type Federation struct {
	// Heartbeat is how often an idle subscription to this node gets a heartbeat. Default 5s.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// Reevaluate is how often a subscription re-checks what it disclosed (expiring policies).
	// Default 30s.
	Reevaluate time.Duration `yaml:"reevaluate"`
	// IdleTimeout ends a subscription to a peer that sent nothing. Default 4 heartbeats.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// EventsPerSecond bounds the events taken in from one peer. Default 2000.
	EventsPerSecond float64 `yaml:"events_per_second"`
	// PeerRequestsPerSecond bounds the FederationService calls one peer may start, with bursts
	// of twice as many. Default 50.
	PeerRequestsPerSecond float64 `yaml:"peer_requests_per_second"`
	// PeerCalls bounds the FederationService calls one peer may have open at once. Default 16.
	PeerCalls int `yaml:"peer_calls"`
	// WitnessInterval is how often the node hands its signed audit head to every peer, besides
	// after each policy step and phase change. Default 5m.
	WitnessInterval time.Duration `yaml:"witness_interval"`
	// LeaveTimeout bounds how long a peer that `peer remove` made leave is granted nothing while
	// its node's subscription retracts what it holds; after it the peer is refused whatever it
	// still holds. Default 1h.
	LeaveTimeout time.Duration `yaml:"leave_timeout"`
	// Purpose is what this node states it needs peers' records for (doelbinding): on its
	// subscriptions, and on searches that state none. Peers audit it with every disclosure,
	// and a peer's policy with accept_purposes grants only to the purposes it lists. Read at
	// start.
	Purpose string `yaml:"purpose"`
}

// Erasure bounds how long what was deleted stays on disk.
type Erasure struct {
	// Within is the longest a deleted record's body, or a record a peer retracted, stays in any
	// file of the data directory after the delete or retraction: the node then has taken a
	// fresh Raft snapshot, removed the older one, cut the Raft log behind it and checkpointed
	// the database's WAL. Default 10m.
	Within time.Duration `yaml:"within"`
}

// Attachments bound the files that records name, and how they travel to peers.
type Attachments struct {
	// MaxBytes is the largest file. Default 50 MiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// MediaTypes are the types the node accepts, as sniffed from the content. Default:
	// PDF, the office formats (OOXML, OpenDocument, legacy), PNG, JPEG, GIF, WebP, plain
	// text and CSV. Programs are never accepted.
	MediaTypes []string `yaml:"media_types"`
	// StaleAfter is how long an upload that no chunk reached, or an uploaded file that no record
	// names, stays before a sweep removes it. Default 10m.
	StaleAfter time.Duration `yaml:"stale_after"`
	// SweepInterval is how often the leader sweeps. Default 1m.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// FetchBytesPerSecond bounds the bytes of files fetched from one peer per second, so that
	// files never crowd out records. Default 8 MiB.
	FetchBytesPerSecond int64 `yaml:"fetch_bytes_per_second"`
}

// History configures the history the early-warning rules read (see node/warn).
type History struct {
	// Retention is how far back the history reaches. Default 90 days (2160h).
	Retention time.Duration `yaml:"retention"`
}

// Rules configures the evaluation of the stored early-warning rules (see node/alerting).
type Rules struct {
	// Every is the interval between evaluations, on its multiples since the Unix epoch. Default
	// 1m.
	Every time.Duration `yaml:"every"`
}

// DefaultHistoryRetention is History.Retention when it is not set.
const DefaultHistoryRetention = 90 * 24 * time.Hour

// RetentionOrDefault returns Retention, or DefaultHistoryRetention when it is not set.
func (h History) RetentionOrDefault() time.Duration {
	if h.Retention == 0 {
		return DefaultHistoryRetention
	}
	return h.Retention
}

// Policy configures the policy lifecycle.
type Policy struct {
	// Approvals is how many officers other than the author must approve a policy. Default 1.
	Approvals int `yaml:"approvals"`
}

// Limits bound what a client may send.
type Limits struct {
	// MaxBodyBytes is the largest record body. Default 1 MiB.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// DiskReserveMiB is how much of the data directory's disk writes that add data leave free:
	// below it, the leader refuses them (RESOURCE_EXHAUSTED, reason DISK_LOW), and deletes,
	// officers' steps and reads go on. Default 256 MiB; 0 turns it off.
	DiskReserveMiB *int64 `yaml:"disk_reserve_mib"`
}

// DefaultDiskReserveMiB is limits.disk_reserve_mib when the config gives none.
const DefaultDiskReserveMiB = 256

// DiskReserve is limits.disk_reserve_mib in bytes.
func (l Limits) DiskReserve() uint64 {
	if l.DiskReserveMiB == nil {
		return DefaultDiskReserveMiB << 20
	}
	return uint64(max(0, *l.DiskReserveMiB)) << 20
}

// Raft configures the node's Raft group. With no Listen the node is a single replica.
type Raft struct {
	SnapshotThreshold uint64 `yaml:"snapshot_threshold"`
	// SnapshotSize is the bytes of log since the last snapshot that trigger one, however few
	// entries they are. Default 64 MiB.
	SnapshotSize    int64         `yaml:"snapshot_size"`
	ElectionTimeout time.Duration `yaml:"election_timeout"`
	// CommitTimeout is how long the leader waits with no new entries before it tells the
	// followers the commit index again: a follower's local reads see a burst's last writes
	// within about that long. Shorter costs CPU on every replica all the time. Default 50ms.
	CommitTimeout time.Duration `yaml:"commit_timeout"`
	// TrailingLogs is how many log entries a snapshot leaves behind it, so that a follower that
	// fell less far behind catches up from the log rather than from a whole snapshot. Default
	// 4096.
	TrailingLogs uint64 `yaml:"trailing_logs"`
	// Listen is the Raft transport's address (mutual TLS, replica SVIDs only).
	Listen string `yaml:"listen"`
	// Advertise is the address other replicas reach this one at. Default: Listen.
	Advertise string `yaml:"advertise"`
	// Servers are the voters of a new group, the same list on every replica, each with its
	// API address so that followers can forward writes to the leader.
	Servers []RaftServer `yaml:"servers"`
	// Bootstrap creates the group on first start. Set it to false on a replica that will be
	// added with `knooppunt cluster join`. Default true.
	Bootstrap *bool `yaml:"bootstrap"`
}

// RaftServer is one replica of the node's Raft group.
type RaftServer struct {
	ID string `yaml:"id"`
	// Address is the replica's Raft address (its raft.listen or raft.advertise).
	Address string `yaml:"address"`
	// API is the replica's mTLS gRPC address (its listen).
	API string `yaml:"api"`
	// UI is the public URL of the replica's web interface (its ui.public_url), if it serves
	// one. A follower's web interface links officers there for policy steps and phase changes,
	// which only the leader takes.
	UI string `yaml:"ui"`
}

// APIAddress returns the API address of a replica, or "".
func (c *Config) APIAddress(id string) string {
	for _, s := range c.Raft.Servers {
		if s.ID == id {
			return s.API
		}
	}
	return ""
}

// UIAddress returns the web interface's public URL of a replica, or "".
func (c *Config) UIAddress(id string) string {
	for _, s := range c.Raft.Servers {
		if s.ID == id {
			return s.UI
		}
	}
	return ""
}

// KindConfig declares a kind. Its schema is given inline or in a file.
type KindConfig struct {
	record.Kind `yaml:",inline"`
	// SchemaFile is a JSON Schema file, relative to the config file.
	SchemaFile string `yaml:"schema_file"`
}

// AdvertisedAddresses are the addresses at which peers reach the node: Advertise, else the raft
// servers' api addresses, else Listen when it names a host.
func (c *Config) AdvertisedAddresses() []string {
	if len(c.Advertise) > 0 {
		return c.Advertise
	}
	var out []string
	for _, s := range c.Raft.Servers {
		if s.API != "" {
			out = append(out, s.API)
		}
	}
	if len(out) == 0 && c.Listen != "" && !wildcard(c.Listen) {
		out = append(out, c.Listen)
	}
	return out
}

// BundleEndpointURL is where peers reach the node's bundle endpoint, or "".
func (c *Config) BundleEndpointURL() string {
	if c.BundleEndpoint.URL != "" {
		return c.BundleEndpoint.URL
	}
	if c.BundleEndpoint.Listen != "" && !wildcard(c.BundleEndpoint.Listen) {
		return "https://" + c.BundleEndpoint.Listen
	}
	return ""
}

// wildcard reports whether a listen address names no host that a peer could dial.
func wildcard(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	return err != nil || port == "0" || anyInterface(host)
}

// anyInterface reports whether a listen address's host is every interface: empty, 0.0.0.0 or ::.
func anyInterface(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

// DefaultOrg is the org of a node started without a config file.
const DefaultOrg = "local.crisis.test"

// Default is the configuration of a node started without a config file.
func Default() *Config {
	c := &Config{}
	c.setDefaults()
	return c
}

// parseDuration reads a duration of the config: the decoder then places a bad one at its line and
// key, where time.Duration's own decoding said only `time: invalid duration "forty"`.
func parseDuration(d *time.Duration, b []byte) error {
	var s string
	if err := yaml.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return &durationError{value: s}
	}
	*d = v
	return nil
}

// durationText writes d as an operator would: -1h, 1h30m, 10m, not Go's -1h0m0s.
func durationText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// durationError is a value where the config takes a duration; Load places it (durationAt).
type durationError struct{ value string }

func (e *durationError) Error() string {
	return fmt.Sprintf("%q is not a duration: write it as 30s, 10m or 24h", e.value)
}

// durationAt is where in the file the value of a durationError stands, as line and key path
// (webhooks.retry_for), or "" when it cannot be found.
func durationAt(data []byte, value string) string {
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return ""
	}
	var at string
	for _, doc := range file.Docs {
		ast.Walk(visitFunc(func(n ast.Node) bool {
			if at != "" {
				return false
			}
			if t := n.GetToken(); n.Type() != ast.MappingValueType && t != nil && t.Value == value {
				at = fmt.Sprintf("line %d: %s", t.Position.Line, strings.TrimPrefix(n.GetPath(), "$."))
			}
			return true
		}), doc)
	}
	return at
}

// visitFunc is an ast.Visitor of a function: false stops the walk below the node.
type visitFunc func(ast.Node) bool

func (f visitFunc) Visit(n ast.Node) ast.Visitor {
	if f(n) {
		return f
	}
	return nil
}

// Load reads and checks the config file at path. Errors name the file, line and field.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if line := secondDocument(data); line > 0 {
		return nil, fmt.Errorf("config %s: line %d: a second YAML document (---): a node's config is one document; put everything in the first", path, line)
	}
	var c Config
	if err := yaml.UnmarshalWithOptions(data, &c, yaml.Strict(), yaml.UseJSONUnmarshaler(), yaml.CustomUnmarshaler(parseDuration)); err != nil {
		var de *durationError
		if errors.As(err, &de) {
			if at := durationAt(data, de.value); at != "" {
				return nil, fmt.Errorf("config %s: %s: %v", path, at, de)
			}
			return nil, fmt.Errorf("config %s: %v", path, de)
		}
		if why := explainYAML(err, data); why != "" {
			return nil, fmt.Errorf("config %s: %s\n%s", path, why, yaml.FormatError(err, false, true))
		}
		return nil, fmt.Errorf("config %s:\n%s", path, yaml.FormatError(err, false, true))
	}
	for i := range c.Kinds {
		k := &c.Kinds[i]
		if k.SchemaFile == "" {
			continue
		}
		if len(k.Schema) > 0 {
			return nil, fmt.Errorf("config %s: kinds[%d] (%s): give schema or schema_file, not both", path, i, k.Name)
		}
		f := k.SchemaFile
		if !filepath.IsAbs(f) {
			f = filepath.Join(filepath.Dir(path), f)
		}
		if k.Schema, err = os.ReadFile(f); err != nil {
			return nil, fmt.Errorf("config %s: kinds[%d].schema_file: %w", path, i, err)
		}
	}
	base := filepath.Dir(path)
	rel := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	rel(&c.Identity.CertFile)
	rel(&c.Identity.KeyFile)
	rel(&c.Identity.BundleFile)
	rel(&c.UI.TLS.CertFile)
	rel(&c.UI.TLS.KeyFile)
	rel(&c.Feed.TLS.CertFile)
	rel(&c.Feed.TLS.KeyFile)
	rel(&c.UI.OIDC.ClientSecretFile)
	rel(&c.HTTP.JWTBundleFile)
	rel(&c.Webhooks.CAFile)
	if c.Webhooks.CAFile != "" {
		if c.Webhooks.Roots, err = roots(c.Webhooks.CAFile); err != nil {
			return nil, fmt.Errorf("config %s: webhooks.ca_file: %w", path, err)
		}
	}
	for i := range c.Peers {
		rel(&c.Peers[i].BundleFile)
	}
	c.setDefaults()
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

// roots returns the system's roots with the CA certificates of the PEM file at path.
func roots(path string) (*x509.CertPool, error) {
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("%s holds no PEM certificate: give the CA's certificate (-----BEGIN CERTIFICATE-----)", path)
	}
	return pool, nil
}

func (c *Config) setDefaults() {
	if c.Org == "" {
		c.Org = DefaultOrg
	}
	if c.Name == "" {
		for i := 0; i < len(c.Org); i++ {
			if c.Org[i] == '.' {
				c.Name = c.Org[:i]
				break
			}
		}
		if c.Name == "" {
			c.Name = c.Org
		}
	}
	if c.ReplicaID == "" {
		c.ReplicaID = "r1"
	}
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = record.DefaultMaxBody
	}
	if c.Attachments.MaxBytes == 0 {
		c.Attachments.MaxBytes = 50 << 20
	}
	if c.Attachments.StaleAfter == 0 {
		c.Attachments.StaleAfter = 10 * time.Minute
	}
	if c.Attachments.SweepInterval == 0 {
		c.Attachments.SweepInterval = time.Minute
	}
	if c.Attachments.FetchBytesPerSecond == 0 {
		c.Attachments.FetchBytesPerSecond = 8 << 20
	}
	if c.Federation.Heartbeat == 0 {
		c.Federation.Heartbeat = DefaultHeartbeat
	}
	if c.Federation.IdleTimeout == 0 {
		// The wait is on peers' heartbeats, which are their settings, not this node's: four of
		// this node's, and never less than four of a peer's by default.
		c.Federation.IdleTimeout = 4 * max(c.Federation.Heartbeat, DefaultHeartbeat)
	}
	if c.Federation.LeaveTimeout == 0 {
		c.Federation.LeaveTimeout = time.Hour
	}
	if c.Policy.Approvals == 0 {
		c.Policy.Approvals = policy.DefaultApprovals
	}
	if c.Webhooks.RetryFor == 0 {
		c.Webhooks.RetryFor = 24 * time.Hour
	}
	if c.Webhooks.Timeout == 0 {
		c.Webhooks.Timeout = 10 * time.Second
	}
	if c.Identity.Source == "" {
		c.Identity.Source = SourceWorkloadAPI
		if c.Identity.CertFile != "" {
			c.Identity.Source = SourceFiles
		}
	}
	if c.BundleEndpoint.RefreshHint == 0 {
		c.BundleEndpoint.RefreshHint = 5 * time.Minute
	}
	if c.UI.Listen != "" {
		if c.UI.OIDC.Claim == "" {
			c.UI.OIDC.Claim, c.UI.OIDC.ClaimDefaulted = "preferred_username", true
		}
		if c.UI.OIDC.Scopes == nil {
			c.UI.OIDC.Scopes = []string{"profile"}
		}
		if c.UI.OIDC.SignOut == "" {
			c.UI.OIDC.SignOut = SignOutProvider
		}
		if c.UI.TimeZone == "" {
			c.UI.TimeZone = "Europe/Amsterdam"
		}
		if c.UI.SessionTTL == 0 {
			c.UI.SessionTTL = 8 * time.Hour
		}
	}
	for i := range c.Peers {
		p := &c.Peers[i]
		if p.Source == "" {
			p.Source = PeerFromConfig
		}
		if p.EndpointID == "" && p.TrustDomain != "" {
			p.EndpointID = FirstReplicaID(p.TrustDomain)
		}
	}
}

// CheckReplicaID checks a replica's id, the last part of its SPIFFE ID (spiffe://TD/node/ID):
// 1 to 63 letters, digits, '.', '-' or '_', as a SPIFFE ID's path allows, and not "." or "..".
// field names it in the error.
func CheckReplicaID(field, id string) error {
	ok := id != "" && len(id) <= 63 && id != "." && id != ".."
	for _, c := range id {
		ok = ok && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_')
	}
	if !ok {
		return fmt.Errorf("%s: %s is not a replica id: use 1 to 63 letters, digits, '.', '-' or '_', such as r4", field, policy.Quote(id))
	}
	return nil
}

// FirstReplicaID is the SPIFFE ID of an org's first replica, spiffe://TD/node/r1: what a
// peer's node calls with, and presents at its bundle endpoint, unless its config says else.
func FirstReplicaID(td string) string { return "spiffe://" + td + "/node/r1" }

func (c *Config) check() error {
	if err := record.CheckOrigin("org", c.Org); err != nil {
		return err
	}
	if err := CheckReplicaID("replica_id", c.ReplicaID); err != nil {
		return err
	}
	if c.Limits.MaxBodyBytes < 0 {
		return errors.New("limits.max_body_bytes: must be positive")
	}
	if r := c.Limits.DiskReserveMiB; r != nil && (*r < 0 || *r > 1<<30) {
		return fmt.Errorf("limits.disk_reserve_mib: %d is not from 0 (no reserve) to %d", *r, 1<<30)
	}
	if c.Limits.MaxBodyBytes > MaxBodyLimit {
		return fmt.Errorf("limits.max_body_bytes: %d is over %d, the most a partner's node takes in one message with room for the record around it: use %d or less, and put larger content in attachments", c.Limits.MaxBodyBytes, MaxBodyLimit, MaxBodyLimit)
	}
	for i, t := range c.Attachments.MediaTypes {
		if !strings.Contains(t, "/") {
			return fmt.Errorf("attachments.media_types[%d]: %q is not a media type such as application/pdf", i, t)
		}
	}
	if _, err := c.KindSet(); err != nil {
		return err
	}
	if err := c.UI.Check(); err != nil {
		return err
	}
	if err := c.HTTP.Check(c.Listen); err != nil {
		return err
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		return fmt.Errorf("log.format: %q: use text or json", c.Log.Format)
	}
	if r := c.Tracing.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		return fmt.Errorf("tracing.sample_ratio: %g: use a number from 0 to 1", *r)
	}
	if c.Tracing.Endpoint != "" {
		if _, _, err := net.SplitHostPort(c.Tracing.Endpoint); err != nil {
			return fmt.Errorf("tracing.endpoint: %q: use the collector's host:port, such as 127.0.0.1:4317", c.Tracing.Endpoint)
		}
	}
	if err := c.CAP.Check(); err != nil {
		return err
	}
	if err := c.Feed.Check(); err != nil {
		return err
	}
	return c.checkAccess()
}

// Check checks the ui section; its errors name the field. An empty ui.listen turns the web
// interface off, and then nothing else is checked.
func (u *UI) Check() error {
	if u.Listen == "" {
		return nil
	}
	host, err := checkHTTPListener("ui", u.Listen, "127.0.0.1:8080", u.TLS)
	if err != nil {
		return err
	}
	tls := u.TLS.CertFile != ""
	if u.PublicURL == "" {
		if !IsLoopback(host) {
			return errors.New("ui.public_url: missing: the address people's browsers use, such as https://knooppunt.example.nl")
		}
		return u.checkOIDC()
	}
	pu, err := url.Parse(u.PublicURL)
	if err != nil || pu.Host == "" || (pu.Scheme != "https" && pu.Scheme != "http") || pu.RawQuery != "" || pu.Fragment != "" {
		return fmt.Errorf("ui.public_url: %q: use an absolute URL such as https://knooppunt.example.nl", u.PublicURL)
	}
	if pu.Scheme == "http" && !IsLoopback(pu.Hostname()) {
		return fmt.Errorf("ui.public_url: %s: browsers reach a non-loopback address over https only: use an https:// URL", u.PublicURL)
	}
	if pu.Scheme == "https" && !tls && !IsLoopback(pu.Hostname()) && !IsLoopback(host) {
		return fmt.Errorf("ui.public_url: %s is https, but the node has no ui.tls", u.PublicURL)
	}
	return u.checkOIDC()
}

func (u *UI) checkOIDC() error {
	if u.OIDC.Issuer == "" {
		return errors.New("ui.oidc.issuer: missing: the URL of the org's OpenID Connect provider")
	}
	iu, err := url.Parse(u.OIDC.Issuer)
	if err != nil || iu.Host == "" || (iu.Scheme != "https" && !(iu.Scheme == "http" && IsLoopback(iu.Hostname()))) {
		return fmt.Errorf("ui.oidc.issuer: %q: use an https:// URL (http only on loopback)", u.OIDC.Issuer)
	}
	if u.OIDC.ClientID == "" {
		return errors.New("ui.oidc.client_id: missing: the node's client id at the provider")
	}
	if u.OIDC.Claim == "" {
		return errors.New("ui.oidc.claim: empty: name the ID-token claim with the person's user name, such as preferred_username")
	}
	for i, s := range u.OIDC.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\n") {
			return fmt.Errorf("ui.oidc.scopes[%d]: %q is not a scope", i, s)
		}
	}
	if u.OIDC.SignOut != "" && u.OIDC.SignOut != SignOutProvider && u.OIDC.SignOut != SignOutNode {
		return fmt.Errorf("ui.oidc.sign_out: %q: use %s (end the session at the provider too) or %s (the node's alone)", u.OIDC.SignOut, SignOutProvider, SignOutNode)
	}
	if u.SessionTTL < time.Minute {
		return fmt.Errorf("ui.session_ttl: %s is too short: use 1m or more, such as 8h", durationText(u.SessionTTL))
	}
	if u.TimeZone != "" {
		if _, err := time.LoadLocation(u.TimeZone); err != nil {
			return fmt.Errorf("ui.time_zone: %q is no time zone: use an IANA name such as Europe/Amsterdam", u.TimeZone)
		}
	}
	return nil
}

// IsLoopback reports whether host (a name or an IP address) is the loopback interface.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// KindSet compiles the declared kinds, or the demo kinds when none are declared. The built-in
// alert kind is always there: the early-warning rules write it and CAP imports become it.
func (c *Config) KindSet() (*record.Kinds, error) {
	if len(c.Kinds) == 0 {
		return record.NewKinds(record.DemoKinds())
	}
	kinds := make([]record.Kind, len(c.Kinds))
	for i, k := range c.Kinds {
		kinds[i] = k.Kind
	}
	for _, b := range record.Builtin() {
		if !slices.ContainsFunc(kinds, func(k record.Kind) bool { return k.Name == b.Name }) {
			kinds = append(kinds, b)
		}
	}
	return record.NewKinds(kinds)
}

func (c *Config) checkAccess() error {
	td, err := spiffeid.TrustDomainFromString(c.Org)
	if err != nil {
		return fmt.Errorf("org: %q is not a trust domain: %w", c.Org, err)
	}
	if c.Raft.Listen != "" && c.Listen == "" {
		return errors.New("raft.listen: replicas authenticate with SVIDs: set listen and identity too")
	}
	for i, a := range c.Advertise {
		if err := checkDialAddr(fmt.Sprintf("advertise[%d]", i), a, "knooppunt.vr-utrecht.nl:7443"); err != nil {
			return err
		}
	}
	for _, l := range []struct{ field, addr, example string }{
		{"listen", c.Listen, "0.0.0.0:7443"},
		{"metrics_addr", c.MetricsAddr, "127.0.0.1:9090"},
		{"bundle_endpoint.listen", c.BundleEndpoint.Listen, "0.0.0.0:8443"},
		{"raft.listen", c.Raft.Listen, "0.0.0.0:7444"},
	} {
		if l.addr == "" {
			continue
		}
		if err := checkListenAddr(l.field, l.addr, l.example); err != nil {
			return err
		}
	}
	if a := c.Raft.Advertise; a != "" {
		if err := checkDialAddr("raft.advertise", a, "knooppunt-1.vr-utrecht.nl:7444"); err != nil {
			return err
		}
	} else if host, _, err := net.SplitHostPort(c.Raft.Listen); err == nil && anyInterface(host) {
		return fmt.Errorf("raft.advertise: missing: raft.listen %s is every interface, so the other replicas need the address they reach this one at, such as knooppunt-1.vr-utrecht.nl:7444", c.Raft.Listen)
	}
	if a := c.Tracing.Endpoint; a != "" {
		if err := checkDialAddr("tracing.endpoint", a, "127.0.0.1:4317"); err != nil {
			return err
		}
	}
	if u := c.BundleEndpoint.URL; u != "" && !strings.HasPrefix(u, "https://") {
		return fmt.Errorf("bundle_endpoint.url: %q: use an https:// URL", u)
	}
	self := len(c.Raft.Servers) == 0
	for i, s := range c.Raft.Servers {
		if s.ID == "" || s.Address == "" {
			return fmt.Errorf("raft.servers[%d]: give id and address", i)
		}
		if err := CheckReplicaID(fmt.Sprintf("raft.servers[%d].id", i), s.ID); err != nil {
			return err
		}
		if err := checkDialAddr(fmt.Sprintf("raft.servers[%d].address", i), s.Address, "knooppunt-2.vr-utrecht.nl:7444"); err != nil {
			return err
		}
		if s.API != "" {
			if err := checkDialAddr(fmt.Sprintf("raft.servers[%d].api", i), s.API, "knooppunt-2.vr-utrecht.nl:7443"); err != nil {
				return err
			}
		}
		for j, o := range c.Raft.Servers[:i] {
			if o.ID == s.ID || o.Address == s.Address {
				return fmt.Errorf("raft.servers[%d]: id %q or address %s is raft.servers[%d]'s too: list each replica once", i, s.ID, s.Address, j)
			}
		}
		self = self || s.ID == c.ReplicaID
		if s.UI != "" {
			if u, err := url.Parse(s.UI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return fmt.Errorf("raft.servers[%d].ui: %q: use the replica's ui.public_url, such as https://knooppunt-2.example.nl", i, s.UI)
			}
		}
	}
	if !self {
		return fmt.Errorf("raft.servers: no replica with this replica's id %q (replica_id): list every replica of the group, this one too", c.ReplicaID)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"federation.events_per_second", c.Federation.EventsPerSecond},
		{"federation.peer_requests_per_second", c.Federation.PeerRequestsPerSecond},
		{"federation.peer_calls", float64(c.Federation.PeerCalls)},
		{"raft.commit_timeout", c.Raft.CommitTimeout.Seconds()},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s: %g is negative: use a positive number, or leave it out for the default", f.name, f.v)
		}
	}
	for _, d := range []struct {
		name, example string
		v             time.Duration
	}{
		{"federation.heartbeat", "5s", c.Federation.Heartbeat},
		{"federation.reevaluate", "1m", c.Federation.Reevaluate},
		{"federation.idle_timeout", "20s", c.Federation.IdleTimeout},
		{"bundle_endpoint.refresh_hint", "5m", c.BundleEndpoint.RefreshHint},
		{"raft.election_timeout", "500ms", c.Raft.ElectionTimeout},
		{"federation.leave_timeout", "1h", c.Federation.LeaveTimeout},
		{"federation.witness_interval", "5m", c.Federation.WitnessInterval},
		{"history.retention", "2160h (90 days)", c.History.Retention},
		{"erasure.within", "10m", c.Erasure.Within},
		{"attachments.stale_after", "10m", c.Attachments.StaleAfter},
		{"attachments.sweep_interval", "1m", c.Attachments.SweepInterval},
		{"webhooks.retry_for", "24h", c.Webhooks.RetryFor},
		{"webhooks.timeout", "10s", c.Webhooks.Timeout},
		{"webhooks.min_backoff", "1s", c.Webhooks.MinBackoff},
		{"webhooks.max_backoff", "5m", c.Webhooks.MaxBackoff},
	} {
		if d.v < 0 {
			return fmt.Errorf("%s: %s is negative: use a duration such as %s, or leave it out for the default", d.name, durationText(d.v), d.example)
		}
	}
	// The node lets a peer's events through in bursts of one second's worth, a whole number of
	// events (peerclient): under one it lets none through, and every subscription fails on its
	// first event.
	if e := c.Federation.EventsPerSecond; e != 0 && e < 1 {
		return fmt.Errorf("federation.events_per_second: %g is less than 1: the node lets a peer's events through in bursts of a second's worth, a whole number, so it would let none through and every subscription to a peer would fail: use 1 or more, such as 2000", e)
	}
	if e := c.Federation.EventsPerSecond; e > MaxEventsPerSecond {
		return fmt.Errorf("federation.events_per_second: %g is more than the node can count in a second's burst: use %g or less, such as 2000", e, MaxEventsPerSecond)
	}
	if n := c.Federation.PeerCalls; n > MaxPeerCalls {
		return fmt.Errorf("federation.peer_calls: %d is more calls than a node can hold open (each holds a goroutine and a stream's buffers here), so it would not guard the node against a peer: use %d or less, such as 16", n, MaxPeerCalls)
	}
	if w := c.Erasure.Within; w > 0 && w < MinEraseWithin {
		return fmt.Errorf("erasure.within: %s is too short: the node erases with a Raft snapshot of its whole database half the bound after a delete, and tries a failed step again 100ms later at the soonest: use %s or more, such as 10m", durationText(w), durationText(MinEraseWithin))
	}
	if c.Federation.Heartbeat > 0 && c.Federation.Heartbeat < 100*time.Millisecond {
		return fmt.Errorf("federation.heartbeat: %s is too short: use 100ms or more, such as 5s", durationText(c.Federation.Heartbeat))
	}
	if c.Raft.ElectionTimeout > 0 && c.Raft.ElectionTimeout < 20*time.Millisecond {
		return fmt.Errorf("raft.election_timeout: %s is too short for Raft: use 20ms or more, such as 500ms on a LAN", durationText(c.Raft.ElectionTimeout))
	}
	for _, b := range []struct {
		name, example string
		v             int64
	}{
		{"raft.snapshot_size", "67108864", c.Raft.SnapshotSize},
		{"attachments.max_bytes", "52428800 (50 MiB)", c.Attachments.MaxBytes},
		{"attachments.fetch_bytes_per_second", "8388608 (8 MiB)", c.Attachments.FetchBytesPerSecond},
	} {
		if b.v < 0 {
			return fmt.Errorf("%s: %d is negative: use a size in bytes such as %s, or leave it out for the default", b.name, b.v, b.example)
		}
	}
	if c.Webhooks.MinBackoff > 0 && c.Webhooks.MaxBackoff > 0 && c.Webhooks.MinBackoff > c.Webhooks.MaxBackoff {
		return fmt.Errorf("webhooks.min_backoff: %s is more than max_backoff %s: the wait grows from the one to the other", durationText(c.Webhooks.MinBackoff), durationText(c.Webhooks.MaxBackoff))
	}
	if c.Rules.Every < 0 || (c.Rules.Every > 0 && c.Rules.Every < time.Second) {
		return fmt.Errorf("rules.every: %s is out of range: use 1s or more, such as 1m, or leave it out for the default", durationText(c.Rules.Every))
	}
	if !utf8.ValidString(c.Federation.Purpose) || len(c.Federation.Purpose) > policy.MaxPurposeBytes {
		return fmt.Errorf("federation.purpose: use valid UTF-8 of at most %d bytes", policy.MaxPurposeBytes)
	}
	// Peers keep the purpose in their audit logs as stated, and refuse one with such a character.
	if i := strings.IndexFunc(c.Federation.Purpose, policy.Hidden); i >= 0 {
		r, _ := utf8.DecodeRuneInString(c.Federation.Purpose[i:])
		return fmt.Errorf("federation.purpose: holds a control or invisible character (U+%04X) at byte %d: state the purpose as plain text on one line", r, i)
	}
	switch c.Identity.Source {
	case SourceWorkloadAPI:
		if c.Identity.SpiffeID != "" {
			id, err := spiffeid.FromString(c.Identity.SpiffeID)
			if err != nil {
				return fmt.Errorf("identity.spiffe_id: %q: %w", c.Identity.SpiffeID, err)
			}
			if id.TrustDomain().Name() != c.Org || !strings.HasPrefix(id.Path(), "/node/") {
				return fmt.Errorf("identity.spiffe_id: %s is not a replica ID of this org: use spiffe://%s/node/<replica>", id, c.Org)
			}
		}
	case SourceFiles:
		if c.Identity.SpiffeID != "" {
			return errors.New("identity.spiffe_id: picks among the SVIDs of the Workload API; the files source has one SVID, in cert_file")
		}
		if c.Listen != "" && (c.Identity.CertFile == "" || c.Identity.KeyFile == "" || c.Identity.BundleFile == "") {
			return errors.New("identity: the files source needs cert_file, key_file and bundle_file")
		}
	default:
		return fmt.Errorf("identity.source: %q is not a source: use workloadapi or files", c.Identity.Source)
	}
	for i, r := range c.Roles {
		field := fmt.Sprintf("roles[%d]", i)
		switch r.Role {
		case RoleReader, RoleEditor, RoleOfficer, RoleAdmin:
		default:
			return fmt.Errorf("%s.role: %q is not a role: use reader, editor, officer or admin", field, r.Role)
		}
		if (r.ID == "") == (r.Prefix == "") {
			return fmt.Errorf("%s: give id or prefix, not both or neither", field)
		}
		s, name := r.ID, "id"
		if r.Prefix != "" {
			s, name = r.Prefix, "prefix"
		}
		id, err := spiffeid.FromString(strings.TrimSuffix(s, "/"))
		if err != nil {
			return fmt.Errorf("%s.%s: %q is not a SPIFFE ID: %w", field, name, s, err)
		}
		if id.TrustDomain() != td {
			return fmt.Errorf("%s.%s: %s is not in this org's trust domain %s: roles are for the org's own IDs", field, name, s, td)
		}
	}
	if err := c.checkApprovals(); err != nil {
		return err
	}
	names := map[string]bool{}
	tds := map[string]bool{}
	for i, p := range c.Peers {
		field := fmt.Sprintf("peers[%d]", i)
		if p.Name == "" {
			return fmt.Errorf("%s.name: missing", field)
		}
		if names[p.Name] {
			return fmt.Errorf("%s.name: peer %q is listed twice", field, p.Name)
		}
		names[p.Name] = true
		ptd, err := spiffeid.TrustDomainFromString(p.TrustDomain)
		if err != nil {
			return fmt.Errorf("%s.trust_domain: %q: %w", field, p.TrustDomain, err)
		}
		if ptd == td {
			return fmt.Errorf("%s.trust_domain: %s is this org's own trust domain", field, ptd)
		}
		if tds[p.TrustDomain] {
			return fmt.Errorf("%s.trust_domain: %s is listed twice", field, ptd)
		}
		tds[p.TrustDomain] = true
		if p.BundleFile == "" && c.Identity.Source == SourceFiles {
			return fmt.Errorf("%s.bundle_file: missing: the peer's bundle, handed over at onboarding", field)
		}
		for j, a := range p.Addresses {
			if err := checkDialAddr(fmt.Sprintf("%s.addresses[%d]", field, j), a, "knooppunt.ncc.nl:7443"); err != nil {
				return err
			}
		}
		if p.BundleEndpoint != "" {
			if !strings.HasPrefix(p.BundleEndpoint, "https://") {
				return fmt.Errorf("%s.bundle_endpoint: %q: use an https:// URL", field, p.BundleEndpoint)
			}
			eid, err := spiffeid.FromString(p.EndpointID)
			if err != nil {
				return fmt.Errorf("%s.endpoint_id: %q: %w", field, p.EndpointID, err)
			}
			if eid.TrustDomain() != ptd {
				return fmt.Errorf("%s.endpoint_id: %s is not in the peer's trust domain %s", field, eid, ptd)
			}
		}
	}
	return nil
}

// checkApprovals refuses a policy.approvals that no officers could meet. A policy needs its
// author and that many other officers (four eyes: the author cannot approve), and only roles
// make officers. The roles must have been checked.
func (c *Config) checkApprovals() error {
	n := c.Policy.Approvals
	if n < 1 {
		return fmt.Errorf("policy.approvals: %d: use 1 or more: the officers besides the author who must approve a policy, or leave it out for 1", n)
	}
	officers := map[string]bool{}
	for i, r := range c.Roles {
		if r.Role != RoleOfficer {
			continue
		}
		if r.Prefix != "" {
			// Any number of IDs may fall under a prefix: the node cannot count them.
			if n > MaxApprovals {
				return fmt.Errorf("policy.approvals: %d is more than %d: roles[%d] makes every ID under %s an officer, so the node cannot count its officers, and more approvals would hold up every policy: use %d or less", n, MaxApprovals, i, r.Prefix, MaxApprovals)
			}
			return nil
		}
		if id, err := spiffeid.FromString(r.ID); err == nil {
			officers[id.String()] = true // an ID listed twice is one officer
		}
	}
	// The default is the least the four eyes need. A config with fewer than two officers is one
	// being set up (init writes it so, and asks for the second), not one that asks too much;
	// the roles reload.
	if n > policy.DefaultApprovals && n+1 > len(officers) {
		return fmt.Errorf("policy.approvals: %d needs %d officers, the author and %d others, but roles names %d: name more officers under roles, or use %d or less", n, n+1, n, len(officers), max(policy.DefaultApprovals, len(officers)-1))
	}
	return nil
}

// reloaded are the top-level keys a running node takes from its config file when it changes
// (see node.Reload): the others apply at the next start. Of raft, only servers is reloaded.
var reloaded = map[string]bool{"roles": true, "peers": true, "advertise": true, "policy": true, "history": true, "attachments": true, "webhooks": true}

// RestartKeys lists the keys whose values differ between the running config and a reloaded
// one and that apply only after a restart, such as metrics_addr or raft.listen.
func RestartKeys(running, reloadedCfg *Config) []string {
	var out []string
	a, b := reflect.ValueOf(running).Elem(), reflect.ValueOf(reloadedCfg).Elem()
	t := a.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" || reloaded[name] || !t.Field(i).IsExported() {
			continue
		}
		if name == "raft" {
			x, y := running.Raft, reloadedCfg.Raft
			x.Servers, y.Servers = nil, nil
			if !reflect.DeepEqual(x, y) {
				out = append(out, name)
			}
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, name)
		}
	}
	return out
}

// explainYAML says a YAML error of the config in data in a host's words, before the parser's
// own (which names Go types: "cannot unmarshal string into Go struct field Config.Raft of type
// uint64"): the line, the setting, and what it wants; a misspelt setting gets the one it was
// probably meant to be, and one that belongs in another section the place where it does. It is
// "" for other errors.
func explainYAML(err error, data []byte) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && te.Token != nil && te.DstType != nil {
		key := ""
		if k := keyOf(te.Token); k != "" {
			key = k + ": "
		}
		given := fmt.Sprintf("%q", te.Token.Value)
		if te.SrcType != nil {
			switch te.SrcType.Kind() {
			case reflect.Slice, reflect.Array:
				given = "a list"
			case reflect.Map, reflect.Struct:
				given = "a group of settings"
			}
		}
		return fmt.Sprintf("line %d: %s%s is not %s", te.Token.Position.Line, key, given, typeWords(te.DstType))
	}
	var ue *yaml.UnknownFieldError
	if errors.As(err, &ue) && ue.Token != nil {
		key, line := ue.Token.Value, ue.Token.Position.Line
		section, found := sectionOf(data, ue.Token)
		where := "here"
		if found && section == "" {
			where = "at the top level"
		} else if found {
			where = "under " + strings.ReplaceAll(section, "[]", "")
		}
		if near, ok := policy.Closest(key, settings()[section]); found && ok {
			return fmt.Sprintf("line %d: %q is not a setting: did you mean %s?", line, key, near)
		}
		// A key valid in another section names that section's path: its bare name would read
		// "did you mean every?" of "every".
		if paths := settingsNamed(key, section); len(paths) > 0 {
			return fmt.Sprintf("line %d: %q is not a setting %s: did you mean %s?", line, key, where, orList(paths))
		}
		return fmt.Sprintf("line %d: %q is not a setting %s: see the example config in docs/operator.md", line, key, where)
	}
	return ""
}

// sectionOf is the section of the config in data in which the key at tk stands, as settings
// names it ("" for the top level, "raft.servers[]" for a replica's), and whether tk was found.
func sectionOf(data []byte, tk *token.Token) (string, bool) {
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return "", false
	}
	var find func(n ast.Node, section string) (string, bool)
	find = func(n ast.Node, section string) (string, bool) {
		switch n := n.(type) {
		case *ast.DocumentNode:
			return find(n.Body, section)
		case *ast.AnchorNode:
			return find(n.Value, section)
		case *ast.TagNode:
			return find(n.Value, section)
		case *ast.MappingNode:
			for _, v := range n.Values {
				if s, ok := find(v, section); ok {
					return s, true
				}
			}
		case *ast.MappingValueNode:
			k := n.Key.GetToken()
			if k != nil && k.Position.Line == tk.Position.Line && k.Position.Column == tk.Position.Column {
				return section, true
			}
			if k != nil {
				return find(n.Value, joinKey(section, k.Value))
			}
		case *ast.SequenceNode:
			for _, v := range n.Values {
				if s, ok := find(v, section+"[]"); ok {
					return s, true
				}
			}
		}
		return "", false
	}
	for _, doc := range file.Docs {
		if s, ok := find(doc, ""); ok {
			return s, true
		}
	}
	return "", false
}

// joinKey is the path of key in section, such as rules.every.
func joinKey(section, key string) string {
	if section == "" {
		return key
	}
	return section + "." + key
}

// settingsNamed are the paths of the settings outside section named key, or else named like it
// (a misspelling), such as rules.every for every; nil when no setting is.
func settingsNamed(key, section string) []string {
	all := settings()
	var names []string
	for s, keys := range all {
		if s != section {
			names = append(names, keys...)
		}
	}
	name, ok := key, slices.Contains(names, key)
	if !ok {
		if name, ok = policy.Closest(key, names); !ok {
			return nil
		}
	}
	var out []string
	for s, keys := range all {
		if s != section && slices.Contains(keys, name) {
			out = append(out, joinKey(s, name))
		}
	}
	slices.Sort(out)
	return out
}

// orList writes a, b or c.
func orList(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// keyOf is the key a value token stands under ("snapshot_threshold" for its value), or "".
func keyOf(tk *token.Token) string {
	for p := tk.Prev; p != nil; p = p.Prev {
		if p.Type == token.MappingValueType {
			if p.Prev != nil && p.Prev.Type == token.StringType {
				return p.Prev.Value
			}
			return ""
		}
		if p.Position.Line != tk.Position.Line {
			return ""
		}
	}
	return ""
}

// typeWords says what a setting of type t is written as.
func typeWords(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number: write it as 8192, without quotes"
	case reflect.Float32, reflect.Float64:
		return "a number: write it as 0.5"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a text: write it on the line, after the colon"
	case reflect.Slice, reflect.Array:
		return "a list: write it as [a, b], or one \"- item\" a line"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "a group of settings: write them on the lines below, indented"
	}
	return "of the type this setting wants: see the example config in docs/operator.md"
}

// settings are the names of the config's settings by section: "" for the top level, "raft" for
// raft's, "peers[]" for each peer's.
var settings = sync.OnceValue(func() map[string][]string {
	out := map[string][]string{}
	var walk func(section string, t reflect.Type)
	walk = func(section string, t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			if t.Kind() != reflect.Pointer {
				section += "[]"
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			switch {
			case !f.IsExported() || name == "-":
			case name == "" && (f.Anonymous || strings.Contains(opts, "inline")):
				walk(section, f.Type) // an inline struct's settings are its parent's
			case name != "":
				out[section] = append(out[section], name)
				walk(joinKey(section, name), f.Type)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	return out
})
