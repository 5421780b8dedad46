package api

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/node/config"
)

// Role is what a caller may do. reader, editor, officer and admin are given to the org's own
// SPIFFE IDs in config. The others follow from how the caller connected.
type Role string

// Roles.
const (
	Reader  Role = config.RoleReader
	Editor  Role = config.RoleEditor
	Officer Role = config.RoleOfficer
	Admin   Role = config.RoleAdmin
	// Replica is another replica of this node: spiffe://TD/node/*.
	Replica Role = "replica"
	// Peer is another org's node, of a configured peer trust domain.
	Peer Role = "peer"
	// Local is whoever can open the local socket. It has no identity, so it may administer the
	// node but never take a step that must be attributed to a person.
	Local Role = "local"
)

var (
	officers  = []Role{Officer}
	oversight = []Role{Officer, Admin, Local}
	anyUser   = []Role{Reader, Editor, Officer, Admin, Local}
	writers   = []Role{Editor, Admin, Local}
	// writersAndOfficers run exercises.
	writersAndOfficers = []Role{Editor, Officer, Admin, Local}
	// ruleUsers write early-warning rules and try them: editors and officers, and the node's
	// admins.
	ruleUsers = []Role{Editor, Officer, Admin, Local}
	// ruleAuthors apply and delete rules, in person.
	ruleAuthors = []Role{Editor, Officer}
	everybody   = []Role{Reader, Editor, Officer, Admin, Replica, Peer, Local}
)

// MethodRoles is the one table of which roles may call which gRPC method. A method that is not
// listed is denied to everybody.
var MethodRoles = map[string][]Role{
	"/knooppunt.v1.RecordService/Put":          writers,
	"/knooppunt.v1.RecordService/PutBatch":     writers,
	"/knooppunt.v1.RecordService/Delete":       writers,
	"/knooppunt.v1.RecordService/Get":          anyUser,
	"/knooppunt.v1.RecordService/List":         anyUser,
	"/knooppunt.v1.RecordService/Versions":     anyUser,
	"/knooppunt.v1.RecordService/Watch":        anyUser,
	"/knooppunt.v1.StatusService/Status":       {Reader, Editor, Officer, Admin, Replica, Local},
	"/knooppunt.v1.AttachmentService/Upload":   writers,
	"/knooppunt.v1.AttachmentService/Download": anyUser,

	// Policy and phase steps are taken by officers in person: never by the local socket, whose
	// user could otherwise act as both officers of the four-eyes rule.
	"/knooppunt.v1.PolicyService/Propose": officers,
	"/knooppunt.v1.PolicyService/Approve": officers,
	"/knooppunt.v1.PolicyService/Reject":  officers,
	"/knooppunt.v1.PolicyService/Revoke":  officers,
	"/knooppunt.v1.PolicyService/Lint":    oversight,
	"/knooppunt.v1.PolicyService/List":    oversight,
	"/knooppunt.v1.PolicyService/Get":     oversight,
	"/knooppunt.v1.PolicyService/Preview": oversight,
	"/knooppunt.v1.PolicyService/Explain": oversight,
	"/knooppunt.v1.PhaseService/Set":      officers,
	"/knooppunt.v1.PhaseService/List":     anyUser,
	// An exercise is run by its editors; closing it deletes only its own records.
	"/knooppunt.v1.ExerciseService/Start": writersAndOfficers,
	"/knooppunt.v1.ExerciseService/Close": writersAndOfficers,
	"/knooppunt.v1.ExerciseService/List":  anyUser,
	"/knooppunt.v1.RuleService/Lint":      ruleUsers,
	"/knooppunt.v1.RuleService/Test":      ruleUsers,
	"/knooppunt.v1.RuleService/Apply":     ruleAuthors,
	"/knooppunt.v1.RuleService/Delete":    ruleAuthors,
	"/knooppunt.v1.RuleService/List":      anyUser,
	"/knooppunt.v1.RuleService/Get":       anyUser,
	"/knooppunt.v1.AuditService/List":     oversight,
	"/knooppunt.v1.AuditService/Verify":   oversight,

	"/knooppunt.v1.FederationService/Describe":  {Peer},
	"/knooppunt.v1.FederationService/Query":     {Peer},
	"/knooppunt.v1.FederationService/Subscribe": {Peer},
	"/knooppunt.v1.FederationService/Witness":   {Peer},
	"/knooppunt.v1.FederationService/Heads":     {Peer},
	"/knooppunt.v1.FederationService/FetchFile": {Peer},
	"/knooppunt.v1.SearchService/Search":        anyUser,
	"/knooppunt.v1.SearchService/Picture":       anyUser,

	// Trusting a peer discloses nothing by itself (only policies do), so it is the admin's, like
	// the node's replicas; the peers a node trusts are for its people to see.
	"/knooppunt.v1.PeerService/Invite": {Admin, Local},
	"/knooppunt.v1.PeerService/Accept": {Admin, Local},
	"/knooppunt.v1.PeerService/Remove": {Admin, Local},
	"/knooppunt.v1.PeerService/List":   anyUser,
	"/knooppunt.v1.PeerService/Get":    anyUser,

	// Webhooks send records out of the node, to the org's own systems: the admin's, like its
	// replicas; officers oversee where records go.
	"/knooppunt.v1.WebhookService/Add":      {Admin, Local},
	"/knooppunt.v1.WebhookService/Remove":   {Admin, Local},
	"/knooppunt.v1.WebhookService/Retry":    {Admin, Local},
	"/knooppunt.v1.WebhookService/Rotate":   {Admin, Local},
	"/knooppunt.v1.WebhookService/List":     oversight,
	"/knooppunt.v1.WebhookService/Failures": oversight,

	"/knooppunt.v1.ClusterService/Status":        {Admin, Local, Replica},
	"/knooppunt.v1.ClusterService/Join":          {Admin, Local},
	"/knooppunt.v1.ClusterService/Remove":        {Admin, Local},
	"/knooppunt.v1.ClusterService/Backup":        {Admin, Local},
	"/knooppunt.v1.ClusterService/BackupKept":    {Admin, Local},
	"/knooppunt.v1.ReplicaService/Apply":         {Replica},
	"/knooppunt.v1.ReplicaService/WatchPartners": {Replica},

	"/grpc.health.v1.Health/Check": everybody,
	"/grpc.health.v1.Health/Watch": everybody,
	"/grpc.health.v1.Health/List":  everybody,

	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {Admin, Local},
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {Admin, Local},
}

