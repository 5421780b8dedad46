// Package peerserver is the FederationService: what a node answers other orgs' nodes. Every
// record it sends passes through policy.Set.Decide for the calling peer, and every disclosure
// and retraction is recorded (through Raft) so the source knows who holds a copy.
//
// peerserver never executes anything a peer sends: filters are plain values.
package peerserver

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/sharing"
	"github.com/knooppunt/knooppunt/node/store"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Limits of one request.
const (
	DefaultLimit = 1000
	MaxLimit     = 10000
	// MaxIDs caps Filter.ids.
	MaxIDs = 100
	batch  = 256
	// queryBatch is how many disclosures of a Query go into one Raft entry.
	queryBatch = 1024
)

// Config wires the service.
type Config struct {
	Store   *store.Store
	DB      *db.DB
	Sharing *sharing.Sharing
	// Kinds are the node's kinds: which body fields a text query reads.
	Kinds *record.Kinds
	Name  string
	// Version is the release of the node's binary, which Describe tells a peer.
	Version string
	// Heartbeat is how often an idle subscription gets a heartbeat. Default 5s.
	Heartbeat time.Duration
	// Reevaluate is how often a subscription looks whether time alone changed what it may
	// disclose: a policy window opened or closed, or a condition reads now. Only then does it
	// re-check every record, so that records under an expired policy are retracted. Default
	// 30s. Policy and phase changes re-check at once.
	Reevaluate time.Duration
	// RequestsPerSecond bounds the calls one peer may start, with bursts of twice as many.
	// Default 50.
	RequestsPerSecond float64
	// MaxCalls bounds the calls one peer may have open at once. Default 16.
	MaxCalls int
	// DescribeTTL is how long a Describe answer is given again to the same recipient while no
	// policy step or phase change lands. Default 30s.
	DescribeTTL time.Duration
	// OnPeerCall, when set, is told the name of every peer whose call is admitted: the node's
	// subscription to that peer need not wait out a reconnect backoff.
	OnPeerCall func(peer string)
	// Bundles vouch for the SVIDs that sign peers' audit heads (Witness). Nil: Witness is
	// refused.
	Bundles x509bundle.Source
	// Recheck, when set, verifies a subscriber's SVID again at each wake of its stream, as the
	// authorizer does at each call: a stream opened before the peer's bundle changed, or with
	// an SVID that has since expired, ends.
	Recheck *identity.Recheck
	// Current, when set, is asked before what a peer gets is decided anew (Describe, Query, a
	// subscription's start and each resync, FetchFile): nil when this replica has applied all
	// that its group had committed when it was asked, so that a follower does not decide on a
	// policy, phase or peer that the leader already changed; an UNAVAILABLE status when it cannot
	// tell or catch up (no leader, cut off). A subscription's batches of changes between resyncs
	// are decided on this replica's state as it applies them, which the resync after a step
	// corrects. Nil: a single replica, always current.
	Current func(ctx context.Context) error
	// Unanswered, when set, audits a call that got nothing (federation.nothing, or
	// federation.denied), so that the node can count a flood of them rather than write each.
	// Nil: each is its own audit entry.
	Unanswered func(action, caller, subject, method, reason, filter string)
	Logger     *slog.Logger
}

// Service implements knooppunt.v1.FederationService.
type Service struct {
	pb.UnsafeFederationServiceServer
	c     Config
	quit  chan struct{}
	once  sync.Once
	gates sync.Map // trust domain → *gate
}

// gate holds one peer to its limits, so that a peer that floods the node with calls, each of
// which may walk the store, cannot take it from the others.
type gate struct {
	rate  *rate.Limiter
	calls chan struct{}
	// walk is the peer's one turn at walking the store (a Describe, a subscription's resync):
	// with 16 calls open that each walk a million records, a peer would have the node's cores;
	// one walk at a time leaves it at most one.
	walk chan struct{}
	// texts are the peer's turns at a text search (textSearches), which expands each part of a
	// word to up to thousands of words of the index: 16 at once took seconds of CPU each (review
	// fed-adversary 4).
	texts chan struct{}
	// heads bounds the audit heads the peer hands over (Witness), each of which the node keeps
	// for good: an honest peer sends one every few minutes and after policy steps, at most one a
	// second.
	heads *rate.Limiter

	mu        sync.Mutex
	described map[string]described // Describe's answers, by recipient SPIFFE ID and purpose
	holders   map[string]time.Time // the people and apps that searched, by SPIFFE ID: when last
	resynced  map[string]resynced  // the last resync of a subscription, by recipient SPIFFE ID
}

// resynced is what the last completed resync for a recipient decided with, and when. A
// subscription that starts again (a reconnect) while the key is unchanged, and while time alone
// cannot have changed a decision since, needs no walk: the change feed from its cursor brings the
// rest.
type resynced struct {
	key     grantKey
	checked time.Time
}

// described is an answer to Describe, kept for DescribeTTL while no policy step or phase change
// lands (db.Generation), so that a peer that asks again and again costs one walk per period.
type described struct {
	gen  uint64
	at   time.Time
	resp *pb.DescribeResponse
}

var _ pb.FederationServiceServer = (*Service)(nil)

