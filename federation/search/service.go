// Package search is the SearchService: network search across the node and every peer under a
// deadline, and the merged picture of a crisis. A search says, for each peer, whether it
// answered, denied, was unreachable (and was served from cache, with the cache's age) or timed
// out; a partial answer always says it is partial.
package search

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/peerclient"
	"github.com/knooppunt/knooppunt/federation/peerserver"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/sharing"
	"github.com/knooppunt/knooppunt/node/store"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Peer states in a search answer.
const (
	Answered    = "answered"
	Denied      = "denied"
	Unreachable = "unreachable"
	TimedOut    = "timed_out"
)

// Unanswered reports whether a peer did not answer just now (unreachable, timed out, or denied:
// it refuses this node): what is shown of it is the copy it sent before.
func Unanswered(p *pb.PeerStatus) bool { return p.State != Answered }

// Behind lists the trust domains of the peers whose copy here may be behind what they hold:
// they did not answer just now, or this node is still taking in what they share.
func Behind(peers []*pb.PeerStatus) []string {
	var out []string
	for _, p := range peers {
		if Unanswered(p) || p.CatchingUpSince != nil {
			out = append(out, p.TrustDomain)
		}
	}
	return out
}

// DeniedBecause is the likely cause of a peer's refusal, which its node's own words ("not a
// configured peer of this node") leave to guess; peer show says it of a refused subscription.
const DeniedBecause = "this partner removed you, or has not accepted your answer yet; ask them to run `knooppunt peer list`"

// maxOrigins caps SearchRequest.origins.
const maxOrigins = 1000

// DefaultTimeout bounds a search unless the request says otherwise.
const DefaultTimeout = 2 * time.Second

// MaxTimeout is the longest deadline a request may set.
const MaxTimeout = time.Minute

// ProbeTimeoutMs bounds the one-record search by which a picture tells which peers answer now
// (Probe).
const ProbeTimeoutMs = 2000

// Probe is the search of one record of a crisis, in a mode, under ProbeTimeoutMs, by which a
// picture tells which peers answer now: the picture is made of the copies they sent before.
func Probe(crisis string, mode *pb.Mode) *pb.SearchRequest {
	return &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis, Limit: 1, Mode: mode}, TimeoutMs: ProbeTimeoutMs}
}

// Config wires the service.
type Config struct {
	Store   *store.Store
	DB      *db.DB
	Sharing *sharing.Sharing
	// Name is the node's name (config name), by which origins may name the node's own records
	// as well as by its org.
	Name string
	// Peers returns the configured peers; Manager connects to them. Manager is nil on a node
	// that serves no federation.
	Peers   func() []config.Peer
	Manager *peerclient.Manager
	Kinds   *record.Kinds
	// Purpose is stated to peers for a search whose request states none.
	Purpose string
	// Tracer records a span for a search and one for each peer it asks. Nil: none.
	Tracer trace.Tracer
	Logger *slog.Logger
	// PictureBytes bounds a picture's answer (fitPicture). Zero: MaxAnswerBytes.
	PictureBytes int
	// CallerRate and CallerBurst bound the searches that ask the partners (Search, and a
	// Picture's peer check) of one caller, NodeRate and NodeBurst those of all callers together
	// (limit.go). Zero: DefaultCallerRate and so on; rate.Inf: no limit (benchmarks).
	CallerRate  rate.Limit
	CallerBurst int
	NodeRate    rate.Limit
	NodeBurst   int
}

// Service implements knooppunt.v1.SearchService.
type Service struct {
	pb.UnsafeSearchServiceServer
	c      Config
	limits *limits
}

var _ pb.SearchServiceServer = (*Service)(nil)

// New returns the service.
func New(c Config) *Service {
	if c.Tracer == nil {
		c.Tracer = noop.NewTracerProvider().Tracer("")
	}
	s := &Service{c: c, limits: newLimits(c.CallerRate, c.CallerBurst, c.NodeRate, c.NodeBurst, c.Logger)}
	return s
}

// RegisterService registers the service on s.
func RegisterService(s grpc.ServiceRegistrar, svc *Service) { pb.RegisterSearchServiceServer(s, svc) }

// Search asks the node's own store and every peer in parallel, under the deadline, or only the
// sources that req.Origins names. A search that asks a peer waits its turn under the caller's and
// the node's limits, or is refused over them (limit.go).
func (s *Service) Search(ctx context.Context, req *pb.SearchRequest) (*pb.SearchResponse, error) {
	return s.search(ctx, req, true)
}

