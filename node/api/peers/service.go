// Package peers is the PeerService: a node writes invitations signed with its SVID key, accepts
// its partners' invitations, and keeps the peers it accepted in Raft, so that every replica has
// them without a config file. It merges those peers with the config file's (Merge), and the node
// hands the merged list to its authorizer, trust store and subscriptions.
//
// peers never trusts an invitation by itself: invite.Open checks it, and a person checks its
// fingerprint with the partner before the CLI calls Accept.
package peers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/invite"
	"github.com/knooppunt/knooppunt/federation/peerclient"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/store"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Config wires the service.
type Config struct {
	Store *store.Store
	DB    *db.DB
	// SVID signs invitations and gives the org's own bundle; nil on a node without an identity
	// (one that serves only its local socket), which can accept no peers either.
	SVID identity.Source
	// File returns the running config as the config file gives it, without peers from Raft.
	File func() *config.Config
	// Refresh, when set, applies the peers of the database to the running node. A step calls it
	// once applied, so that on the replica that took it the peer is in effect (trusted,
	// subscribed to, or refused) before the caller hears back.
	Refresh func() error
	// Subscription, when set, says how this replica's subscription to a peer fares; ok is false
	// when it runs none (see peerclient.Manager.Subscription).
	Subscription func(peer string) (st peerclient.SubscriptionState, ok bool)
	// Bundle, when set, says how this replica's refresh of a peer's trust bundle fares (see
	// identity.TrustStore.Fetch); ok is false when it fetches none.
	Bundle func(td spiffeid.TrustDomain) (f identity.BundleFetch, ok bool)
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Service implements knooppunt.v1.PeerService.
type Service struct {
	pb.UnsafePeerServiceServer
	c Config
}

var _ pb.PeerServiceServer = (*Service)(nil)

// New returns the service.
func New(c Config) *Service {
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Service{c: c}
}

// RegisterService registers the service on s.
func RegisterService(s grpc.ServiceRegistrar, svc *Service) { pb.RegisterPeerServiceServer(s, svc) }

var (
	peerName  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	groupName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

// checkGroups checks the groups a request places the peer in: at most as many as an invitation
// carries, each a group name. Too many were the node's fault at Invite, and Accept stored 10,001
// (review AF, AF6).
func checkGroups(groups []string) error {
	if len(groups) > invite.MaxGroups {
		return api.Invalid("groups", "%d groups is over the limit of %d: name the groups your policies grant by", len(groups), invite.MaxGroups)
	}
	for i, g := range groups {
		if !groupName.MatchString(g) {
			return api.Invalid(fmt.Sprintf("groups[%d]", i), "%s is not a group name: use 1 to 63 letters, digits, . _ -, starting with a letter or digit", policy.Quote(g))
		}
	}
	return nil
}

// maxPeerRef is the longest peer name or trust domain a request names a peer by: a trust
// domain's own limit.
const maxPeerRef = 255

// checkPeerRef checks the field that names a peer, by its name or its trust domain: a value that
// cannot be either is refused as such, not looked up and not found (review AF, AF5). A peer of
// the config file may have any name, so the check is of what no name can hold.
func checkPeerRef(field, name string) error {
	what := "give a peer's name or trust domain (`knooppunt peer list` shows them)"
	if name == "" || strings.TrimSpace(name) == "" {
		return api.Invalid(field, "missing: %s", what)
	}
	return record.CheckText(field, name, maxPeerRef, what)
}

// notFound refuses a well-formed name in field that names no peer; how says how the node came
// to have one ("": at all).
func notFound(field, name, how string) error {
	return api.FieldStatus(codes.NotFound, field, fmt.Sprintf("no peer %s%s: `knooppunt peer list` shows the peers", policy.Quote(name), how))
}

func noIdentity() error {
	return status.Error(codes.FailedPrecondition, "this node has no identity of its own: set listen and identity in its config (`knooppunt init` writes both) and restart it")
}

// Invite writes an invitation to this node.
func (s *Service) Invite(ctx context.Context, req *pb.InviteRequest) (*pb.InviteResponse, error) {
	if s.c.SVID == nil {
		return nil, noIdentity()
	}
	// The seconds are compared, not a duration made of them: that wraps around (review AF, AF6).
	ttl := invite.DefaultTTL
	switch maxTTL := int64(invite.MaxTTL / time.Second); {
	case req.TtlSeconds == 0:
	case req.TtlSeconds < 60 || req.TtlSeconds > maxTTL:
		return nil, api.Invalid("ttl_seconds", "%d seconds is out of range: give 60 (1m) to %d (%dd), or 0 for %s", req.TtlSeconds, maxTTL, int(invite.MaxTTL/(24*time.Hour)), invite.DefaultTTL)
	default:
		ttl = time.Duration(req.TtlSeconds) * time.Second
	}
	if err := checkGroups(req.Groups); err != nil {
		return nil, err
	}
	file, inv, err := s.invitation(req.Groups, "", ttl)
	if err != nil {
		return nil, err
	}
	fp, err := inv.Fingerprint()
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	return &pb.InviteResponse{Invitation: file, Fingerprint: fp, ExpiresAt: timestamppb.New(inv.ExpiresAt)}, nil
}

func (s *Service) invitation(groups []string, answerTo string, ttl time.Duration) ([]byte, *invite.Invitation, error) {
	cfg := s.c.File()
	addrs := cfg.AdvertisedAddresses()
	if len(addrs) == 0 {
		return nil, nil, status.Errorf(codes.FailedPrecondition, "advertise: the config names no address at which peers reach this node: set advertise: [\"HOST:PORT\"] in it")
	}
	svid, err := s.c.SVID.GetX509SVID()
	if err != nil {
		return nil, nil, status.Errorf(codes.Unavailable, "this node's SVID is not available now: %v", err)
	}
	b, err := s.c.SVID.GetX509BundleForTrustDomain(svid.ID.TrustDomain())
	if err != nil {
		return nil, nil, status.Errorf(codes.Unavailable, "this node's own trust bundle is not available now: %v", err)
	}
	pem, err := b.Marshal()
	if err != nil {
		return nil, nil, api.Status(s.c.Logger, err)
	}
	// A partner pins this replica's ID for the bundle endpoint the invitation names: were another
	// replica to serve it, every refresh of this org's bundle at the partner would fail, unseen
	// until a CA rotation ends the federation.
	if u := cfg.BundleEndpointURL(); u != "" {
		pctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		served, err := identity.EndpointIDOf(pctx, u, s.c.SVID, svid.ID.TrustDomain())
		cancel()
		switch {
		case err != nil:
			s.c.Logger.Warn("could not reach this node's own bundle endpoint to check it: partners refresh this org's bundle there", "url", u, "err", err)
		case served != svid.ID:
			return nil, nil, status.Errorf(codes.FailedPrecondition, "bundle_endpoint.url %s is served by %s, not by this replica (%s): partners pin the inviting replica's ID for it, so their refreshes of this org's bundle would fail. Run this on %s, or point this replica's bundle_endpoint.url at its own endpoint",
				u, served, svid.ID, served)
		}
	}
	if why := NoBundleEndpoint(cfg); why != "" {
		s.c.Logger.Warn("this invitation names no bundle endpoint: "+why+". "+NoBundleEndpointMeans,
			"replica", svid.ID.String(), "answer_to", answerTo)
	}
	now := s.c.Now().UTC().Truncate(time.Second)
	inv := invite.Invitation{
		Name: cfg.Name, TrustDomain: cfg.Org, Addresses: addrs, BundleEndpoint: cfg.BundleEndpointURL(),
		Bundle: string(pem), Groups: groups, AnswerTo: answerTo, IssuedAt: now, ExpiresAt: now.Add(ttl),
	}
	file, err := invite.Sign(inv, svid)
	if err != nil {
		return nil, nil, status.Errorf(codes.FailedPrecondition, "this node cannot sign an invitation: %v", err)
	}
	signed, err := invite.Open(file, s.c.Now())
	if err != nil {
		return nil, nil, api.Status(s.c.Logger, fmt.Errorf("peers: an invitation this node signed does not open: %w", err))
	}
	return file, signed, nil
}

// NoBundleEndpointMeans says what an invitation without a bundle endpoint means for the partner
// that accepts it; peer invite prints it, and the node logs it.
const NoBundleEndpointMeans = "The partner keeps the trust bundle the invitation carries and never refreshes it: " +
	"once this organisation's CA rotates (under SPIRE within its ca_ttl, 24h in deploy/spire), the partner refuses " +
	"this node's new SVIDs and the federation stops, with nothing to warn of it before. " +
	"Set bundle_endpoint.url to the https:// URL at which partners reach this replica's own bundle endpoint, " +
	"restart the replica (bundle_endpoint applies at start), and write the invitation again"

// NoBundleEndpoint says why an invitation written under cfg names no bundle endpoint, or "" when
// it names one.
func NoBundleEndpoint(cfg *config.Config) string {
	switch {
	case cfg.BundleEndpointURL() != "":
		return ""
	case cfg.BundleEndpoint.Listen == "":
		return "this node serves none (bundle_endpoint.listen is not set)"
	default:
		return fmt.Sprintf("bundle_endpoint.listen %s names no host a partner can dial, and bundle_endpoint.url is not set", cfg.BundleEndpoint.Listen)
	}
}

// Open checks an invitation file as Accept does, and returns it with its fingerprint.
func Open(file []byte, now time.Time) (*invite.Invitation, string, error) {
	if len(file) == 0 {
		return nil, "", api.Invalid("invitation", "empty: give the file the partner's `knooppunt peer invite` wrote")
	}
	inv, err := invite.Open(file, now)
	switch {
	case errors.Is(err, invite.ErrExpired):
		return nil, "", api.FieldStatus(codes.FailedPrecondition, "invitation", strings.TrimPrefix(err.Error(), "invite: "))
	case err != nil:
		return nil, "", api.Invalid("invitation", "%s", strings.TrimPrefix(err.Error(), "invite: "))
	}
	fp, err := inv.Fingerprint()
	if err != nil {
		return nil, "", api.Invalid("invitation", "%v", err)
	}
	return inv, fp, nil
}

// Accept checks an invitation and adds the peer it names through Raft.
func (s *Service) Accept(ctx context.Context, req *pb.AcceptRequest) (*pb.AcceptResponse, error) {
	if s.c.SVID == nil {
		return nil, noIdentity()
	}
	if err := checkGroups(req.Groups); err != nil {
		return nil, err
	}
	inv, fp, err := Open(req.Invitation, s.c.Now())
	if err != nil {
		return nil, err
	}
	if req.Fingerprint != "" && req.Fingerprint != fp {
		return nil, api.FieldStatus(codes.FailedPrecondition, "fingerprint", fmt.Sprintf("the invitation's is %s, not the %s that was confirmed: nothing was added", fp, req.Fingerprint))
	}
	file := s.c.File()
	if inv.TrustDomain == file.Org {
		return nil, api.Invalid("invitation", "it is this node's own (%s): accept the invitation your partner sent", inv.TrustDomain)
	}
	// A peer accepted before keeps what this node chose for it, its name and groups, unless the
	// request gives them anew: a partner's new invitation (new addresses, a new bundle) must not
	// take the peer out of the groups that policies grant.
	var before *pb.PeerInfo
	accepted, err := s.c.DB.Peers(ctx)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	for _, p := range accepted {
		if p.TrustDomain == inv.TrustDomain {
			before = p
		}
	}
	name := req.Name
	if name == "" && before != nil {
		name = before.Name
	}
	if name == "" {
		name, _, _ = strings.Cut(inv.TrustDomain, ".")
	}
	if !peerName.MatchString(name) {
		return nil, api.Invalid("name", "%s is not a peer name: use 1 to 63 of a-z 0-9 . _ - (give --name)", policy.Quote(name))
	}
	// Groups decide what this node's policies grant the peer, so they are this node's choice
	// alone: the groups the invitation proposes are shown to the person, never applied.
	groups := req.Groups
	if req.NoGroups && len(groups) > 0 {
		return nil, api.Invalid("no_groups", "it takes the peer out of every group, and groups names %d: give one or the other", len(groups))
	}
	if len(groups) == 0 && !req.NoGroups && before != nil {
		groups = before.Groups
	}
	for _, p := range file.Peers {
		if p.TrustDomain == inv.TrustDomain {
			return nil, status.Errorf(codes.FailedPrecondition, "%s is a peer in the config file (as %s): change it there, or remove it there before accepting an invitation", inv.TrustDomain, p.Name)
		}
		if p.Name == name {
			return nil, api.FieldStatus(codes.AlreadyExists, "name", fmt.Sprintf("%q is the name of peer %s in the config file: give another with --name", name, p.TrustDomain))
		}
	}
	// Everything the reply needs is made before the step, so that what can fail (an address
	// peers reach this node at, its SVID and bundle for the answer) fails with nothing added: a
	// peer added without the answer it was meant to get is half a pairing that nobody notices.
	granting, err := s.granting(ctx, groups, before.GetGroups())
	if err != nil {
		return nil, err
	}
	var answer []byte
	var answerFP string
	if inv.AnswerTo == "" {
		file, ainv, err := s.invitation(nil, inv.ID, invite.DefaultTTL)
		if err == nil {
			answerFP, err = ainv.Fingerprint()
			err = api.Status(s.c.Logger, err)
		}
		if err != nil {
			st := status.Convert(err)
			return nil, status.Error(st.Code(), st.Message()+": nothing was added")
		}
		answer = file
	}
	caller, _ := api.CallerFrom(ctx)
	step := &pb.PeerStep{Action: "add", Actor: caller.String(), At: timestamppb.New(s.c.Now()), Replace: req.Replace, Peer: &pb.PeerInfo{
		Name: name, TrustDomain: inv.TrustDomain, OrgName: inv.Name, Addresses: inv.Addresses, Bundle: []byte(inv.Bundle),
		BundleEndpoint: inv.BundleEndpoint, EndpointId: inv.SpiffeID, Groups: groups, Fingerprint: fp, Invitation: inv.ID,
	}}
	out, err := s.apply(ctx, step)
	if err != nil {
		return nil, err
	}
	// An invitation that answers one of ours gets no answer: it says the other side has us.
	resp := &pb.AcceptResponse{Peer: s.info(out.Peer, file), Outcome: out.Outcome, Answer: answer, AnswerFingerprint: answerFP, Granting: granting}
	s.c.Logger.Info("peer accepted", "peer", name, "peer_trust_domain", inv.TrustDomain, "outcome", out.Outcome, "by", caller.String())
	return resp, nil
}

// granting lists the approved policies that name a group of groups that the peer was not in
// before: placing a peer in a group extends them to it.
func (s *Service) granting(ctx context.Context, groups, before []string) ([]string, error) {
	out, err := Granting(ctx, s.c.DB, groups, before)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	return out, nil
}

// Granting lists the approved policies that name a group of groups that the peer was not in
// before: placing a peer in a group, through Raft or in the config file, extends them to it.
func Granting(ctx context.Context, d *db.DB, groups, before []string) ([]string, error) {
	var added []string
	for _, g := range groups {
		if !slices.Contains(before, g) {
			added = append(added, "group:"+g)
		}
	}
	if len(added) == 0 {
		return nil, nil
	}
	approved, err := d.ListPolicies(ctx, policy.StateApproved, "")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range approved {
		parsed, err := policy.Parse(p.Source)
		if err == nil && slices.ContainsFunc(parsed.Doc.Recipients, func(r string) bool { return slices.Contains(added, r) }) {
			out = append(out, p.ID)
		}
	}
	return out, nil
}

func (s *Service) apply(ctx context.Context, step *pb.PeerStep) (db.PeerOutcome, error) {
	v, err := s.c.Store.Apply(ctx, &pb.Command{Cmd: &pb.Command_PeerStep{PeerStep: step}})
	if err != nil {
		return db.PeerOutcome{}, api.Status(s.c.Logger, err)
	}
	out, _ := v.(db.PeerOutcome)
	if s.c.Refresh != nil && out.Refusal == nil {
		if err := s.c.Refresh(); err != nil {
			s.c.Logger.Warn("a peer step was applied but not yet put in effect here: it will be at the next change", "err", err)
		}
	}
	msg := func() string { return strings.TrimPrefix(out.Refusal.Error(), "db: ") }
	switch {
	case errors.Is(out.Refusal, db.ErrPeerOtherBundle):
		return out, status.Errorf(codes.FailedPrecondition, "%s: check the fingerprint with them by phone; if the new one is right, accept again with --replace", msg())
	case errors.Is(out.Refusal, db.ErrPeerNameTaken):
		return out, api.FieldStatus(codes.AlreadyExists, "name", msg()+": give another with --name")
	case errors.Is(out.Refusal, db.ErrPeerNoBundle):
		return out, api.Invalid("peer.bundle", "%s: accept the peer with its invitation, which carries its bundle", msg())
	case errors.Is(out.Refusal, db.ErrPeerNotFound):
		return out, status.Errorf(codes.NotFound, "%s: `knooppunt peer list` shows the peers", msg())
	case out.Refusal != nil:
		return out, api.Status(s.c.Logger, out.Refusal)
	case out.Peer == nil:
		return out, api.Status(s.c.Logger, errors.New("peers: the step was not applied: the database is ahead of the Raft log"))
	}
	return out, nil
}

// List returns every peer: the config file's and those accepted.
func (s *Service) List(ctx context.Context, _ *pb.ListPeersRequest) (*pb.ListPeersResponse, error) {
	all, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	return &pb.ListPeersResponse{Peers: all}, nil
}

func (s *Service) all(ctx context.Context) ([]*pb.PeerInfo, error) {
	file := s.c.File()
	raft, err := s.c.DB.Peers(ctx)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	var out []*pb.PeerInfo
	for _, p := range file.Peers {
		if p.Source == config.PeerFromRaft {
			continue
		}
		info := &pb.PeerInfo{Name: p.Name, OrgName: p.OrgName, TrustDomain: p.TrustDomain, Addresses: p.Addresses, BundleEndpoint: p.BundleEndpoint,
			EndpointId: p.EndpointID, Groups: p.Groups, Source: config.PeerFromConfig, Active: true}
		if td, err := spiffeid.TrustDomainFromString(p.TrustDomain); err == nil && p.BundleFile != "" {
			if pem, err := os.ReadFile(p.BundleFile); err == nil {
				if b, err := x509bundle.Parse(td, pem); err == nil {
					info.Bundle, info.Fingerprint = pem, invite.Fingerprint(td, b)
				}
			}
		}
		out = append(out, info)
	}
	for _, p := range raft {
		out = append(out, s.info(p, file))
	}
	slices.SortFunc(out, func(a, b *pb.PeerInfo) int { return strings.Compare(a.Name+"\x00"+a.Source, b.Name+"\x00"+b.Source) })
	for _, p := range out {
		cursor, at, err := s.c.DB.PeerCursor(ctx, p.Name)
		if err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
		p.Cursor = cursor
		if !at.IsZero() {
			p.ReceivedAt = timestamppb.New(at)
		}
		if s.c.Bundle != nil {
			if td, err := spiffeid.TrustDomainFromString(p.TrustDomain); err == nil {
				if f, ok := s.c.Bundle(td); ok {
					if !f.OK.IsZero() {
						p.BundleRefreshedAt = timestamppb.New(f.OK)
					}
					if f.Err != "" {
						p.BundleError, p.BundleFailingSince = f.Err, timestamppb.New(f.FailingSince)
					}
					if !f.Last.IsZero() {
						p.BundleLastAttempt = timestamppb.New(f.Last)
					}
					if !f.Next.IsZero() {
						p.BundleNextAttempt = timestamppb.New(f.Next)
					}
					// The bundle endpoint may have changed the CAs since the peer was added:
					// the fingerprint to compare with the partner is of those (review O, O4).
					if f.InForce != nil && p.Fingerprint != "" {
						if fp := invite.Fingerprint(td, f.InForce); fp != p.Fingerprint {
							p.FingerprintInForce = fp
						}
					}
				}
			}
		}
		if s.c.Subscription == nil || !p.Active {
			continue
		}
		if st, ok := s.c.Subscription(p.Name); ok {
			p.Subscription, p.SubscriptionSince, p.SubscriptionError = "down", timestamppb.New(st.Since), st.Err
			switch {
			case st.Open:
				p.Subscription = "open"
			case st.Err == "":
				p.Subscription = "connecting" // its first attempt has not ended yet
			}
			if !st.DescribedAt.IsZero() {
				p.Version, p.DescribedAt = st.Version, timestamppb.New(st.DescribedAt)
			}
		}
	}
	return out, nil
}

// info completes a peer from Raft with its source and whether the config file shadows it.
func (s *Service) info(p *pb.PeerInfo, file *config.Config) *pb.PeerInfo {
	p.Source = config.PeerFromRaft
	p.Active = !shadowed(p, file)
	return p
}

func shadowed(p *pb.PeerInfo, file *config.Config) bool {
	if p.TrustDomain == file.Org {
		return true
	}
	for _, f := range file.Peers {
		if f.Source != config.PeerFromRaft && (f.TrustDomain == p.TrustDomain || f.Name == p.Name) {
			return true
		}
	}
	return false
}

// Get returns one peer by name or trust domain.
func (s *Service) Get(ctx context.Context, req *pb.GetPeerRequest) (*pb.PeerInfo, error) {
	if err := checkPeerRef("name", req.Name); err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	all, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range all {
		if p.Name == req.Name || p.TrustDomain == req.Name {
			return p, nil
		}
	}
	return nil, notFound("name", req.Name, "")
}

// Remove removes a peer that was accepted. By default the peer first leaves: from then on every
// decision for it is deny, so its node's subscription retracts every record it holds, and
// RunLeaving refuses it once its node holds nothing (or after the leave timeout). With now, or
// for a peer that is leaving already, it is refused at once. Either way its subscription stops
// and its calls are refused from then on, also on connections already open. Records it sent
// stay in the cache.
func (s *Service) Remove(ctx context.Context, req *pb.RemovePeerRequest) (*pb.PeerInfo, error) {
	if err := checkPeerRef("name", req.Name); err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	// Both before the lookup: a bad reason is refused as such, whether or not the peer exists.
	// As a revocation: the step ends what the partner is granted, and the audit log keeps why.
	if err := api.CheckReason(req.Reason, "say why the peer goes, for the audit log"); err != nil {
		return nil, err
	}
	raft, err := s.c.DB.Peers(ctx)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	td, leaving := "", false
	for _, p := range raft {
		if p.Name == req.Name || p.TrustDomain == req.Name {
			td, leaving = p.TrustDomain, p.LeavingSince != nil
		}
	}
	if td == "" {
		for _, p := range s.c.File().Peers {
			if p.Source != config.PeerFromRaft && (p.Name == req.Name || p.TrustDomain == req.Name) {
				return nil, api.FieldStatus(codes.FailedPrecondition, "name", fmt.Sprintf("%s is a peer of the config file: remove it there (the node reloads it)", policy.Quote(req.Name)))
			}
		}
		return nil, notFound("name", req.Name, " was accepted")
	}
	caller, _ := api.CallerFrom(ctx)
	action := "leave"
	if req.Now || leaving {
		action = "remove"
	}
	out, err := s.apply(ctx, &pb.PeerStep{Action: action, Actor: caller.String(), At: timestamppb.New(s.c.Now()), Reason: req.Reason,
		Peer: &pb.PeerInfo{TrustDomain: td}})
	if err != nil {
		return nil, err
	}
	s.c.Logger.Info("peer "+out.Outcome, "peer", out.Peer.Name, "peer_trust_domain", td, "by", caller.String())
	info := s.info(out.Peer, s.c.File())
	if action == "remove" {
		info.LeavingSince = nil // refused now, no longer leaving
	}
	return info, nil
}

// RunLeaving refuses, on the leader, every peer that is leaving once its node holds nothing from
// this one (its subscription received every retraction), or once it has left for timeout. It
// checks every interval until ctx ends. People and apps of the peer's org that only queried
// have no stream to take a retraction; what they hold is named in the removal's audit entry.
func (s *Service) RunLeaving(ctx context.Context, interval, timeout time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.c.Store.IsLeader() {
			continue
		}
		raft, err := s.c.DB.Peers(ctx)
		if err != nil {
			continue
		}
		for _, p := range raft {
			if p.LeavingSince == nil {
				continue
			}
			node, err := s.c.DB.Disclosed(ctx, "spiffe://"+p.TrustDomain+"/node/*")
			if err != nil {
				continue
			}
			left := s.c.Now().Sub(p.LeavingSince.AsTime())
			if len(node) > 0 && left < timeout {
				continue
			}
			all, _ := s.c.DB.HoldersOf(ctx, p.TrustDomain)
			reason := fmt.Sprintf("left: its node holds nothing from this node after %s; %d records remain with identities that only queried", left.Round(time.Second), all)
			if len(node) > 0 {
				reason = fmt.Sprintf("leave timeout %s: its node still holds %d records from this node, %d in all", timeout, len(node), all)
			}
			if _, err := s.apply(ctx, &pb.PeerStep{Action: "remove", Actor: "node", At: timestamppb.New(s.c.Now()), Reason: reason,
				Peer: &pb.PeerInfo{TrustDomain: p.TrustDomain}}); err != nil {
				s.c.Logger.Warn("could not refuse a peer that left", "peer", p.Name, "err", err)
				continue
			}
			s.c.Logger.Info("peer removed", "peer", p.Name, "peer_trust_domain", p.TrustDomain, "reason", reason)
		}
	}
}

// Merge returns the config file's config with the peers accepted through Raft added, those the
// file does not shadow: the file's peers win over an accepted one of the same trust domain or
// name, so an operator can always take a peer in hand by listing it.
func Merge(file *config.Config, raft []*pb.PeerInfo) *config.Config {
	merged := *file
	merged.Peers = nil
	for _, p := range file.Peers {
		if p.Source != config.PeerFromRaft {
			merged.Peers = append(merged.Peers, p)
		}
	}
	base := &config.Config{Org: file.Org, Peers: slices.Clone(merged.Peers)}
	for _, p := range raft {
		if shadowed(p, base) {
			continue
		}
		merged.Peers = append(merged.Peers, config.Peer{
			Name: p.Name, TrustDomain: p.TrustDomain, Addresses: slices.Clone(p.Addresses), BundleEndpoint: p.BundleEndpoint,
			EndpointID: p.EndpointId, Groups: slices.Clone(p.Groups), Bundle: p.Bundle, Source: config.PeerFromRaft,
		})
	}
	return &merged
}