// federationService is the only service peers may call.
const federationService = "/knooppunt.v1.FederationService/"

// Caller is who made a call, as the authorisation interceptor established it.
type Caller struct {
	// ID is the caller's SPIFFE ID; zero for the local socket.
	ID spiffeid.ID
	// Roles the caller holds.
	Roles []Role
	// Peer is the configured name of the caller's org when it is a peer.
	Peer string
	// ForwardedBy is the replica that forwarded the call to this one, if any.
	ForwardedBy string
}

// Has reports whether the caller holds role.
func (c Caller) Has(role Role) bool { return slices.Contains(c.Roles, role) }

// String names the caller for logs and audit entries.
func (c Caller) String() string {
	if c.ID.IsZero() {
		return "local socket"
	}
	return c.ID.String()
}

type callerKey struct{}

// CallerFrom returns the caller of the call in ctx.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Access is the part of the config that decides who holds which role. It is replaced whole when
// the config reloads.
type Access struct {
	TrustDomain spiffeid.TrustDomain
	exact       map[spiffeid.ID][]Role // an ID listed twice holds both roles
	prefixes    []prefixRole
	peers       map[spiffeid.TrustDomain]string
}

type prefixRole struct {
	prefix string
	role   Role
}

// NewAccess builds Access from a checked config.
func NewAccess(c *config.Config) (*Access, error) {
	td, err := spiffeid.TrustDomainFromString(c.Org)
	if err != nil {
		return nil, err
	}
	a := &Access{TrustDomain: td, exact: map[spiffeid.ID][]Role{}, peers: map[spiffeid.TrustDomain]string{}}
	for _, r := range c.Roles {
		if r.ID != "" {
			id, err := spiffeid.FromString(r.ID)
			if err != nil {
				return nil, err
			}
			// An ID named twice keeps both roles, once each.
			if !slices.Contains(a.exact[id], Role(r.Role)) {
				a.exact[id] = append(a.exact[id], Role(r.Role))
			}
			continue
		}
		// A prefix is a path: .../user/apps, with or without its slash, holds .../user/apps/x,
		// not .../user/appsevil.
		a.prefixes = append(a.prefixes, prefixRole{prefix: strings.TrimSuffix(r.Prefix, "/") + "/", role: Role(r.Role)})
	}
	for _, p := range c.Peers {
		ptd, err := spiffeid.TrustDomainFromString(p.TrustDomain)
		if err != nil {
			return nil, err
		}
		a.peers[ptd] = p.Name
	}
	return a, nil
}