// search is Search; limited takes the search from the limits, unless its caller did (Picture).
func (s *Service) search(ctx context.Context, req *pb.SearchRequest, limited bool) (*pb.SearchResponse, error) {
	if err := peerserver.CheckFilter(req.Filter); err != nil {
		return nil, err
	}
	if err := peerserver.CheckPurpose("purpose", req.Purpose); err != nil {
		return nil, err
	}
	purpose := req.Purpose
	if purpose == "" {
		purpose = s.c.Purpose
	}
	timeout := DefaultTimeout
	if req.TimeoutMs < 0 || int64(req.TimeoutMs) > MaxTimeout.Milliseconds() {
		return nil, api.Invalid("timeout_ms", "%d: use 0 (default %d) to %d", req.TimeoutMs, DefaultTimeout.Milliseconds(), MaxTimeout.Milliseconds())
	} else if req.TimeoutMs > 0 {
		timeout = time.Duration(req.TimeoutMs) * time.Millisecond
	}
	limit := int(req.GetFilter().GetLimit())
	if limit == 0 {
		limit = peerserver.DefaultLimit
	}
	ctx, span := s.c.Tracer.Start(ctx, "knooppunt.search")
	defer span.End()
	peers, askOwn, err := s.sources(req.Origins)
	if err != nil {
		return nil, err
	}
	// Only the partners' allowance is at stake: a search of the node's own records alone is a
	// List with an audit entry. The deadline starts once the search has its turn.
	if limited && len(peers) > 0 {
		if err := s.admit(ctx, ""); err != nil {
			return nil, err
		}
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp := &pb.SearchResponse{}
	sources := len(peers)
	if askOwn {
		sources++
	}
	// Each source's share, and no less than one record of the largest a node writes; the whole
	// answer stays within MaxAnswerBytes all the same (pool).
	per := max(MaxAnswerBytes/max(sources, 1), minShare)
	pool := new(atomic.Int64)
	pool.Store(MaxAnswerBytes)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, pspan := s.c.Tracer.Start(sctx, "knooppunt.search.peer", trace.WithAttributes(
				attribute.String("knooppunt.peer", p.Name), attribute.String("knooppunt.peer.trust_domain", p.TrustDomain)))
			sh := &share{pool: pool, bytes: per, left: per}
			hits, st := s.askPeer(pctx, p, req.Filter, purpose, limit, sh)
			pspan.SetAttributes(attribute.String("knooppunt.peer.state", st.State), attribute.Int64("knooppunt.peer.count", st.Count))
			if st.State != Answered {
				pspan.SetStatus(otelcodes.Error, st.State)
			}
			pspan.End()
			mu.Lock()
			resp.Hits = append(resp.Hits, hits...)
			resp.Peers = append(resp.Peers, st)
			if sh.cut {
				resp.Cut = append(resp.Cut, p.Name)
			}
			mu.Unlock()
		}()
	}
	var own []*pb.SearchHit
	ownShare := &share{pool: pool, bytes: per, left: per}
	if askOwn {
		// A text search's work on the index is bounded by the node's budget (db.ErrTextBudget,
		// review S, S2): what it found until then is kept, and the node named among those that
		// hold more.
		own, resp.TextPending, err = s.own(ctx, req.Filter, limit, ownShare)
		if db.TextCut(err) {
			s.c.Logger.Info("a search of this node's own records ended with what it found", "hits", len(own), "why", err)
			ownShare.cut, err = true, nil
		}
	}
	wg.Wait()
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	resp.Hits = append(own, resp.Hits...)
	if ownShare.cut {
		resp.Cut = append(resp.Cut, "")
	}
	slices.Sort(resp.Cut)
	now := time.Now()
	for _, h := range resp.Hits {
		h.Validity = record.Validity(h.Record, now)
	}
	resp.Hits = bestFirst(resp.Hits, s.tier(req.Filter))
	span.SetAttributes(attribute.Int("knooppunt.search.peers", len(peers)), attribute.Int("knooppunt.search.hits", len(resp.Hits)))
	sort.Slice(resp.Peers, func(i, j int) bool { return resp.Peers[i].Peer < resp.Peers[j].Peer })
	for _, p := range resp.Peers {
		if p.State != Answered {
			resp.Partial = true
		}
	}
	// After the answer is complete, from this node alone: no partner hears of a suggestion.
	s.offerSuggestion(ctx, req.Filter, len(resp.Hits), peers, askOwn)
	s.audit(ctx, req, purpose, resp)
	return resp, nil
}

// Cut names the sources of resp that gave limit records or more, or their share of the answer's
// bytes (resp.Cut), "" for the node's own, in the order of resp.Peers after the node: each may
// hold more than it gave.
func Cut(resp *pb.SearchResponse, limit int) []string {
	n := map[string]int{}
	for _, h := range resp.Hits {
		n[h.Source]++
	}
	var out []string
	if n[""] >= limit || slices.Contains(resp.Cut, "") {
		out = append(out, "")
	}
	for _, p := range resp.Peers {
		if n[p.Peer] >= limit || slices.Contains(resp.Cut, p.Peer) {
			out = append(out, p.Peer)
		}
	}
	return out
}

// MaxAnswerBytes bounds the hits of one answer: each source asked may give its share of it (and
// one largest record at least), so that one peer's large records neither crowd out the others
// nor make an answer that this node holds, or a client takes in (node.MaxMessageBytes, 64 MiB),
// too large.
const MaxAnswerBytes = 48 << 20

// minShare is the least share of an answer a source gets however many are asked: room for one
// record of the largest body a node writes (config.MaxBodyLimit, 3 MiB), with its labels and
// snippet.
const minShare = 4 << 20

// maxSkipped is how many hits that did not fit a source may skip, looking for smaller ones,
// before its part ends: a source of thousands of large records is not read to its end.
const maxSkipped = 16

// share is one source's share of an answer, in bytes, what it may still add, and whether it had
// more; pool is what the whole answer may still take, which every source's hits count against.
type share struct {
	pool        *atomic.Int64
	bytes, left int
	skipped     int
	cut         bool
}

// take counts h against the share and the pool, and says whether it was taken, and whether the
// source should go on. A hit that does not fit is skipped, and the source is cut: its smaller
// hits after it may still fit, up to maxSkipped skipped.
func (s *share) take(h *pb.SearchHit) (taken, more bool) {
	n := proto.Size(h)
	if n <= s.left {
		if s.pool.Add(-int64(n)) >= 0 {
			s.left -= n
			return true, true
		}
		s.pool.Add(int64(n))
	}
	s.cut = true
	s.skipped++
	return false, s.skipped < maxSkipped
}

// reset gives back to the pool what the share took, and starts it again.
func (s *share) reset() {
	s.pool.Add(int64(s.bytes - s.left))
	s.left, s.skipped, s.cut = s.bytes, 0, false
}

// sources are the peers a search asks, and whether it reads the node's own records: all of
// them, or those origins names (trust domains, or a peer's or this node's name or short name,
// each once).
func (s *Service) sources(origins []string) (peers []config.Peer, own bool, err error) {
	var all []config.Peer
	if s.c.Manager != nil {
		all = s.c.Peers()
	}
	if len(origins) == 0 {
		return all, true, nil
	}
	if len(origins) > maxOrigins {
		return nil, false, api.Invalid("origins", "%d origins is over the limit of %d", len(origins), maxOrigins)
	}
	if err := api.Repeated("origins", origins, "source"); err != nil {
		return nil, false, err
	}
	org := s.c.Sharing.Org()
	for i, o := range origins {
		field := fmt.Sprintf("origins[%d]", i)
		if !utf8.ValidString(o) || len(o) > 255 {
			return nil, false, api.Invalid(field, "not a trust domain")
		}
		// The node's short name, the first label of its org, as its partners name it (ncc for
		// ncc.crisis.test), unless it is a peer's name or trust domain.
		short := o == strings.Split(org, ".")[0] && !slices.ContainsFunc(all, func(p config.Peer) bool { return p.TrustDomain == o || p.Name == o })
		if o == org || o == s.c.Name && s.c.Name != "" || short {
			if own {
				return nil, false, api.Invalid(field, "%q is this node (%s), named already: name each source once", o, org)
			}
			own = true
			continue
		}
		k := slices.IndexFunc(all, func(p config.Peer) bool { return p.TrustDomain == o || p.Name == o })
		if k < 0 {
			return nil, false, api.Invalid(field, "%q is neither this node's org (%s) nor a peer's trust domain or name: knooppunt peer list shows the peers", o, org)
		}
		// A peer named once by its trust domain and once by its name would be asked twice.
		if slices.ContainsFunc(peers, func(p config.Peer) bool { return p.TrustDomain == all[k].TrustDomain }) {
			return nil, false, api.Invalid(field, "%q is peer %s (%s), named already: name each source once", o, all[k].Name, all[k].TrustDomain)
		}
		peers = append(peers, all[k])
	}
	return peers, own, nil
}