// New returns the service.
func New(c Config) *Service {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.Reevaluate <= 0 {
		c.Reevaluate = 30 * time.Second
	}
	if c.RequestsPerSecond <= 0 {
		c.RequestsPerSecond = 50
	}
	if c.MaxCalls <= 0 {
		c.MaxCalls = 16
	}
	if c.DescribeTTL <= 0 {
		c.DescribeTTL = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{c: c, quit: make(chan struct{})}
}

// RegisterService registers the service on s.
func RegisterService(s grpc.ServiceRegistrar, svc *Service) {
	pb.RegisterFederationServiceServer(s, svc)
}

// Shutdown ends every subscription, so a graceful stop does not wait for them.
func (s *Service) Shutdown() { s.once.Do(func() { close(s.quit) }) }

// admit resolves the calling peer and takes one of its calls, or refuses the call: with
// PERMISSION_DENIED when the caller is not a configured peer, with RESOURCE_EXHAUSTED when the
// peer is over its rate or has too many calls open. The caller must call done when the call ends.
func (s *Service) admit(ctx context.Context) (to policy.Recipient, done func(), err error) {
	if to, err = s.recipient(ctx); err != nil {
		return to, nil, err
	}
	gt := s.gate(to)
	if !gt.rate.Allow() {
		metrics.Throttled.WithLabelValues(to.TrustDomain).Inc()
		return to, nil, status.Errorf(codes.ResourceExhausted, "peer %s is over %g calls per second to this node's FederationService: slow down and retry", to.TrustDomain, s.c.RequestsPerSecond)
	}
	select {
	case gt.calls <- struct{}{}:
		if s.c.OnPeerCall != nil {
			s.c.OnPeerCall(to.Name)
		}
		return to, func() { <-gt.calls }, nil
	default:
		metrics.Throttled.WithLabelValues(to.TrustDomain).Inc()
		return to, nil, status.Errorf(codes.ResourceExhausted, "peer %s has %d FederationService calls open on this node, the most it may: end one and retry", to.TrustDomain, s.c.MaxCalls)
	}
}

// maxKept is how many recipient IDs of one peer a gate keeps answers for. A peer's CA can issue
// SVIDs with any path, so the IDs a peer calls with are not bounded by the config.
const maxKept = 64

// keep stores v under id, first forgetting every entry when m is full: a peer that calls as ever
// new IDs loses what was kept for it, and the node's memory stays bounded.
func keep[V any](m map[string]V, id string, v V) {
	if _, ok := m[id]; !ok && len(m) >= maxKept {
		clear(m)
	}
	m[id] = v
}

// gate returns the peer's gate.
func (s *Service) gate(to policy.Recipient) *gate {
	g, ok := s.gates.Load(to.TrustDomain)
	if !ok {
		g, _ = s.gates.LoadOrStore(to.TrustDomain, &gate{
			rate:      rate.NewLimiter(rate.Limit(s.c.RequestsPerSecond), max(1, int(2*s.c.RequestsPerSecond))),
			calls:     make(chan struct{}, s.c.MaxCalls),
			walk:      make(chan struct{}, 1),
			texts:     make(chan struct{}, textSearches),
			heads:     rate.NewLimiter(1, 10),
			described: map[string]described{},
			holders:   map[string]time.Time{},
			resynced:  map[string]resynced{},
		})
	}
	return g.(*gate)
}

// Searches by a peer's people and applications, each its own holder of what it gets: every
// record a search sends one writes a disclosures row and an audit entry, and a peer's CA can
// issue any number of IDs, so that 20 searches as 20 new IDs wrote 20,000 of each in 0.6 s
// (review fed-adversary 3). At most maxHolders of its IDs search in holderWindow.
const (
	maxHolders   = 64
	holderWindow = time.Hour
)

// newHolder admits a search by to, a person or an application of the peer, unless maxHolders
// others searched within holderWindow.
func (s *Service) newHolder(to policy.Recipient, now time.Time) error {
	gt := s.gate(to)
	gt.mu.Lock()
	defer gt.mu.Unlock()
	if _, ok := gt.holders[to.ID]; !ok {
		for id, at := range gt.holders {
			if now.Sub(at) >= holderWindow {
				delete(gt.holders, id)
			}
		}
		if len(gt.holders) >= maxHolders {
			return status.Errorf(codes.ResourceExhausted, "%d people and applications of %s searched this node in the last hour, the most it takes: search again later, or as one of them", maxHolders, to.TrustDomain)
		}
	}
	gt.holders[to.ID] = now
	return nil
}

// textSearches is how many text searches of one peer run at once; the next waits its turn.
const textSearches = 2

// walk waits for the peer's turn to walk the store; the caller must call release when the walk
// ends.
func (s *Service) walk(ctx context.Context, to policy.Recipient) (release func(), err error) {
	return s.turn(ctx, s.gate(to).walk)
}

// searchText waits for one of the peer's turns at a text search; the caller must call release
// when the search ends.
func (s *Service) searchText(ctx context.Context, to policy.Recipient) (release func(), err error) {
	return s.turn(ctx, s.gate(to).texts)
}

// turn waits for a place in turns, until ctx ends or the node shuts down.
func (s *Service) turn(ctx context.Context, turns chan struct{}) (release func(), err error) {
	select {
	case turns <- struct{}{}:
		return func() { <-turns }, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-s.quit:
		return nil, status.Error(codes.Unavailable, "the node is shutting down: call again later")
	}
}

// recipient resolves the calling peer.
func (s *Service) recipient(ctx context.Context) (policy.Recipient, error) {
	c, ok := api.CallerFrom(ctx)
	if !ok || !c.Has(api.Peer) {
		return policy.Recipient{}, status.Error(codes.PermissionDenied, "only peers may call the FederationService")
	}
	to, err := s.c.Sharing.Recipient(c.ID.String())
	if err != nil {
		return policy.Recipient{}, status.Errorf(codes.PermissionDenied, "trust domain %s is not a configured peer of this node", c.ID.TrustDomain())
	}
	return to, nil
}

// stillPeer reports, as a status, whether the peer a stream began for is still a peer of this
// node as it was: removed is PERMISSION_DENIED, changed (name or groups) UNAVAILABLE, so that
// it subscribes again and is decided for as it is now.
func (s *Service) stillPeer(to policy.Recipient) error {
	now, err := s.c.Sharing.Recipient(to.ID)
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "trust domain %s is no longer a peer of this node", to.TrustDomain)
	}
	if now.Name != to.Name || !slices.Equal(now.Groups, to.Groups) {
		return status.Error(codes.Unavailable, "this node changed your name or groups: subscribe again from your last cursor")
	}
	return nil
}

// CheckPurpose checks a stated purpose: UTF-8, at most policy.MaxPurposeBytes, with no character
// that policy.Hidden names (controls, newlines among them, and invisible formatting). The audit
// log keeps a purpose as stated, and officers read it there: a newline in it wrote a forged
// entry into their audit list table (review O, O3). It may be empty: a request of a node from
// before purposes states none, and gets nothing under a policy with accept_purposes.
func CheckPurpose(field, purpose string) error {
	if !utf8.ValidString(purpose) {
		return api.Invalid(field, "not valid UTF-8")
	}
	if len(purpose) > policy.MaxPurposeBytes {
		return api.Invalid(field, "%d bytes is over the limit of %d: state the purpose in fewer words", len(purpose), policy.MaxPurposeBytes)
	}
	if hidden := record.HiddenAt(purpose, policy.Hidden); hidden != "" {
		return api.Invalid(field, "%s: state the purpose as plain text on one line", hidden)
	}
	return nil
}