// resolve finds the caller's roles, or says why it has none.
func (a *Access) resolve(id spiffeid.ID) (Caller, error) {
	c := Caller{ID: id}
	if id.MemberOf(a.TrustDomain) {
		if identity.IsReplica(a.TrustDomain, id) {
			c.Roles = append(c.Roles, Replica)
		}
		for _, r := range a.exact[id] {
			if !slices.Contains(c.Roles, r) {
				c.Roles = append(c.Roles, r)
			}
		}
		path := id.String() + "/"
		for _, p := range a.prefixes {
			if strings.HasPrefix(path, p.prefix) && !slices.Contains(c.Roles, p.role) {
				c.Roles = append(c.Roles, p.role)
			}
		}
		if len(c.Roles) == 0 {
			return c, ReasonStatus(codes.PermissionDenied, ReasonRoleDenied, fmt.Sprintf("%s has no role on this node: an admin can give it one under roles in the node config", id))
		}
		return c, nil
	}
	name, ok := a.peers[id.TrustDomain()]
	if !ok {
		return c, ReasonStatus(codes.PermissionDenied, ReasonRoleDenied, fmt.Sprintf("trust domain %s is not a configured peer of this node", id.TrustDomain()))
	}
	c.Peer = name
	c.Roles = []Role{Peer}
	return c, nil
}

// Authorizer enforces MethodRoles on every call, unary and streaming. Every refusal is logged
// with the caller's SPIFFE ID and the reason; the message to the caller never says what exists.
type Authorizer struct {
	access   atomic.Pointer[Access]
	log      *slog.Logger
	onDenied func(caller, method, reason string)
	members  func(replica string) bool
	recheck  *identity.Recheck
}

// SetRecheck makes every call over mTLS verify, again, the SVID its connection was made with
// against the trust bundles as they are now (identity.Recheck): a peer whose bundle was
// replaced, or an SVID that expired, is refused on connections already open. Call it before
// the servers serve.
func (z *Authorizer) SetRecheck(r *identity.Recheck) { z.recheck = r }

// SetMembers tells the authorizer which replicas are in the node's Raft group now: f reports
// whether a replica id (the last part of spiffe://TD/node/ID) is a voter or non-voter. Only
// those hold the replica role; any other node SVID of the org, however validly issued, holds
// only the roles the config gives it. Without it no SVID holds the replica role. Call it before
// the servers serve.
func (z *Authorizer) SetMembers(f func(replica string) bool) { z.members = f }

// NewAuthorizer returns an authorizer over a.
func NewAuthorizer(a *Access, log *slog.Logger) *Authorizer {
	z := &Authorizer{log: log}
	z.access.Store(a)
	return z
}

// OnFederationDenied, when set, is told of every refused call to the FederationService, so
// that the node can audit denied federation requests.
func (z *Authorizer) OnFederationDenied(f func(caller, method, reason string)) { z.onDenied = f }

func (z *Authorizer) denied(caller, method string, err error) {
	if z.onDenied != nil && strings.HasPrefix(method, federationService) {
		z.onDenied(caller, method, status.Convert(err).Message())
	}
}

// Resolve returns the roles id holds on this node, by the same rules as a call over mTLS, or a
// PERMISSION_DENIED status that says why it holds none. The web interface uses it to show a
// signed-in person's role; each call it makes is still decided by MethodRoles.
func (z *Authorizer) Resolve(id spiffeid.ID) (Caller, error) {
	return z.access.Load().resolve(id)
}