// own is the node's own records that match f, at most limit, and, for a search with text, how
// many writes the full-text index had yet to take in.
func (s *Service) own(ctx context.Context, f *pb.Filter, limit int, sh *share) ([]*pb.SearchHit, int64, error) {
	var hits []*pb.SearchHit
	if text := s.text(f); text != nil {
		left, err := s.c.DB.CatchUpText(ctx, db.CatchUpBudget)
		if err != nil {
			return nil, 0, err
		} else if left > 0 {
			s.c.Logger.Info("full-text search while the index catches up: recent records may be missing", "queued", left)
		}
		err = s.c.DB.EachTextMatch(ctx, peerserver.TextFilter(f, text), func(r *pb.Record) (bool, error) {
			if snippet, file, ok := s.matches(ctx, text, r); ok {
				h := &pb.SearchHit{Record: r, Snippet: snippet, SnippetFile: file}
				if taken, more := sh.take(h); !taken {
					return more, nil
				}
				hits = append(hits, h)
			}
			return len(hits) < limit, nil
		})
		return hits, left, err
	}
	for _, lf := range peerserver.ListFilters(f) {
		for {
			// Read no more than the hits still wanted: a page of 1000 for a search of 100
			// cost ten times the List it is.
			lf.PageSize = min(lf.PageSize, limit-len(hits))
			recs, next, err := s.c.DB.List(ctx, lf)
			if err != nil {
				return nil, 0, err
			}
			for _, r := range recs {
				h := &pb.SearchHit{Record: r}
				if taken, more := sh.take(h); !more {
					return hits, 0, nil
				} else if !taken {
					continue
				}
				hits = append(hits, h)
				if len(hits) >= limit {
					return hits, 0, nil
				}
			}
			if next == "" {
				break
			}
			lf.PageToken = next
		}
	}
	return hits, 0, nil
}

// text is the filter's full-text query, or nil. The filter was checked.
func (s *Service) text(f *pb.Filter) *record.TextQuery {
	if f.GetText() == "" {
		return nil
	}
	q, _ := record.ParseText("filter.text", f.Text)
	q.Any = f.GetTextAny()
	return q
}

// matches decides a candidate of the full-text index on the text fields of its kind and the
// text of its files, and returns its snippet with the filename of the file it is from ("" for
// the record's own text).
func (s *Service) matches(ctx context.Context, q *record.TextQuery, r *pb.Record) (snippet, file string, ok bool) {
	texts, files := attach.TextsAndFiles(ctx, s.c.DB, s.c.Kinds.Get(r.Kind), r.Body)
	if !q.Match(texts) {
		return "", "", false
	}
	snippet, i := q.SnippetIn(texts)
	if i >= 0 {
		file = files[i]
	}
	return snippet, file, true
}

// askPeer queries one peer; when it does not answer, the cache of what it sent stands in.
func (s *Service) askPeer(ctx context.Context, p config.Peer, f *pb.Filter, purpose string, limit int, sh *share) ([]*pb.SearchHit, *pb.PeerStatus) {
	st := &pb.PeerStatus{Peer: p.Name, TrustDomain: p.TrustDomain}
	start := time.Now()
	var hits []*pb.SearchHit
	var conn *grpc.ClientConn
	ask := func() (err error) {
		conn, err = s.c.Manager.Conn(p)
		if err != nil {
			return err
		}
		stream, err := pb.NewFederationServiceClient(conn).Query(ctx, &pb.QueryRequest{Filter: f, Purpose: purpose}, grpc.WaitForReady(false))
		if err != nil {
			return err
		}
		for {
			sr, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				// A source that ended its text search with what it found holds more (CutTrailer);
				// so may one that does not say it searched for any of the words (AnyTrailer): it
				// runs an earlier release, and gave the records that hold all of them.
				tr := stream.Trailer()
				if len(tr.Get(peerserver.CutTrailer)) > 0 || f.GetTextAny() && len(tr.Get(peerserver.AnyTrailer)) == 0 {
					sh.cut = true
				}
				return nil
			}
			if err != nil {
				return err
			}
			if err := peerclient.CheckShared(p.TrustDomain, sr); err != nil {
				s.c.Logger.Warn("dropped a search hit from a peer", "peer", p.Name, "err", err)
				continue
			}
			if m := db.ModeFrom(f.GetMode()); !m.Holds(sr.Record) {
				s.c.Logger.Warn("dropped a search hit from a peer", "peer", p.Name, "err", "record "+sr.Record.Id+" is not of the search's mode, "+m.String())
				continue
			}
			if len(f.GetIds()) > 0 && !slices.Contains(f.Ids, sr.Record.Id) {
				continue // a peer that predates Filter.ids answers the rest of the filter
			}
			h := &pb.SearchHit{Record: sr.Record, Source: p.Name, Redacted: sr.Redacted, Snippet: sr.Snippet, SnippetFile: sr.SnippetFile, Policies: sr.Policies, Purpose: purpose}
			if taken, more := sh.take(h); !more {
				return nil
			} else if !taken {
				continue
			}
			hits = append(hits, h)
			if len(hits) >= limit {
				return nil
			}
		}
	}
	err := ask()
	// A replica not current with its group refuses before it sends anything: the next replica
	// of the peer's node is asked, each at most once.
	for tried := 1; api.Reason(err) == api.ReasonNotCurrent && tried < len(p.Addresses); tried++ {
		s.c.Manager.MoveOn(p.Name, conn)
		hits = nil
		sh.reset()
		err = ask()
	}
	st.LatencyMs = time.Since(start).Milliseconds()
	if err == nil {
		st.State, st.Count = Answered, int64(len(hits))
		if since := s.catchingUp(p, f.GetMode()); !since.IsZero() {
			st.CatchingUpSince = timestamppb.New(since)
		}
		return hits, st
	}
	code := status.Code(err)
	switch {
	case code == codes.PermissionDenied || code == codes.Unauthenticated:
		// A peer refuses only a node it does not have as a peer. Its records here are its last
		// copy, which no retraction of its can reach any more: shown as such, like an
		// unreachable peer's, rather than as if it had answered.
		st.State, st.Error = Denied, "it refuses this node: "+DeniedBecause+" (its node says: "+status.Convert(err).Message()+")"
	case code == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded):
		st.State, st.Error = TimedOut, reachError(status.Convert(err).Message())
	case throttled(err):
		// The peer is up and refuses this org's calls for now: said, so that nobody goes looking
		// for a network fault. The state stays one that the API names (docs/api.md).
		st.State, st.Busy, st.Error = Unreachable, true, Busy+" (its node says: "+status.Convert(err).Message()+")"
	default:
		st.State, st.Error = Unreachable, reachError(status.Convert(err).Message())
	}
	// The cache stands in for the whole answer: what the peer gave before it failed counts for
	// nothing.
	sh.reset()
	// The search's deadline has passed, or soon will: the cache's read has a bound of its own.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cacheReadWait)
	defer cancel()
	cached, age, open := s.fromCache(cctx, p, f, limit, sh)
	st.Count, st.CacheAgeMs, st.FeedOpen = int64(len(cached)), age.Milliseconds(), open
	return cached, st
}