// Describe returns the node's name, org and release, and what the caller may receive.
func (s *Service) Describe(ctx context.Context, req *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	to, done, err := s.admit(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := CheckPurpose("purpose", req.Purpose); err != nil {
		return nil, err
	}
	to.Purpose = req.Purpose
	// Before the kept answer too: a replica cut off from its group tells a peer nothing.
	if err := s.current(ctx); err != nil {
		return nil, err
	}
	gt := s.gate(to)
	if resp := s.describedFor(gt, to); resp != nil {
		return resp, nil
	}
	release, err := s.walk(ctx, to)
	if err != nil {
		return nil, err
	}
	defer release()
	// Another call of the peer's may have walked while this one waited.
	if resp := s.describedFor(gt, to); resp != nil {
		return resp, nil
	}
	gen := s.c.DB.Generation() // before the policies are read: a later step makes it stale
	set, err := s.grants(ctx, to, s.c.Sharing.PolicySet)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	kinds := map[string]bool{}
	for _, p := range set.Policies {
		if p.State == policy.StateApproved && p.Names(to) {
			for _, k := range p.Doc.Kinds {
				kinds[k] = true
			}
		}
	}
	resp := &pb.DescribeResponse{NodeName: s.c.Name, Org: s.c.Sharing.Org(), Version: s.c.Version}
	phases := s.c.Sharing.Phases()
	now := time.Now()
	for k := range kinds {
		var n int64
		err := eachOwn(ctx, s.c.DB, db.Filter{Kind: k}, func(r *pb.Record) (bool, error) {
			ph, err := phases.Of(ctx, r.Exercise, r.Crisis)
			if err != nil {
				return false, err
			}
			if set.Decide(r, to, ph, now).Allow {
				n++
			}
			return true, nil
		})
		if err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
		if n > 0 {
			resp.Kinds = append(resp.Kinds, &pb.KindCount{Kind: k, Count: n})
		}
	}
	sort.Slice(resp.Kinds, func(i, j int) bool { return resp.Kinds[i].Kind < resp.Kinds[j].Kind })
	gt.mu.Lock()
	keep(gt.described, describedKey(to), described{gen: gen, at: now, resp: resp})
	gt.mu.Unlock()
	return proto.Clone(resp).(*pb.DescribeResponse), nil
}

// describedFor returns a copy of the recipient's kept Describe answer, or nil when there is none
// still good.
func (s *Service) describedFor(gt *gate, to policy.Recipient) *pb.DescribeResponse {
	gt.mu.Lock()
	d, ok := gt.described[describedKey(to)]
	gt.mu.Unlock()
	if !ok || d.gen != s.c.DB.Generation() || time.Since(d.at) >= s.c.DescribeTTL {
		return nil
	}
	return proto.Clone(d.resp).(*pb.DescribeResponse)
}

// describedKey is the key of a recipient's kept Describe answer: its ID and the purpose it
// stated, which policies with accept_purposes decide on, and its org's name and groups, which
// policies name it by: a peer taken out of a group is not told for DescribeTTL more what the
// group's policies grant (review B, L4).
func describedKey(to policy.Recipient) string {
	return strings.Join(append([]string{to.ID, to.Purpose, to.Name}, to.Groups...), "\x00")
}

// grants is the policy set that decides for to: the node's, or none at all while to's org is
// leaving (peer remove), so that its subscription retracts every record it holds before the
// peer is refused, and once it is no peer (removed while its stream was between two looks,
// stillPeer). Every decision for a peer goes through it.
func (s *Service) grants(ctx context.Context, to policy.Recipient, policies func(context.Context) (*policy.Set, error)) (*policy.Set, error) {
	leaving, err := s.c.Sharing.Leaving(ctx, to.TrustDomain)
	if err != nil {
		return nil, err
	}
	if leaving {
		return &policy.Set{}, nil
	}
	if _, err := s.c.Sharing.Recipient(to.ID); err != nil {
		return &policy.Set{}, nil
	}
	return policies(ctx)
}

// current asks Config.Current, if set.
func (s *Service) current(ctx context.Context) error {
	if s.c.Current == nil {
		return nil
	}
	return s.c.Current(ctx)
}

// CheckFilter checks a peer's filter: plain values only, in bounds.
func CheckFilter(f *pb.Filter) error {
	if f == nil {
		return nil
	}
	// The counts first: the checks that follow compare each value with those before it.
	if len(f.Kinds) > 64 {
		return api.Invalid("filter.kinds", "%d kinds is over the limit of 64", len(f.Kinds))
	}
	if len(f.Ids) > MaxIDs {
		return api.Invalid("filter.ids", "%d ids is over the limit of %d", len(f.Ids), MaxIDs)
	}
	for i, k := range f.Kinds {
		switch {
		case !utf8.ValidString(k):
			return api.Invalid(fmt.Sprintf("filter.kinds[%d]", i), "not valid UTF-8: give a kind's name, such as shelter.capacity")
		case len(k) > 128:
			return api.Invalid(fmt.Sprintf("filter.kinds[%d]", i), "%d bytes is over a kind name's limit of 128", len(k))
		}
	}
	// Each kind is listed on its own: a kind named twice would send its records twice.
	if err := api.Repeated("filter.kinds", f.Kinds, "kind"); err != nil {
		return err
	}
	// A crisis or region that is not one is refused by its check, which says what to give (review
	// AF, AF9: "not a valid value" said neither).
	if f.Crisis != "" {
		// A name no record can have (Oekraïne, as people write it) would find nothing anywhere.
		if err := record.CheckCrisis("filter.crisis", f.Crisis); err != nil {
			return api.Status(slog.Default(), err)
		}
	}
	if f.Region != "" {
		// A typo would find nothing anywhere, as if no partner had records of the region.
		if err := record.CheckRegion("filter.region", f.Region); err != nil {
			return api.Status(slog.Default(), err)
		}
	}
	for i, id := range f.Ids {
		if err := record.CheckID(fmt.Sprintf("filter.ids[%d]", i), id); err != nil {
			return api.Status(slog.Default(), err)
		}
	}
	if err := api.Repeated("filter.ids", f.Ids, "id"); err != nil {
		return err
	}
	if err := record.CheckLabelSelector("filter.labels", f.Labels); err != nil {
		return api.Status(slog.Default(), err)
	}
	if err := record.CheckTime("filter.updated_since", f.UpdatedSince); err != nil {
		return api.Status(slog.Default(), err)
	}
	if f.Text != "" {
		if _, err := record.ParseText("filter.text", f.Text); err != nil {
			return api.Status(slog.Default(), err)
		}
	}
	if f.TextAny && f.Text == "" {
		return api.Invalid("filter.text_any", "set without filter.text: give the words, one of which a record must hold")
	}
	if f.Limit < 0 || f.Limit > MaxLimit {
		return api.Invalid("filter.limit", "%d: use 0 (default %d) to %d", f.Limit, DefaultLimit, MaxLimit)
	}
	return CheckMode("filter.mode", f.Mode)
}

// CheckMode checks the mode of a federated read in field: actual or one exercise. Test and draft
// records never leave a node, so a read in their mode is refused rather than answered empty.
func CheckMode(field string, m *pb.Mode) error {
	if err := record.CheckMode(field, m); err != nil {
		return api.Status(slog.Default(), err)
	}
	if st := m.GetStatus(); st == pb.Status_TEST || st == pb.Status_DRAFT {
		return api.Invalid(field+".status", "%s records never leave a node: read actual records or an exercise's", strings.ToLower(st.String()))
	}
	return nil
}

// ListFilters turns a federation filter into store filters, one per kind.
func ListFilters(f *pb.Filter) []db.Filter {
	base := db.Filter{PageSize: 1000, Mode: db.ModeFrom(f.GetMode())}
	if f != nil {
		base.Crisis, base.Region, base.Labels, base.IDs = f.Crisis, f.Region, f.Labels, f.Ids
		if f.UpdatedSince != nil {
			base.UpdatedSince = f.UpdatedSince.AsTime()
		}
	}
	if f == nil || len(f.Kinds) == 0 {
		return []db.Filter{base}
	}
	out := make([]db.Filter, len(f.Kinds))
	for i, k := range f.Kinds {
		out[i] = base
		out[i].Kind = k
	}
	return out
}

// TextFilter turns a federation filter with text into the store's full-text filter.
func TextFilter(f *pb.Filter, q *record.TextQuery) db.TextFilter {
	tf := db.TextFilter{Terms: q.Sought(), Any: q.Any, Kinds: f.Kinds, Crisis: f.Crisis, Region: f.Region, Labels: f.Labels, Mode: db.ModeFrom(f.Mode), IDs: f.Ids}
	if f.UpdatedSince != nil {
		tf.UpdatedSince = f.UpdatedSince.AsTime()
	}
	return tf
}

// eachTextMatch calls fn for every live own record the full-text index finds for f, in the
// index's order, until fn returns false. The index finds candidates only: fn decides.
func eachTextMatch(ctx context.Context, d *db.DB, f db.TextFilter, fn func(*pb.Record) (bool, error)) error {
	if _, err := d.CatchUpText(ctx, db.CatchUpBudget); err != nil {
		return err
	}
	return d.EachTextMatch(ctx, f, fn)
}

// CutTrailer, set on a Query's end, says that the source ended its text search with what it
// found (its budget for one search, or a word too broad for it left out): it holds more. A
// search names it in SearchResponse.cut.
const CutTrailer = "knooppunt-cut"

// AnyTrailer, set on a Query's end, says that the source found the records that hold any of the
// text's words (Filter.text_any). A node of an earlier release reads all of them, and sets none:
// a search names it in SearchResponse.cut.
const AnyTrailer = "knooppunt-text-any"

// rankGroup is how many of a text query's matches, newest first, a source ranks together on
// what the recipient may see of them before it sends them: the first page of a search is the
// best of the newest rankGroup matches, as the index would rank a window of its own.
const rankGroup = 256

// eachOwn calls fn for every live own record matching f, until fn returns false. While fn works
// through a full page, the next page is read on another goroutine, so that a long walk reads and
// decides on both cores; a walk that stops early cancels that read.
func eachOwn(ctx context.Context, d *db.DB, f db.Filter, fn func(*pb.Record) (bool, error)) error {
	if f.PageSize == 0 {
		f.PageSize = 1000
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type page struct {
		recs []*pb.Record
		next string
		err  error
	}
	list := func(f db.Filter) page {
		recs, next, err := d.List(ctx, f)
		return page{recs, next, err}
	}
	p := list(f)
	for {
		if p.err != nil {
			return p.err
		}
		var ahead chan page
		if p.next != "" {
			ahead = make(chan page, 1)
			f.PageToken = p.next
			go func(f db.Filter) { ahead <- list(f) }(f)
		}
		for _, r := range p.recs {
			more, err := fn(r)
			if err != nil || !more {
				return err
			}
		}
		if ahead == nil {
			return nil
		}
		p = <-ahead
	}
}

// disclosures batches what a stream sends, and records it through Raft.
type disclosures struct {
	s          *Service
	to         policy.Recipient
	via        string
	pending    *pb.RecordDisclosures
	pendingLen int
	inflight   []chan error // batches handed to Raft by flushAsync, oldest first
	// refused counts the pending batch's records per policy that refused the stated purpose
	// and no other policy granted; otherwise those another policy granted all the same.
	refused, otherwise map[string]int64
	// confirmed is the cursor a subscription started from: every retraction sent before it
	// reached the holder (RecordDisclosures.confirmed_through).
	confirmed int64
}

func (s *Service) newDisclosures(to policy.Recipient, via string) *disclosures {
	d := &disclosures{s: s, to: to, via: via}
	d.reset()
	return d
}

func (d *disclosures) reset() {
	holder := d.to.Holder()
	d.pending = &pb.RecordDisclosures{
		Recipient: d.to.TrustDomain, RecipientId: d.to.ID, Holder: holder, Via: d.via, CountHeld: true,
		RecordsPurpose: true, StatedPurpose: d.to.Purpose, PolicyPurposes: map[string]string{},
		// A peer's node keeps only what its subscription sends; a person or app that queried is
		// its own holder, and the table says what went to it.
		AnswerNotKept: d.via == "Query" && holder != d.to.ID,
	}
	d.pendingLen = 0
	d.refused, d.otherwise = nil, nil
}

// disclose adds a granted decision to the batch, with the purpose of each granting policy, and
// counts the policies that refused the stated purpose.
func (d *disclosures) disclose(set *policy.Set, dec policy.Decision) {
	r := dec.Record
	d.pending.Disclosed = append(d.pending.Disclosed, &pb.Disclosure{RecordId: r.Id, Version: r.Version, Policies: dec.Policies, Redacted: dec.Withheld, Redaction: dec.Redaction(),
		Crisis: r.Crisis, Kind: r.Kind, Classification: r.Classification})
	for _, id := range dec.Policies {
		if _, ok := d.pending.PolicyPurposes[id]; !ok {
			d.pending.PolicyPurposes[id] = set.PurposeOf(id)
		}
	}
	d.pendingLen++
	d.refuse(dec)
}

// refuse counts the policies that would have granted the decision's record but for the stated
// purpose: the batch audits them as one federation.refuse entry.
func (d *disclosures) refuse(dec policy.Decision) {
	if len(dec.Refused) == 0 {
		return
	}
	if d.refused == nil {
		d.refused, d.otherwise = map[string]int64{}, map[string]int64{}
	}
	count := d.refused
	if dec.Allow {
		// Another policy granted it: the stated purpose kept nothing back.
		count = d.otherwise
	}
	for _, id := range dec.Refused {
		count[id]++
	}
	if !dec.Allow {
		d.pendingLen++
	}
}

// command is the pending batch as a Raft command.
func (d *disclosures) command() *pb.Command {
	d.pending.At = timestamppb.Now()
	d.pending.ConfirmedThrough = d.confirmed
	ids := slices.Collect(maps.Keys(d.refused))
	for id := range d.otherwise {
		if _, ok := d.refused[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		d.pending.Refused = append(d.pending.Refused, &pb.PurposeRefusal{Policy: id, Records: d.refused[id], GrantedOtherwise: d.otherwise[id], Marked: true})
	}
	return &pb.Command{Cmd: &pb.Command_RecordDisclosures{RecordDisclosures: d.pending}}
}

// retract adds a retraction that went out at feed position seq to the batch, with the record's
// crisis, kind and classification when r, the record as it is now, is not nil.
func (d *disclosures) retract(id string, r *pb.Record, reason string, seq int64) {
	x := &pb.Disclosure{RecordId: id, Reason: reason, Seq: seq}
	if r != nil {
		x.Crisis, x.Kind, x.Classification = r.Crisis, r.Kind, r.Classification
	}
	d.pending.Retracted = append(d.pending.Retracted, x)
	d.pendingLen++
}

// flush records the batch. The records were already sent: if recording fails the stream ends,
// so that nothing goes out that the source does not know about. A peer that went away may hold
// every record sent, so the batch is recorded even when ctx, the stream's, is done.
func (d *disclosures) flush(ctx context.Context) error {
	if d.pendingLen == 0 {
		return nil
	}
	err := d.s.record(context.WithoutCancel(ctx), d.command())
	d.reset()
	if err != nil {
		return api.Status(d.s.c.Logger, err)
	}
	return nil
}

// recordPatience is how long recording what a stream sent waits for its group to have a leader
// again. The records went out before they are recorded: a stream whose leader was lost in the
// middle ended with them unrecorded, and a peer's node keeps what a subscription sent, so a
// revoke would not have retracted it. An election takes about a second.
const recordPatience = 15 * time.Second

// record commits c, a RecordDisclosures, and tries again, until recordPatience has passed, while
// the group has no leader or this replica cannot reach it. A try that the old leader committed
// after all does no harm: the versions a holder holds already count as resends (count_held).
func (s *Service) record(ctx context.Context, c *pb.Command) error {
	give := time.Now().Add(recordPatience)
	for {
		_, err := s.c.Store.Apply(ctx, c)
		if err == nil || !leaderLost(err) || time.Now().After(give) {
			return err
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return err
		case <-s.quit: // the node stops: waiting would hold it up
			return err
		}
	}
}

// leaderLost reports whether err says the group had no leader this replica could reach, or lost
// it while it committed (ABORTED, from a leader a follower forwarded to: RecordDisclosures has no
// other reason to be aborted).
func leaderLost(err error) bool {
	if errors.Is(err, store.ErrNotLeader) || errors.Is(err, store.ErrMaybeCommitted) {
		return true
	}
	c := status.Code(err)
	return c == codes.Unavailable || c == codes.Aborted
}

// maxInflight is how many batches flushAsync lets Raft commit while the stream goes on.
const maxInflight = 2

// flushAsync hands the batch to Raft and returns without waiting for the commit, so that
// deciding and sending the next records overlaps with it. With maxInflight batches already in
// flight it first waits for the oldest. wait collects them: a stream must call it before it
// ends, so that it never ends OK with a disclosure unrecorded.
func (d *disclosures) flushAsync(ctx context.Context) error {
	if d.pendingLen == 0 {
		return nil
	}
	if len(d.inflight) >= maxInflight {
		err := <-d.inflight[0]
		d.inflight = d.inflight[1:]
		if err != nil {
			return api.Status(d.s.c.Logger, err)
		}
	}
	cmd := d.command()
	d.reset()
	done := make(chan error, 1)
	go func() {
		done <- d.s.record(ctx, cmd)
	}()
	d.inflight = append(d.inflight, done)
	return nil
}

// idle reports whether Raft has committed every batch flushAsync handed it, so that a new batch
// goes out at once rather than waiting to fill: the batch still open when the stream ends, which
// the stream must wait for, stays small. A failed batch counts as not idle; wait reports it.
func (d *disclosures) idle() bool {
	for len(d.inflight) > 0 {
		select {
		case err := <-d.inflight[0]:
			if err != nil {
				d.inflight[0] <- err // for wait
				return false
			}
			d.inflight = d.inflight[1:]
		default:
			return false
		}
	}
	return true
}

// wait waits for every batch flushAsync handed to Raft, and returns the first failure.
func (d *disclosures) wait() error {
	var first error
	for _, done := range d.inflight {
		if err := <-done; err != nil && first == nil {
			first = err
		}
	}
	d.inflight = nil
	if first != nil {
		return api.Status(d.s.c.Logger, first)
	}
	return nil
}

// settle records the open batch and waits until Raft has committed every batch flushAsync handed
// it. A stream that settled has nothing unrecorded: what it sent may all be in the peer's hands.
func (d *disclosures) settle(ctx context.Context) error {
	if len(d.inflight) == 0 {
		// A small stream, such as a search's Query: its one batch is recorded here, with no
		// goroutine to hand it to and wake from.
		return d.flush(ctx)
	}
	asyncErr := d.flushAsync(ctx)
	waitErr := d.wait()
	// flush has something left only if flushAsync failed before it handed the batch over.
	for _, err := range []error{d.flush(ctx), waitErr, asyncErr} {
		if err != nil {
			return err
		}
	}
	return nil
}

// Query streams the records that match the filter and that policy lets the caller have.
func (s *Service) Query(req *pb.QueryRequest, stream grpc.ServerStreamingServer[pb.SharedRecord]) error {
	ctx := stream.Context()
	to, done, err := s.admit(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := CheckFilter(req.Filter); err != nil {
		return err
	}
	if err := CheckPurpose("purpose", req.Purpose); err != nil {
		return err
	}
	to.Purpose = req.Purpose
	if to.Holder() == to.ID {
		if err := s.newHolder(to, time.Now()); err != nil {
			return err
		}
	}
	limit := int(req.GetFilter().GetLimit())
	if limit == 0 {
		limit = DefaultLimit
	}
	if err := s.current(ctx); err != nil {
		return err
	}
	set, err := s.grants(ctx, to, s.c.Sharing.PolicySet)
	if err != nil {
		return api.Status(s.c.Logger, err)
	}
	phases := s.c.Sharing.Phases()
	now := time.Now()
	// The disclosures of a Query are committed through Raft in batches of queryBatch while the
	// stream goes on, and all of them before the stream ends: a peer that sees the stream end OK
	// knows the source recorded what it holds (the search client discards a stream that ends in
	// an error). A search's Query of a few records takes one Raft entry.
	rctx := context.WithoutCancel(ctx) // record what went out even if the peer goes away
	disc := s.newDisclosures(to, "Query")
	sent, considered := 0, 0
	text, _ := record.ParseText("filter.text", req.GetFilter().GetText()) // checked above; nil without text
	if text != nil {
		text.Any = req.GetFilter().GetTextAny()
		if text.Any {
			stream.SetTrailer(metadata.Pairs(AnyTrailer, "1"))
		}
		release, err := s.searchText(ctx, to)
		if err != nil {
			return err
		}
		defer release()
	}
	mode := db.ModeFrom(req.GetFilter().GetMode())
	// emit sends a record the peer may have.
	emit := func(out *pb.SharedRecord, d policy.Decision) (bool, error) {
		// Recorded even if Send fails: the record may have reached the peer all the same.
		disc.disclose(set, d)
		if err := stream.Send(out); err != nil {
			return false, err
		}
		sent++
		if disc.pendingLen >= queryBatch || disc.pendingLen >= batch && disc.idle() {
			if err := disc.flushAsync(rctx); err != nil {
				return false, err
			}
		}
		return sent < limit, nil
	}
	// A text query's matches, newest first, held to be ranked in groups.
	type matched struct {
		out   *pb.SharedRecord
		d     policy.Decision
		texts []string
		files []string // the file each text is from, "" for the record's own
	}
	var group []matched
	rank := func() (bool, error) {
		defer func() { group = group[:0] }()
		docs := make([][]string, len(group))
		for i, m := range group {
			docs[i] = m.texts
		}
		for _, i := range text.Rank(docs) {
			snippet, at := text.SnippetIn(group[i].texts) // of those sent only
			group[i].out.Snippet = snippet
			if at >= 0 {
				group[i].out.SnippetFile = group[i].files[at]
			}
			if more, err := emit(group[i].out, group[i].d); err != nil || !more {
				return more, err
			}
		}
		return true, nil
	}
	send := func(r *pb.Record) (bool, error) {
		if !mode.Holds(r) {
			// The store reads in the mode already; a record of another mode never goes out,
			// whatever a bug below might hand up.
			return true, nil
		}
		considered++
		ph, err := phases.Of(ctx, r.Exercise, r.Crisis)
		if err != nil {
			return false, err
		}
		d := set.Decide(r, to, ph, now)
		if !d.Allow {
			disc.refuse(d)
			return true, nil
		}
		out := &pb.SharedRecord{Record: d.Record, Policies: d.Policies, Redacted: d.Withheld}
		if text != nil {
			// The index matched the whole record; the recipient gets it only if the text it
			// may see matches, so that nothing it may not see decides what it learns. Nor the
			// order: the index would rank the whole record, so its matches come newest first,
			// and each group of rankGroup that the recipient gets is ranked on that text.
			texts, files := attach.TextsAndFiles(ctx, s.c.DB, s.c.Kinds.Get(r.Kind), d.Record.Body)
			if !text.Match(texts) {
				return true, nil
			}
			group = append(group, matched{out, d, texts, files})
			if len(group) < rankGroup {
				return true, nil
			}
			return rank()
		}
		return emit(out, d)
	}
	var streamErr error
	if text != nil {
		tf := TextFilter(req.Filter, text)
		tf.Newest = true
		streamErr = eachTextMatch(ctx, s.c.DB, tf, send)
		if db.TextCut(streamErr) {
			// The peer gets what the walk found within the node's budget for one text search,
			// ranked as any (review S, S1: one query walked for minutes), and the trailer says
			// that this node holds more (review U, U5).
			s.c.Logger.Info("a peer's text query ended with what it found", "peer", to.TrustDomain, "sent", sent, "considered", considered, "why", streamErr)
			stream.SetTrailer(metadata.Pairs(CutTrailer, "1"))
			streamErr = nil
		}
		if streamErr == nil && sent < limit {
			_, streamErr = rank()
		}
	} else {
		for _, f := range ListFilters(req.Filter) {
			if streamErr = eachOwn(ctx, s.c.DB, f, send); streamErr != nil || sent >= limit {
				break
			}
		}
	}
	// Record what went out even when the stream broke or the peer went away: the peer may hold
	// every record sent so far.
	if err := disc.settle(rctx); err != nil {
		return err
	}
	if streamErr != nil {
		return api.Status(s.c.Logger, streamErr)
	}
	switch {
	case sent == 0 && considered == 0:
		s.auditFederation(ctx, db.AuditFederationNothing, to, "Query", "no record matches", req.Filter)
	case sent == 0:
		s.auditFederation(ctx, db.AuditFederationDenied, to, "Query", fmt.Sprintf("no policy grants any of the %d matching records", considered), req.Filter)
	}
	return nil
}

// auditFederation records a federation request that got nothing, as action: denied (records
// matched, none granted) or nothing (none matched). Failure to record is logged: the peer got
// nothing either way.
func (s *Service) auditFederation(ctx context.Context, action string, to policy.Recipient, method, reason string, f *pb.Filter) {
	if s.c.Unanswered != nil {
		s.c.Unanswered(action, to.ID, to.TrustDomain, method, reason, f.String())
		return
	}
	// The filter is the peer's, of any text: encoding/json quotes it, where Go's %q would not
	// give JSON for every string.
	detail, err := json.Marshal(struct {
		Method string `json:"method"`
		Reason string `json:"reason"`
		Filter string `json:"filter"`
	}{method, reason, f.String()})
	if err != nil {
		s.c.Logger.Warn("could not audit a denied federation request", "peer", to.ID, "err", err)
		return
	}
	entry := &pb.AuditEntry{At: timestamppb.Now(), Actor: to.ID, Action: action, Subject: to.TrustDomain, Detail: string(detail)}
	if _, err := s.c.Store.Apply(ctx, &pb.Command{Cmd: &pb.Command_AppendAudit{AppendAudit: &pb.AppendAudit{Entries: []*pb.AuditEntry{entry}}}}); err != nil {
		s.c.Logger.Warn("could not audit a denied federation request", "peer", to.ID, "err", err)
	}
}

// Subscribe streams, after the cursor, an upsert for every change the caller may have and a
// retraction for every record it holds that it may no longer have; heartbeats keep idle streams
// alive and carry the cursor past changes the caller may not see.
func (s *Service) Subscribe(req *pb.SubscribeRequest, stream grpc.ServerStreamingServer[pb.FeedEvent]) error {
	ctx := stream.Context()
	to, done, err := s.admit(ctx)
	if err != nil {
		return err
	}
	defer done()
	if req.Cursor < 0 {
		return api.Invalid("cursor", "%d is negative: use 0 to start at the beginning", req.Cursor)
	}
	if err := CheckPurpose("purpose", req.Purpose); err != nil {
		return err
	}
	if err := CheckMode("mode", req.Mode); err != nil {
		return err
	}
	mode := db.ModeFrom(req.Mode)
	to.Purpose = req.Purpose
	cursor := req.Cursor
	// The headers say the subscription is taken: the caller counts it open from here, where a
	// refusal above ends the call without them.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	// A cursor past the end of the feed was given by this node before it was restored from a
	// backup (knooppunt restore), or by a replica ahead of this one, and so was one between the
	// backup's last seq and where the restore moved the feed (db.MarkRestored): the feed goes on
	// from its end, or the changes numbered up to the cursor anew would never reach the caller. The
	// stream is full (see pb.Heartbeat): it sends every record it grants, whatever the
	// disclosures say the caller holds (they are the backup's), never resumes, and ends the
	// resync with full_end, after which the caller drops what did not come.
	pastEnd := false
	if last, err := s.c.DB.LastSeq(); err != nil {
		return api.Status(s.c.Logger, err)
	} else if cursor > last || s.c.DB.BeforeRestore(cursor) {
		s.c.Logger.Warn("a peer resumes past the end of this replica's feed (a node restored from a backup, or a replica behind its leader): a full resync, then the feed from its end", "peer", to.ID, "cursor", cursor, "last_seq", last)
		cursor, pastEnd = last, true
		if err := stream.Send(&pb.FeedEvent{Seq: cursor, Event: &pb.FeedEvent_Heartbeat{Heartbeat: &pb.Heartbeat{At: timestamppb.Now(), Full: true}}}); err != nil {
			return err
		}
	}
	// held is what the caller holds: read at the start, once this stream has decided whether to
	// walk or to resume (a resync of the peer's old stream may commit disclosures until then),
	// and kept up to date after.
	held := map[string]db.Holding{}
	readHeld := func() error {
		now, err := s.c.DB.DisclosedIn(ctx, to.Holder(), mode)
		if err != nil {
			return api.Status(s.c.Logger, err)
		}
		maps.Copy(held, now)
		// A retraction sent at or after the cursor the caller resumes from may never have
		// reached it (the stream took it, then broke): count the record as possibly held, so
		// that the feed or the resync retracts it again. Retracting twice is harmless.
		pending, err := s.c.DB.PendingRetractions(ctx, to.Holder(), mode, cursor)
		if err != nil {
			return api.Status(s.c.Logger, err)
		}
		for id := range pending {
			if held[id].Version == 0 {
				held[id] = db.Holding{Version: -1}
			}
		}
		return nil
	}
	disc := s.newDisclosures(to, "Subscribe")
	// Every retraction sent before the cursor the caller resumes from has reached it.
	disc.confirmed = cursor
	// Record what went out when the stream ends in the middle of a page or a resync, however it
	// ends: the peer may hold every record sent so far.
	defer func() {
		if err := disc.settle(context.WithoutCancel(ctx)); err != nil {
			s.c.Logger.Warn("could not record what a subscription sent before it ended", "peer", to.ID, "err", err)
		}
	}()
	// sent is what resync sent on this stream of records whose change is still ahead of the
	// cursor, so that the feed does not send the same version again.
	sent := map[string]int64{}
	heartbeat := time.NewTicker(s.c.Heartbeat)
	defer heartbeat.Stop()
	// beat sends a heartbeat: it tells the caller it has all this feed holds for it now. A
	// replica removed from its group, or cut off from it, applies nothing more: no change or
	// resync would ask whether it is current, and its heartbeats would have told the caller it
	// was up to date while the group revoked what it holds (review C, F2). Asked here, once a
	// heartbeat, the stream ends instead, and the caller subscribes again, to a replica that is
	// current.
	beat := func() error {
		if err := s.current(ctx); err != nil {
			return err
		}
		hb := &pb.Heartbeat{At: timestamppb.Now()}
		if mode.Exercise != "" {
			// Whether this node takes part, so that a caller that started an exercise alone
			// learns it; said only to a caller its policies may grant the exercise's records:
			// to anyone else it is not known which exercises there are.
			set, err := s.grants(ctx, to, s.c.Sharing.PolicySet)
			if err != nil {
				return api.Status(s.c.Logger, err)
			}
			if set.CoversExercise(to, mode.Exercise, time.Now()) {
				state, err := s.c.DB.ExerciseState(ctx, mode.Exercise)
				if err != nil {
					return api.Status(s.c.Logger, err)
				}
				hb.ExerciseState = cmp.Or(state, db.ExerciseNone)
			}
		}
		return stream.Send(&pb.FeedEvent{Seq: cursor, Event: &pb.FeedEvent_Heartbeat{Heartbeat: hb}})
	}
	toldCaughtUp := false // whether a heartbeat said so since the stream began
	recheck := time.NewTicker(s.c.Reevaluate)
	defer recheck.Stop()
	// Resync at the start too: what the caller holds may predate a policy change.
	gt := s.gate(to)
	var gen uint64
	why := "start"
	var checked time.Time // the time of the last resync's decisions
	var last *grantKey    // what the last resync decided with
	for {
		changed := s.c.DB.Changed()
		// The peer may have been removed, or its name or groups changed, since the stream began
		// (a config reload, or a peer step through Raft): decisions for the peer as it was must
		// not go on. Checked at every wake, so an open stream ends at the next change or
		// heartbeat at the latest.
		if err := s.stillPeer(to); err != nil {
			return err
		}
		if s.c.Recheck != nil {
			if err := s.c.Recheck.Check(ctx); err != nil {
				return err
			}
		}
		if g := s.c.DB.Generation(); g != gen || why != "" {
			// Current before the snapshot. Asked at a start and each resync, where decisions are
			// made anew, and before each heartbeat (below), not for every batch of changes: a
			// replica cut off from its group applies no changes to send.
			if err := s.current(ctx); err != nil {
				return err
			}
			set, phaseMap, phases, err := s.c.Sharing.Snapshot(ctx)
			if err == nil {
				set, err = s.grants(ctx, to, func(context.Context) (*policy.Set, error) { return set, nil })
			}
			if err != nil {
				return api.Status(s.c.Logger, err)
			}
			key := grantKey{grantors: set.Grantors(to), purpose: to.Purpose, phases: phaseMap, restores: s.c.DB.Restores()}
			// resumed reports whether a start may rely on the peer's last completed resync.
			// A retraction that may not have arrived calls for a resync: the feed alone
			// resends only those that a change of the record caused.
			var pending map[string]int64
			if why == "start" {
				if pending, err = s.c.DB.PendingRetractions(ctx, to.Holder(), mode, cursor); err != nil {
					return api.Status(s.c.Logger, err)
				}
			}
			resumed := func() (resynced, bool) {
				gt.mu.Lock()
				prev, ok := gt.resynced[resyncKey(to, mode)]
				gt.mu.Unlock()
				return prev, ok && why == "start" && !pastEnd && len(pending) == 0 && key.equal(&prev.key) && !set.TimeDependent(to, prev.checked, time.Now())
			}
			// resume starts from that resync.
			resume := func(prev resynced) error {
				if err := readHeld(); err != nil {
					return err
				}
				metrics.ResyncsSkipped.Inc()
				gen, why, checked, last = g, "", prev.checked, &prev.key
				return nil
			}
			prev, resumable := resumed()
			switch {
			case why == "" && last != nil && key.equal(last):
				// A policy step or phase change that concerns only other peers: every decision
				// for this one is what the last resync made.
				metrics.ResyncsSkipped.Inc()
				gen = g
			case resumable:
				// A reconnect: nothing that decides for this peer changed since the last resync
				// (which is in the disclosures the caller holds), so the feed from its cursor is
				// all it lacks.
				if err := resume(prev); err != nil {
					return err
				}
			default:
				if why == "" {
					why = "change"
				}
				release, err := s.walk(ctx, to)
				if err != nil {
					return err
				}
				// A reconnect can come before the old stream's resync is recorded; that resync
				// holds the peer's walk until it is, so it counts once this one has its turn.
				if prev, ok := resumed(); ok {
					err := resume(prev)
					release()
					if err != nil {
						return err
					}
					break
				}
				if why == "start" && !pastEnd {
					if err := readHeld(); err != nil {
						release()
						return err
					}
				}
				metrics.Resyncs.WithLabelValues(why).Inc()
				gen, why, checked, last = g, "", time.Now(), &key
				err = s.resync(ctx, stream, to, mode, set, phases, held, sent, disc, cursor, checked)
				if err == nil && pastEnd {
					err = stream.Send(&pb.FeedEvent{Seq: cursor, Event: &pb.FeedEvent_Heartbeat{Heartbeat: &pb.Heartbeat{At: timestamppb.Now(), FullEnd: true}}})
					pastEnd = false
				}
				if err == nil {
					gt.mu.Lock()
					keep(gt.resynced, resyncKey(to, mode), resynced{key: key, checked: checked})
					gt.mu.Unlock()
				}
				release()
				if err != nil {
					return err
				}
			}
		}
		upTo, err := s.c.DB.LastSeq()
		if err != nil {
			return api.Status(s.c.Logger, err)
		}
		if cursor < upTo {
			if cursor, err = s.sendChanges(ctx, stream, to, mode, held, sent, disc, cursor, upTo); err != nil {
				return err
			}
			continue
		}
		if !toldCaughtUp {
			// The caller has all there is: said at once, not at the next tick, so that it
			// knows its copy is whole (or, till then, that it is still catching up).
			toldCaughtUp = true
			if err := beat(); err != nil {
				return err
			}
			heartbeat.Reset(s.c.Heartbeat)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.quit:
			return status.Error(codes.Unavailable, "the node is shutting down: subscribe again from your last cursor")
		case <-changed:
		case <-recheck.C:
			// Re-deciding every record costs a walk of the store; only time can have changed
			// anything here, and it changes a decision only at a window's edge or under `now`.
			set, err := s.grants(ctx, to, s.c.Sharing.PolicySet)
			if err != nil {
				return api.Status(s.c.Logger, err)
			}
			if set.TimeDependent(to, checked, time.Now()) {
				why = "time"
			}
		case <-heartbeat.C:
			if err := beat(); err != nil {
				return err
			}
		}
	}
}

// resyncKey is the key of a subscription's last resync: each mode is a feed of its own, with its
// own cursor and what the caller holds of it.
func resyncKey(to policy.Recipient, m db.Mode) string {
	if m == db.Actual {
		return to.ID
	}
	return to.ID + "\x00" + m.String()
}

// grantKey is what a peer's decisions depend on besides the record and the time: the approved
// policies that name it (a policy version's document never changes), the crisis phases, and the
// database itself, which a Restore may replace whole. While it stays the same, a policy step or
// phase change does not call for re-deciding every record the peer may hold.
type grantKey struct {
	grantors []string
	// purpose is the stated purpose, which policies with accept_purposes decide on: a
	// reconnect that states another one is decided afresh.
	purpose  string
	phases   map[string]string
	restores uint64
}

func (k *grantKey) equal(o *grantKey) bool {
	return slices.Equal(k.grantors, o.grantors) && k.purpose == o.purpose && maps.Equal(k.phases, o.phases) && k.restores == o.restores
}

// sendChanges sends the changes after cursor up to upTo and returns the new cursor.
func (s *Service) sendChanges(ctx context.Context, stream grpc.ServerStreamingServer[pb.FeedEvent], to policy.Recipient, mode db.Mode,
	held map[string]db.Holding, sent map[string]int64, disc *disclosures, cursor, upTo int64) (int64, error) {
	page, err := s.c.DB.Changes(ctx, cursor, upTo, batch, mode, "", "")
	if err != nil {
		return cursor, api.Status(s.c.Logger, err)
	}
	set, err := s.grants(ctx, to, s.c.Sharing.PolicySet)
	if err != nil {
		return cursor, api.Status(s.c.Logger, err)
	}
	phases := s.c.Sharing.Phases()
	now := time.Now()
	for _, c := range page {
		r := c.Record
		ph, err := phases.Of(ctx, r.Exercise, r.Crisis)
		if err != nil {
			return cursor, api.Status(s.c.Logger, err)
		}
		d := set.Decide(r, to, ph, now)
		if !d.Allow {
			disc.refuse(d)
		}
		switch {
		case d.Allow && sent[r.Id] == r.Version:
			delete(sent, r.Id) // resync sent this version on this stream already
		case d.Allow:
			delete(sent, r.Id)
			up := subscribed(d, d.Redaction(), held, r.Id)
			disc.disclose(set, d)
			if err := stream.Send(&pb.FeedEvent{Seq: c.Seq, Event: &pb.FeedEvent_Upsert{Upsert: up}}); err != nil {
				return cursor, err
			}
		case held[r.Id].Version != 0:
			reason, why := "no longer granted", heldUnder(set, held[r.Id], now)
			if r.Tombstone {
				reason, why = "deleted", ""
			}
			if err := stream.Send(&pb.FeedEvent{Seq: c.Seq, Event: &pb.FeedEvent_Retraction{Retraction: &pb.Retraction{RecordId: r.Id, Reason: reason}}}); err != nil {
				return cursor, err
			}
			delete(held, r.Id)
			disc.retract(r.Id, r, reason+why, c.Seq)
		}
		cursor = c.Seq
	}
	if len(page) < batch {
		cursor = upTo
	}
	return cursor, disc.flush(ctx)
}

// heldUnder says, for the audit of a retraction, under which policies the holder held the record
// and what became of each, so that an officer can tell which step withdrew it: ": held under
// a@1 (revoked), b@2 (in force, no longer granting it)". The holder is told only "no longer
// granted".
func heldUnder(set *policy.Set, h db.Holding, now time.Time) string {
	if len(h.Policies) == 0 {
		return ""
	}
	parts := make([]string, len(h.Policies))
	for i, id := range h.Policies {
		state := "not in force"
		if i := slices.IndexFunc(set.Policies, func(c *policy.Compiled) bool { return c.ID == id }); i >= 0 {
			c := set.Policies[i]
			switch state = c.State; {
			case state != policy.StateApproved:
			case c.Doc.ValidUntil != nil && !now.Before(*c.Doc.ValidUntil):
				state = "expired"
			default:
				state = "in force, no longer granting it"
			}
		}
		parts[i] = id + " (" + state + ")"
	}
	return ": held under " + strings.Join(parts, ", ")
}

// subscribed is the copy of a granted record that a subscription sends (red is d.Redaction()),
// and records it as held:
// even if the send fails, for the record may have reached the peer all the same. It tells the
// holder when its copy was sent under another redaction (pb.SharedRecord.redaction_changed).
func subscribed(d policy.Decision, red string, held map[string]db.Holding, id string) *pb.SharedRecord {
	h := held[id]
	held[id] = db.Holding{Version: d.Record.Version, Policies: d.Policies, Redaction: red}
	return &pb.SharedRecord{Record: d.Record, Policies: d.Policies, Redacted: d.Withheld, RedactionChanged: h.Version != 0 && h.Redaction != red}
}

// resync brings what the caller holds in line with what policy grants now, after a policy or
// phase changed (or, periodically, for policies that expire): it retracts every record the
// caller holds that is no longer granted, and sends every granted record it does not hold.
func (s *Service) resync(ctx context.Context, stream grpc.ServerStreamingServer[pb.FeedEvent], to policy.Recipient, mode db.Mode,
	set *policy.Set, phases *sharing.Phases, held map[string]db.Holding, sent map[string]int64, disc *disclosures, cursor int64, now time.Time) error {
	granted := map[string]bool{}
	var kinds []string
	for _, p := range set.Policies {
		if p.State == policy.StateApproved && p.Names(to) {
			kinds = append(kinds, p.Doc.Kinds...)
		}
	}
	slices.Sort(kinds)
	for _, kind := range slices.Compact(kinds) {
		err := eachOwn(ctx, s.c.DB, db.Filter{Kind: kind, Mode: mode}, func(r *pb.Record) (bool, error) {
			ph, err := phases.Of(ctx, r.Exercise, r.Crisis)
			if err != nil {
				return false, err
			}
			d := set.Decide(r, to, ph, now)
			if !d.Allow {
				disc.refuse(d)
				return true, nil
			}
			granted[r.Id] = true
			// A version the caller holds goes again when other policies grant it now, or the
			// same remove other fields: they decide its redaction (a redaction mended, or
			// another policy's that no longer applies), and the audit says under which policies
			// the caller holds it.
			red := d.Redaction()
			if h := held[r.Id]; h.Version == r.Version && slices.Equal(h.Policies, d.Policies) && h.Redaction == red {
				return true, nil
			}
			up := subscribed(d, red, held, r.Id)
			sent[r.Id] = r.Version
			disc.disclose(set, d)
			if err := stream.Send(&pb.FeedEvent{Seq: cursor, Event: &pb.FeedEvent_Upsert{Upsert: up}}); err != nil {
				return false, err
			}
			if disc.pendingLen >= batch {
				// Raft commits this batch while the walk decides and sends the next, as in Query.
				return true, disc.flushAsync(context.WithoutCancel(ctx))
			}
			return true, nil
		})
		if err != nil {
			return api.Status(s.c.Logger, err)
		}
	}
	ids := make([]string, 0, len(held))
	for id := range held {
		if !granted[id] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		reason, why := "no longer granted", heldUnder(set, held[id], now)
		r, err := s.c.DB.Get(ctx, id)
		if err != nil {
			r, reason, why = nil, "deleted", ""
		}
		if err := stream.Send(&pb.FeedEvent{Seq: cursor, Event: &pb.FeedEvent_Retraction{Retraction: &pb.Retraction{RecordId: id, Reason: reason}}}); err != nil {
			return err
		}
		delete(held, id)
		disc.retract(id, r, reason+why, cursor)
	}
	// Settled before the resync counts as complete, and before the feed may disclose a newer
	// version of a record whose batch is still in flight.
	return disc.settle(context.WithoutCancel(ctx))
}

// FetchFile streams a file that a record the caller may receive names, in the record as
// redacted for the caller: a redacted attachments field names no file. The decision is taken
// now, under the policies in force, and the disclosure is audited before any byte goes out. A
// file the caller may not have is NOT_FOUND, as one that does not exist, so that a denial
// tells nothing.
func (s *Service) FetchFile(req *pb.FetchFileRequest, stream grpc.ServerStreamingServer[pb.FileData]) error {
	ctx := stream.Context()
	to, done, err := s.admit(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := record.CheckID("record_id", req.RecordId); err != nil {
		return api.Status(s.c.Logger, err)
	}
	if err := record.CheckSHA256("sha256", req.Sha256); err != nil {
		return api.Status(s.c.Logger, err)
	}
	if err := CheckPurpose("purpose", req.Purpose); err != nil {
		return err
	}
	to.Purpose = req.Purpose
	if err := s.current(ctx); err != nil {
		return err
	}
	d, err := s.fileGrant(ctx, to, req.RecordId, req.Sha256)
	if err != nil {
		return api.Status(s.c.Logger, err)
	}
	if d == nil {
		s.auditFederation(ctx, db.AuditFederationDenied, to, "FetchFile", "no record granted to the caller names the file", &pb.Filter{})
		return status.Errorf(codes.NotFound, "no record this node shares with you names file %s", req.Sha256)
	}
	f, err := s.c.DB.FileInfo(ctx, req.Sha256)
	if err != nil {
		return api.Status(s.c.Logger, err)
	}
	if f.Origin != "" {
		// A partner's file that an own record names (as a release before this one let a write
		// do) is never passed on: it is the partner's to share, under its own audit.
		s.auditFederation(ctx, db.AuditFederationDenied, to, "FetchFile", "the file came from "+f.Origin+", a partner: never passed on", &pb.Filter{})
		return status.Errorf(codes.NotFound, "no record this node shares with you names file %s", req.Sha256)
	}
	detail, _ := json.Marshal(map[string]any{
		"sha256": f.SHA256, "size": f.Size, "media_type": f.MediaType, "recipient": to.TrustDomain,
		"policies": d.Policies, "stated_purpose": to.Purpose, "version": d.Record.Version,
		"crisis": d.Record.Crisis, "kind": d.Record.Kind, "classification": record.ClassificationName(d.Record.Classification),
	})
	entry := &pb.AuditEntry{At: timestamppb.Now(), Actor: to.ID, Action: db.AuditFileDisclosure, Subject: req.RecordId, Detail: string(detail)}
	if _, err := s.c.Store.Apply(ctx, &pb.Command{Cmd: &pb.Command_AppendAudit{AppendAudit: &pb.AppendAudit{Entries: []*pb.AuditEntry{entry}}}}); err != nil {
		return api.Status(s.c.Logger, err) // nothing goes out that the audit log does not hold
	}
	metrics.FilesDisclosed.WithLabelValues(to.TrustDomain).Inc()
	return attach.Send(ctx, s.c.DB, req.Sha256, stream.Send, func(err error) error { return api.Status(s.c.Logger, err) })
}

// fileGrant decides whether to may have the file sha of an own record: the decision that grants
// the record, when the record as redacted for to names the file, or nil.
func (s *Service) fileGrant(ctx context.Context, to policy.Recipient, id, sha string) (*policy.Decision, error) {
	r, err := s.c.DB.Get(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	set, err := s.grants(ctx, to, s.c.Sharing.PolicySet)
	if err != nil {
		return nil, err
	}
	ph, err := s.c.Sharing.Phases().Of(ctx, r.Exercise, r.Crisis)
	if err != nil {
		return nil, err
	}
	d := set.Decide(r, to, ph, time.Now())
	if !d.Allow {
		return nil, nil
	}
	atts, _ := record.Attachments(d.Record.Body)
	for _, a := range atts {
		if a.SHA256 == sha {
			return &d, nil
		}
	}
	return nil, nil
}