// SetAccess replaces the access rules; calls from then on are decided by the new ones, also on
// connections already open.
func (z *Authorizer) SetAccess(a *Access) { z.access.Store(a) }

func (z *Authorizer) authorize(ctx context.Context, method string, local bool) (context.Context, error) {
	if local {
		return z.admit(ctx, method, Caller{Roles: []Role{Local}})
	}
	id, ok := identity.PeerID(ctx)
	if !ok {
		z.log.Warn("call refused", "method", method, "caller", "(none)", "reason", "no SPIFFE ID")
		return nil, status.Error(codes.Unauthenticated, "no SPIFFE ID: connect with mTLS and an X.509-SVID")
	}
	ctx, err := z.authorizeID(ctx, method, id, true)
	if err != nil {
		return nil, err
	}
	// After the access rules, whose refusal of a peer that was removed says more than that its
	// bundle is gone.
	if z.recheck != nil {
		if err := z.recheck.Check(ctx); err != nil {
			z.log.Warn("call refused", "method", method, "caller", id.String(), "reason", status.Convert(err).Message())
			z.denied(id.String(), method, err)
			return nil, err
		}
	}
	return ctx, nil
}

// authorizeID decides a call by id. replicas says whether a replica may forward for another
// caller, as it may over mTLS; in-process calls never forward.
func (z *Authorizer) authorizeID(ctx context.Context, method string, id spiffeid.ID, replicas bool) (context.Context, error) {
	c, err := z.access.Load().resolve(id)
	if err != nil {
		z.log.Warn("call refused", "method", method, "caller", id.String(), "reason", status.Convert(err).Message())
		z.denied(id.String(), method, err)
		return nil, err
	}
	if c.Has(Replica) && (z.members == nil || !z.members(strings.TrimPrefix(id.Path(), "/node/"))) {
		c.Roles = slices.DeleteFunc(c.Roles, func(r Role) bool { return r == Replica })
		if len(c.Roles) == 0 {
			err := ReasonStatus(codes.PermissionDenied, ReasonRoleDenied, fmt.Sprintf("%s is not a replica of this node's Raft group: only its voters and non-voters act as replicas", id))
			z.log.Warn("call refused", "method", method, "caller", id.String(), "reason", status.Convert(err).Message())
			z.denied(id.String(), method, err)
			return nil, err
		}
	}
	if who := metadata.ValueFromIncomingContext(ctx, OnBehalfOf); len(who) > 0 {
		if !replicas {
			err := status.Error(codes.PermissionDenied, "an in-process call is never forwarded")
			z.log.Warn("call refused", "method", method, "caller", id.String(), "reason", status.Convert(err).Message())
			return nil, err
		}
		if c, err = z.onBehalf(method, who, c); err != nil {
			z.log.Warn("call refused", "method", method, "caller", strings.Join(who, ","), "via", id.String(), "reason", status.Convert(err).Message())
			z.denied(id.String(), method, err)
			return nil, err
		}
	}
	return z.admit(ctx, method, c)
}

// admit applies MethodRoles to a caller whose roles are known.
func (z *Authorizer) admit(ctx context.Context, method string, c Caller) (context.Context, error) {
	if err := allowed(c, method); err != nil {
		z.log.Warn("call refused", "method", method, "caller", c.String(), "roles", c.Roles, "reason", status.Convert(err).Message())
		z.denied(c.String(), method, err)
		return nil, err
	}
	return context.WithValue(ctx, callerKey{}, c), nil
}