// cacheReadWait bounds the read of a peer's copy that stands in for its answer: a text search of
// it stops sooner, at the node's budget for one (db.DefaultTextBudget).
const cacheReadWait = 5 * time.Second

// Busy begins the error of a peer that refused a search as over its limits on this org's calls
// (RESOURCE_EXHAUSTED): it answers, but not now.
const Busy = "busy, not down: the partner's node refuses this org's calls for now, over its limits; search again in a moment"

// throttled says whether err is a peer's refusal over its limits: RESOURCE_EXHAUSTED from its
// node, not grpc-go's own for a message over the size this node takes in or sends.
func throttled(err error) bool {
	st := status.Convert(err)
	return st.Code() == codes.ResourceExhausted && !strings.Contains(st.Message(), "message larger than max")
}

// dialFailure finds the address and the reason in grpc-go's message for a connection it could
// not make ("… transport: Error while dialing: dial tcp 10.0.0.4:7443: connect: connection
// refused").
var dialFailure = regexp.MustCompile(`dial tcp ([^ ]+): (?:connect: )?([^"]+)"?$`)

// reachError says why a peer could not be reached in the words a person reads in a search's
// report: "cannot connect to 10.0.0.4:7443: connection refused" rather than grpc-go's layers.
func reachError(msg string) string {
	if m := dialFailure.FindStringSubmatch(msg); m != nil {
		return "cannot connect to " + m[1] + ": " + m[2]
	}
	if m := handshakeFailure.FindStringSubmatch(msg); m != nil {
		switch {
		case strings.Contains(m[1], "deadline exceeded") || strings.Contains(m[1], "timeout"):
			return "the partner's node took the connection but did not finish the TLS handshake in time: it hangs, or is overloaded"
		case strings.Contains(m[1], "certificate"):
			return "the TLS handshake failed: " + m[1] + " (peer show NAME says what to check)"
		}
		return "the TLS handshake failed: " + m[1]
	}
	if m := dnsFailure.FindStringSubmatch(msg); m != nil {
		return "cannot find " + m[1] + ": no such host (check the peer's address)"
	}
	return msg
}

// handshakeFailure and dnsFailure find, in grpc-go's message, a TLS handshake that did not
// finish and a host name that does not resolve.
var (
	handshakeFailure = regexp.MustCompile(`authentication handshake failed: ([^"]+)"?$`)
	dnsFailure       = regexp.MustCompile(`dial tcp: lookup ([^ ]+) on [^:]+(?::\d+)?: no such host"?$`)
)

// cachedHit is a record from the cache of p, with the policies it came under, the purpose of
// the subscription that brought it, and when.
func (s *Service) cachedHit(p config.Peer, r db.Foreign, snippet, file string) *pb.SearchHit {
	return &pb.SearchHit{Record: r.Record, Source: p.Name, FromCache: true, Redacted: r.Redacted, Snippet: snippet, SnippetFile: file,
		Policies: r.Policies, Purpose: s.c.Purpose, ReceivedAt: timestamppb.New(r.ReceivedAt)}
}

// fromCache is what this node holds of a peer's records that the filter selects, in place of its
// answer, with how old that copy is and whether the peer's feed is open (see cacheAge).
func (s *Service) fromCache(ctx context.Context, p config.Peer, f *pb.Filter, limit int, sh *share) ([]*pb.SearchHit, time.Duration, bool) {
	ff := db.ForeignFilter{Origin: p.TrustDomain, Limit: limit, Mode: db.ModeFrom(f.GetMode())}
	if f != nil {
		ff.Crisis, ff.Region, ff.Kinds, ff.Labels, ff.IDs = f.Crisis, f.Region, f.Kinds, f.Labels, f.Ids
		if f.UpdatedSince != nil {
			ff.UpdatedSince = f.UpdatedSince.AsTime()
		}
	}
	var hits []*pb.SearchHit
	var err error
	if text := s.text(f); text != nil {
		// What the peer sent is already what this node may see of it.
		if _, err = s.c.DB.CatchUpText(ctx, db.CatchUpBudget); err == nil {
			err = s.c.DB.EachForeignTextMatch(ctx, p.TrustDomain, peerserver.TextFilter(f, text), func(r db.Foreign) (bool, error) {
				if snippet, file, ok := s.matches(ctx, text, r.Record); ok {
					h := s.cachedHit(p, r, snippet, file)
					if taken, more := sh.take(h); !taken {
						return more, nil
					}
					hits = append(hits, h)
				}
				return len(hits) < limit, nil
			})
		}
	} else {
		var recs []db.Foreign
		recs, err = s.c.DB.ForeignList(ctx, ff)
		for _, r := range recs {
			h := s.cachedHit(p, r, "", "")
			if taken, more := sh.take(h); !more {
				break
			} else if !taken {
				continue
			}
			hits = append(hits, h)
		}
	}
	if db.TextCut(err) || errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		// What it found until the node's budget for one text search, or the read's bound: the
		// copy holds more (review U, U9).
		sh.cut, err = true, nil
	}
	if err != nil {
		s.c.Logger.Warn("cache read failed", "peer", p.Name, "err", err)
		return nil, 0, false
	}
	age, open := s.cacheAge(ctx, p, f.GetMode())
	return hits, age, open
}

// catchingUp is when this replica's subscription to a peer began to bring the copy of its
// records up to date, while it has not reached the end of the peer's feed for longer than two
// heartbeats; zero when it has, for an exercise, or on a replica that does not subscribe.
func (s *Service) catchingUp(p config.Peer, m *pb.Mode) time.Time {
	if s.c.Manager == nil || db.ModeFrom(m) != db.Actual {
		return time.Time{}
	}
	st, ok := s.c.Manager.Subscription(p.Name)
	if !ok {
		return time.Time{}
	}
	return st.CatchingUp(s.c.Manager.CatchUpGrace(), time.Now())
}

// cacheAge is how old the cache of a peer is: how long since it was last known to be complete.
// On the replica that subscribes (the leader), an open subscription keeps it current up to what
// it last heard from the peer (a change or a heartbeat): a peer that hangs keeps its feed open
// until the idle timeout, and its copy grows old the while. One whose feed ended left it
// complete when it last heard from the peer (not when the feed ended: a peer that hung was
// silent long before its idle timeout ended the feed). Elsewhere, for an exercise's cache, and on a leader whose subscription has not
// been open since it began to follow the peer (a restart, a new leader: when the peer went down
// is not known here), it is as old as the peer's last delivery, which is older when the peer had
// nothing to send: never younger than it is. open reports the open subscription; an age of 0
// without it is a peer that never delivered.
func (s *Service) cacheAge(ctx context.Context, p config.Peer, m *pb.Mode) (age time.Duration, open bool) {
	if s.c.Manager != nil && db.ModeFrom(m) == db.Actual {
		if st, ok := s.c.Manager.Subscription(p.Name); ok {
			switch {
			case st.Open:
				return time.Since(cmp.Or(st.Heard, st.Since)), true
			case st.Err != "" && st.Opened && !st.Heard.IsZero() && !st.CaughtUpAt.IsZero():
				// The stream that ended had caught up: its copy was complete up to what was
				// last heard on it. One still catching up was not.
				return time.Since(st.Heard), false
			case st.Err != "" && st.Opened && !st.Since.IsZero():
				return time.Since(st.Since), false
			}
		}
	}
	_, at, _ := s.c.DB.ModeCursor(ctx, p.Name, m.GetExercise())
	if at.IsZero() {
		return 0, false
	}
	return time.Since(at), false
}

// audit records who searched for what and what each peer answered. The entry enters the Raft
// log before the answer goes out, and is committed (an fsync) while the answer travels: the
// search does not wait for it. A failure to record is logged, as it was when the search waited;
// the store's Settle waits for the entries of the searches answered so far.
func (s *Service) audit(ctx context.Context, req *pb.SearchRequest, purpose string, resp *pb.SearchResponse) {
	caller, _ := api.CallerFrom(ctx)
	peers := map[string]string{}
	for _, p := range resp.Peers {
		peers[p.Peer] = p.State
	}
	d := map[string]any{"filter": req.GetFilter().String(), "hits": len(resp.Hits), "peers": peers, "partial": resp.Partial, "stated_purpose": purpose}
	if len(req.Origins) > 0 {
		d["origins"] = req.Origins
	}
	detail, _ := json.Marshal(d)
	entry := &pb.AuditEntry{At: timestamppb.Now(), Actor: caller.String(), Action: db.AuditSearch, Subject: req.GetFilter().GetCrisis(), Detail: string(detail)}
	done := s.c.Store.Background()
	wait := s.c.Store.ApplyAsync(context.WithoutCancel(ctx), &pb.Command{Cmd: &pb.Command_AppendAudit{AppendAudit: &pb.AppendAudit{Entries: []*pb.AuditEntry{entry}}}})
	go func() {
		defer done()
		if _, err := wait(); err != nil {
			s.c.Logger.Warn("could not audit a search", "err", err)
		}
	}()
}

// foreignPage is how many cached records Picture reads at a time.
const foreignPage = 10000