// onBehalf is the caller a replica forwarded a call for: the local socket of that replica, or a
// SPIFFE ID whose roles this replica resolves itself. The header is honoured only from a replica
// of the group, and only on the calls a follower forwards; policy steps and phase changes are
// never among them.
func (z *Authorizer) onBehalf(method string, whos []string, via Caller) (Caller, error) {
	switch {
	case !via.Has(Replica):
		return Caller{}, status.Errorf(codes.PermissionDenied, "%s may not forward calls: only the replicas of this node's Raft group may", via)
	case PersonalMethods[method]:
		return Caller{}, status.Errorf(codes.PermissionDenied, "%s is taken by the officer in person, on the leader: a replica cannot forward it", shortMethod(method))
	case !forwarded(method):
		return Caller{}, status.Errorf(codes.PermissionDenied, "%s is not forwarded between replicas", shortMethod(method))
	case len(whos) != 1:
		return Caller{}, status.Errorf(codes.PermissionDenied, "forwarded for %d callers: name one", len(whos))
	}
	who := whos[0]
	if who == localCaller {
		return Caller{Roles: []Role{Local}, ForwardedBy: via.ID.String()}, nil
	}
	id, err := spiffeid.FromString(who)
	if err != nil {
		return Caller{}, status.Errorf(codes.PermissionDenied, "forwarded for %q, which is not a SPIFFE ID", who)
	}
	c, err := z.access.Load().resolve(id)
	c.ForwardedBy = via.ID.String()
	return c, err
}

func allowed(c Caller, method string) error {
	if c.Has(Peer) && !strings.HasPrefix(method, federationService) && !slices.Contains(MethodRoles[method], Peer) {
		return ReasonStatus(codes.PermissionDenied, ReasonRoleDenied, fmt.Sprintf("%s is a peer: peers may call only the FederationService", c))
	}
	need, ok := MethodRoles[method]
	if !ok {
		return ReasonStatus(codes.PermissionDenied, ReasonRoleDenied, fmt.Sprintf("%s is not open to any caller", method))
	}
	for _, r := range c.Roles {
		if slices.Contains(need, r) {
			return nil
		}
	}
	names := make([]string, 0, len(need))
	for _, r := range need {
		if r != Local {
			names = append(names, string(r))
		}
	}
	if c.Has(Local) {
		// The socket is the host's administrator; a person's step is taken in person, under
		// their own SPIFFE ID, so that the audit log names them (and four eyes are two people).
		return roleDenied(fmt.Sprintf("%s may not call %s: it needs the role %s, which a person has: call the node over mutual TLS with their SVID (KNOOPPUNT_NODE=HOST:PORT, KNOOPPUNT_SVID_CERT, KNOOPPUNT_SVID_KEY, KNOOPPUNT_BUNDLE; `knooppunt init` printed them)",
			c, shortMethod(method), strings.Join(names, " or ")), names)
	}
	return roleDenied(fmt.Sprintf("%s may not call %s: it needs the role %s", c, shortMethod(method), strings.Join(names, " or ")), names)
}

func shortMethod(m string) string {
	m = strings.TrimPrefix(m, "/")
	if i := strings.LastIndex(m, "."); i >= 0 {
		return m[i+1:]
	}
	return m
}

// Tap decides a call over mTLS as the interceptors do, before any of its request is read
// (grpc.InTapHandle): grpc-go reads a unary call's whole request, up to the message limit, before
// an interceptor runs, so that calls refused only there let any caller the handshake admits (a
// peer calling outside the FederationService, a reader calling Put) make the node hold 64 MiB a
// call (review E, E1). A call it admits carries its caller; the interceptors then take it as
// decided.
func (z *Authorizer) Tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	ctx, err := z.authorize(ctx, info.FullMethodName, false)
	if err != nil {
		return nil, err
	}
	return context.WithValue(ctx, tappedKey{}, true), nil
}

// tappedKey marks a call Tap admitted.
type tappedKey struct{}

// decide is authorize, for a call Tap has not decided already.
func (z *Authorizer) decide(ctx context.Context, method string, local bool) (context.Context, error) {
	if tapped, _ := ctx.Value(tappedKey{}).(bool); tapped {
		return ctx, nil
	}
	return z.authorize(ctx, method, local)
}

// Unary returns the interceptor for unary calls. local marks the local-socket server.
func (z *Authorizer) Unary(local bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx, err := z.decide(ctx, info.FullMethod, local)
		if err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

// Stream returns the interceptor for streaming calls. local marks the local-socket server.
func (z *Authorizer) Stream(local bool) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		ctx, err := z.decide(ss.Context(), info.FullMethod, local)
		if err != nil {
			return err
		}
		return h(srv, &callerStream{ServerStream: ss, ctx: ctx})
	}
}

type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *callerStream) Context() context.Context { return s.ctx }