// Picture merges the node's own records and the cached records of peers for one crisis.
func (s *Service) Picture(ctx context.Context, req *pb.PictureRequest) (*pb.PictureResponse, error) {
	if req.Crisis == "" {
		return nil, api.Invalid("crisis", "missing: name the crisis, such as oekraine")
	}
	// A name no record can have (Oekraïne, NOPE!) would show a picture of nothing, as if the
	// crisis had no records yet.
	if err := record.CheckCrisis("crisis", req.Crisis); err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	// Each kind's own limit (record.Kind.StaleAfter), unless the request sets one for all.
	limits := func(kind string) time.Duration { return s.c.Kinds.Get(kind).StaleLimit() }
	if req.StaleAfterS < 0 {
		return nil, api.Invalid("stale_after_s", "%d is negative", req.StaleAfterS)
	} else if req.StaleAfterS > 0 {
		limits = StaleAfter(time.Duration(req.StaleAfterS) * time.Second)
	}
	if err := record.CheckMode("mode", req.Mode); err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	mode := db.ModeFrom(req.Mode)
	// Only a peer's records: the copies of an org that is no peer any more stay in the cache, as
	// the peer left them, but no retraction of its can reach them: the picture, as search, no
	// longer shows them as a live source.
	peers, _, _ := s.sources(nil)
	// The peer check is a search that asks the partners, limited as one; refused before the
	// records are read, so that a client in a loop learns to slow down rather than get a picture
	// that only seems partial, and is not refused again when the probe starts.
	if !req.SkipPeerCheck && len(peers) > 0 {
		if err := s.admit(ctx, "; or read the picture with skip_peer_check, which does not ask the partners"); err != nil {
			return nil, err
		}
	}
	// Which peers answer now, asked while the records are read.
	type answer struct {
		resp *pb.SearchResponse
		err  error
	}
	probed := make(chan answer, 1)
	if !req.SkipPeerCheck {
		go func() {
			resp, err := s.search(ctx, Probe(req.Crisis, req.Mode), false)
			probed <- answer{resp, err}
		}()
	}
	// Every cached record of the crisis, a page at a time: a picture that left some out would
	// show a stale entry, or none, and sums that are short, and would not say so.
	peer := make(map[string]bool, len(peers))
	// Which copies are catching up as the read begins: one that catches up while it reads may
	// be read without its last changes, and the probe, later, would call it whole.
	behind := map[string]time.Time{}
	for _, p := range peers {
		peer[p.TrustDomain] = true
		if since := s.catchingUp(p, req.Mode); !since.IsZero() {
			behind[p.TrustDomain] = since
		}
	}
	var items []Item
	// The crisis's records; and the alerts of every crisis (crisis all: a rule without a crisis,
	// a CAP alert imported without one), which are in force whatever the crisis.
	type read struct{ crisis, kind string }
	reads := []read{{req.Crisis, ""}}
	if req.Crisis != db.AllCrises {
		reads = append(reads, read{db.AllCrises, record.AlertKind})
	}
	for _, rd := range reads {
		f := db.Filter{Crisis: rd.crisis, Kind: rd.kind, PageSize: 1000, Mode: mode}
		var kinds []string
		if rd.kind != "" {
			kinds = []string{rd.kind}
		}
		for {
			recs, next, err := s.c.DB.List(ctx, f)
			if err != nil {
				return nil, api.Status(s.c.Logger, err)
			}
			for _, r := range recs {
				items = append(items, Item{Record: r, Source: s.c.Sharing.Org()})
			}
			if next == "" {
				break
			}
			f.PageToken = next
		}
		ff := db.ForeignFilter{Crisis: rd.crisis, Kinds: kinds, Limit: foreignPage, Mode: mode}
		for {
			foreign, err := s.c.DB.ForeignList(ctx, ff)
			if err != nil {
				return nil, api.Status(s.c.Logger, err)
			}
			for _, fr := range foreign {
				if peer[fr.Record.Origin] {
					items = append(items, Item{Record: fr.Record, Source: fr.Record.Origin, ReceivedAt: fr.ReceivedAt})
				}
			}
			if len(foreign) < ff.Limit {
				break
			}
			last := foreign[len(foreign)-1].Record
			ff.AfterOrigin, ff.AfterID = last.Origin, last.Id
		}
	}
	phase, err := s.c.Sharing.Phases().Of(ctx, mode.Exercise, req.Crisis)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	aggregable := map[string][]string{}
	for _, k := range s.c.Kinds.Names() {
		aggregable[k] = s.c.Kinds.Get(k).Aggregate
	}
	resp := Merge(items, aggregable, time.Now(), limits)
	resp.Crisis, resp.Phase = req.Crisis, phase
	// The sources of records of the crisis itself: the alerts of every crisis are in each
	// crisis's picture, a misspelt one's too, which then seemed to be named (review J, F1).
	resp.Sources = sourcesOf(items, req.Crisis)
	removals, err := s.c.DB.Removals(ctx, req.Crisis, mode)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	for _, rm := range removals {
		src := cmp.Or(rm.Origin, s.c.Sharing.Org())
		if rm.Origin == "" || peer[rm.Origin] {
			resp.Removals = append(resp.Removals, &pb.PictureRemoval{Source: src, Kind: rm.Kind, At: timestamppb.New(rm.At)})
		}
	}
	resp.NoLeader = s.c.Store != nil && s.c.Store.Leader() == ""
	if err := fitPicture(resp, cmp.Or(s.c.PictureBytes, MaxAnswerBytes)); err != nil {
		return nil, err
	}
	if !req.SkipPeerCheck {
		now := <-probed
		if now.err != nil {
			// Not known to be complete: said, and the picture is shown all the same.
			s.c.Logger.Warn("a picture could not ask the peers whether they answer now", "crisis", req.Crisis, "err", now.err)
			resp.Partial = true
		} else {
			resp.Partial, resp.Peers = now.resp.Partial, now.resp.Peers
		}
		resp.PeersAsked = true
		// A peer's count is its entries in the picture, not the one record the search asked for.
		entries := map[string]int64{}
		for _, e := range resp.Entries {
			entries[e.Source]++
		}
		for _, p := range resp.Peers {
			p.Count = entries[p.TrustDomain]
			if since, ok := behind[p.TrustDomain]; ok && p.State == Answered && p.CatchingUpSince == nil {
				p.CatchingUpSince = timestamppb.New(since)
			}
		}
	}
	return resp, nil
}

// stale says whether an entry of age is stale under limit: never under a negative one.
func stale(age, limit time.Duration) bool { return limit >= 0 && age > limit }

// Item is one record in a picture, with the org it came from.
type Item struct {
	Record *pb.Record
	Source string
	// ReceivedAt is when this node took in a partner's record; zero for its own.
	ReceivedAt time.Time
}

// at is when the item counts as updated: its updated_at, but a partner's record no later than
// this node received it. The partner writes updated_at by its own clock, and one dated ahead
// (a clock that runs fast, or a forged date) would otherwise take its slot from every record
// after it and never grow stale.
func (it Item) at() time.Time {
	t := it.Record.GetUpdatedAt().AsTime()
	if !it.ReceivedAt.IsZero() && it.ReceivedAt.Before(t) {
		return it.ReceivedAt
	}
	return t
}

// StaleAfter is a stale limit of d for every kind, as Merge takes it.
func StaleAfter(d time.Duration) func(kind string) time.Duration {
	return func(string) time.Duration { return d }
}

// Merge builds a picture. docs/api.md defines each part; in short: records fall into slots by
// kind, region and key (the body's municipality, folded by record.SlotKey, or the record id of
// its source: see slotOf). A slot's entry is the
// latest record of all its sources (by updated_at, then version; remaining ties go to the
// source, then the id, that sorts first). The entry is stale when it is more than
// staleAfter(its kind) older than now (never when that is negative: record.NeverStale), and its
// conflict lists every other source whose own latest record in the slot has a body that is a
// different JSON value, and disagreeing those records, in that order. For the aggregable fields of each kind, the entries' numbers are summed
// per region and for the whole country (NL), where a record of region NL counts once; each sum
// says how many entries it added (records) and how many entries of its kind it could have
// (entries). The result does not depend on the order of items.
func Merge(items []Item, aggregable map[string][]string, now time.Time, staleAfter func(kind string) time.Duration) *pb.PictureResponse {
	bySource := map[slot]map[string]Item{}
	leftOut := map[slot][]string{} // each source's records that are not its latest in the slot
	sources := map[string]bool{}
	for _, it := range items {
		k := slotOf(it)
		if bySource[k] == nil {
			bySource[k] = map[string]Item{}
		}
		cur, ok := bySource[k][it.Source]
		switch {
		case !ok:
			bySource[k][it.Source] = it
		case later(it, cur):
			bySource[k][it.Source] = it
			leftOut[k] = append(leftOut[k], cur.Source+"/"+cur.Record.GetId())
		default:
			leftOut[k] = append(leftOut[k], it.Source+"/"+it.Record.GetId())
		}
		sources[it.Source] = true
	}
	resp := &pb.PictureResponse{}
	type sum struct {
		total float64
		n     int64
	}
	sums := map[[3]string]*sum{}
	// entries counts the entries of each kind per region and for NL, as the sums count them.
	entries := map[[2]string]int64{}
	slots := make([]slot, 0, len(bySource))
	for k := range bySource {
		slots = append(slots, k)
	}
	sort.Slice(slots, func(i, j int) bool {
		a, b := slots[i], slots[j]
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		if a.region != b.region {
			return a.region < b.region
		}
		if a.key != b.key {
			return a.key < b.key
		}
		return a.origin < b.origin
	})
	for _, k := range slots {
		var latest Item
		for _, it := range bySource[k] {
			if latest.Record == nil || later(it, latest) {
				latest = it
			}
		}
		age := now.Sub(latest.at())
		// The body is decoded once, for its validity and for the sums; numbers as written, so that
		// one beyond float64 (a peer's records are not checked against their kind) leaves out
		// that field, not the body.
		var body map[string]any
		dec := json.NewDecoder(bytes.NewReader(latest.Record.Body))
		dec.UseNumber()
		bodyErr := dec.Decode(&body)
		shown, _ := keyOf(latest.Record)
		e := &pb.PictureEntry{Kind: k.kind, Region: k.region, Key: shown, Record: latest.Record, Source: latest.Source,
			AgeS: int64(age.Seconds()), Stale: stale(age, staleAfter(k.kind)), Validity: record.ValidityOfBody(body, latest.Record, now)}
		var fields []string
		for src, it := range bySource[k] {
			if src == latest.Source {
				continue
			}
			differ, figures, same := bodyDiff(latest.Record.Body, it.Record.Body, aggregable[k.kind])
			if same {
				continue
			}
			e.Conflict = append(e.Conflict, src)
			fields = append(fields, differ...)
			e.FiguresDisagree = e.FiguresDisagree || figures
		}
		if len(fields) > 0 {
			slices.Sort(fields)
			e.ConflictFields = slices.Compact(fields)
		}
		sort.Strings(e.Conflict)
		for _, src := range e.Conflict {
			e.Disagreeing = append(e.Disagreeing, bySource[k][src].Record)
		}
		if lo := leftOut[k]; len(lo) > 0 {
			e.LeftOut = slices.Sorted(slices.Values(lo))
		}
		if !latest.ReceivedAt.IsZero() {
			e.ReceivedAt = timestamppb.New(latest.ReceivedAt)
		}
		resp.Entries = append(resp.Entries, e)
		regions := record.SumRegions(k.region)
		for _, region := range regions {
			entries[[2]string{k.kind, region}]++
		}
		if bodyErr != nil {
			continue
		}
		for _, field := range aggregable[k.kind] {
			v, ok := record.AggregateValue(body, field)
			if !ok {
				continue
			}
			for _, region := range regions {
				key := [3]string{k.kind, field, region}
				if sums[key] == nil {
					sums[key] = &sum{}
				}
				sums[key].total += v
				sums[key].n++
			}
		}
	}
	for key, sm := range sums {
		if key[1] == "" {
			continue
		}
		resp.Aggregates = append(resp.Aggregates, &pb.Aggregate{Kind: key[0], Field: key[1], Region: key[2], Sum: sm.total, Records: sm.n,
			Entries: entries[[2]string{key[0], key[2]}]})
	}
	sort.Slice(resp.Aggregates, func(i, j int) bool {
		a, b := resp.Aggregates[i], resp.Aggregates[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		return regionOrder(a.Region) < regionOrder(b.Region)
	})
	for s := range sources {
		resp.Sources = append(resp.Sources, s)
	}
	sort.Strings(resp.Sources)
	return resp
}

// sourcesOf are the sources of the items whose record names crisis, sorted: also a source whose
// records another's newer ones outrank in their slots.
func sourcesOf(items []Item, crisis string) []string {
	var out []string
	for _, it := range items {
		if it.Record.GetCrisis() == crisis && !slices.Contains(out, it.Source) {
			out = append(out, it.Source)
		}
	}
	slices.Sort(out)
	return out
}

// regionOrder sorts regions with the national total last.
func regionOrder(r string) string {
	if r == "NL" {
		return "~"
	}
	return r
}

// keyOf is the key a record is shown under: the body's municipality with its white space
// trimmed and runs of it made one space, as its source wrote it; else the record id (byID).
func keyOf(r *pb.Record) (key string, byID bool) {
	var body struct {
		Municipality string `json:"municipality"`
	}
	if json.Unmarshal(r.Body, &body) == nil {
		if m := strings.Join(strings.Fields(body.Municipality), " "); m != "" {
			return m, false
		}
	}
	return r.Id, true
}

// slot is where a record falls in a picture: its kind, region and key, and the source of a record
// keyed by its id ("" for one keyed by its municipality).
type slot struct{ kind, region, key, origin string }

// slotOf is the slot of an item. A municipality is one slot whoever reports it, under its
// record.SlotKey (a rule's sum, node/warn, folds by it too): sources that report it otherwise
// disagree. An id is one only within its origin, so a record keyed by its id is in a slot of its
// source's: two organisations' records of one id (each its own assessment-oekraine) are two
// entries, neither disagreeing with the other.
func slotOf(it Item) slot {
	key, byID := keyOf(it.Record)
	if byID {
		return slot{it.Record.Kind, it.Record.Region, key, it.Source}
	}
	return slot{it.Record.Kind, it.Record.Region, record.SlotKey(key), ""}
}

// later says whether a is to be shown rather than b: it was updated later (Item.at); at the same
// time (records that came in one batch, dated ahead), the one its source dated later; then the
// higher version. The remaining ties go to the source, then the id, that sorts first, so that a
// picture never depends on the order in which records were read, nor on map order.
func later(a, b Item) bool {
	ta, tb := a.at(), b.at()
	ua, ub := a.Record.GetUpdatedAt().AsTime(), b.Record.GetUpdatedAt().AsTime()
	switch {
	case !ta.Equal(tb):
		return ta.After(tb)
	case !ua.Equal(ub):
		return ua.After(ub)
	case a.Record.GetVersion() != b.Record.GetVersion():
		return a.Record.GetVersion() > b.Record.GetVersion()
	case a.Source != b.Source:
		return a.Source < b.Source
	}
	return a.Record.GetId() < b.Record.GetId()
}

// bodyDiff compares two bodies as JSON values: the order of an object's members, white space
// and how a number is spelt (1, 1.0, 1e0) do not count; a different type does (the string "1" is
// not the number 1). same says they are the same value; otherwise fields are the top-level
// members in which they differ (a member one lacks included), and figures says that one of
// aggregate is in both with different values, or, with no aggregate (a kind that sums nothing),
// that they differ at all. A body that is not a JSON object is the same as no other, and differs
// in its figures.
func bodyDiff(a, b []byte, aggregate []string) (fields []string, figures, same bool) {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return nil, true, false
	}
	if reflect.DeepEqual(x, y) {
		return nil, false, true
	}
	xo, ok1 := x.(map[string]any)
	yo, ok2 := y.(map[string]any)
	if !ok1 || !ok2 {
		return nil, true, false
	}
	for k, xv := range xo {
		if yv, ok := yo[k]; !ok || !reflect.DeepEqual(xv, yv) {
			fields = append(fields, k)
			figures = figures || ok && slices.Contains(aggregate, k)
		}
	}
	for k := range yo {
		if _, ok := xo[k]; !ok {
			fields = append(fields, k)
		}
	}
	return fields, figures || len(aggregate) == 0, false
}

// tier orders the hits of a search with text, lower first: by how many of its words a hit's text
// lacks (with text_any, a record that holds two of three words before one that holds one, which
// may hold it only inside another word: recht in Utrecht, review R, R1), then whether its title
// holds them: the first text field its kind declares (a Q&A's question, a sitrep's title). Nil
// without text.
func (s *Service) tier(f *pb.Filter) func(*pb.SearchHit) int {
	q := s.text(f)
	if q == nil {
		return nil
	}
	sought := q.Sought()
	return func(h *pb.SearchHit) int {
		k := s.c.Kinds.Get(h.Record.GetKind())
		lacks := 0
		if q.Any {
			text := record.Normalize(strings.Join(record.Texts(k, h.Record.GetBody()), "\n"))
			for _, t := range sought {
				if !strings.Contains(text, t) {
					lacks++
				}
			}
		}
		titled := false
		if k != nil && len(k.Text) > 0 {
			title := gjson.GetBytes(h.Record.GetBody(), gjson.Escape(k.Text[0]))
			titled = title.Type == gjson.String && q.Match([]string{title.Str})
		}
		if titled {
			return 2 * lacks
		}
		return 2*lacks + 1
	}
}

// bestFirst orders the hits across their sources: each source ranks its own best first (bm25
// over its own records, a peer over what it sends; without words, in its own order), and those
// ranks are not comparable between sources, so the first of every source come first, then the
// second, and so on. Sources go in a fixed order, own first and then by name, so that the same
// search lists the same way each time (the order the sources answered in is the network's).
// Documents in force come before superseded, expired and not yet valid ones, which would
// otherwise rank first as often as not: an old answer says much the same words as the one that
// replaced it. With tier (a search with text), the documents in force go by tier, lower first,
// each tier the first of every source first: those that hold more of the words, and those whose
// title holds them, first (review P, P6): a title that says them is what the record is about,
// where a source's best may hold them in a note or as part of a longer word.
func bestFirst(hits []*pb.SearchHit, tier func(*pb.SearchHit) int) []*pb.SearchHit {
	byTier := map[int][]*pb.SearchHit{}
	var others []*pb.SearchHit
	for _, h := range hits {
		switch {
		case h.Validity != "":
			others = append(others, h)
		case tier != nil:
			t := tier(h)
			byTier[t] = append(byTier[t], h)
		default:
			byTier[0] = append(byTier[0], h)
		}
	}
	out := make([]*pb.SearchHit, 0, len(hits))
	for _, t := range slices.Sorted(maps.Keys(byTier)) {
		out = append(out, interleave(byTier[t])...)
	}
	return append(out, interleave(others)...)
}

// interleave takes the first hit of every source, then the second, and so on: the node's own
// ("") first, then the peers by name.
func interleave(hits []*pb.SearchHit) []*pb.SearchHit {
	bySource := map[string][]*pb.SearchHit{}
	for _, h := range hits {
		bySource[h.Source] = append(bySource[h.Source], h)
	}
	order := slices.Sorted(maps.Keys(bySource)) // "" sorts first
	out := make([]*pb.SearchHit, 0, len(hits))
	for rank := 0; len(out) < len(hits); rank++ {
		for _, src := range order {
			if rank < len(bySource[src]) {
				out = append(out, bySource[src][rank])
			}
		}
	}
	return out
}
