package search

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/knooppunt/knooppunt/node/api"
)

// A search that asks the partners (Search, and the peer check of Picture) costs every partner's
// node a call that it counts against this org as a whole (peerserver: 50 a second, 16 open, by
// default), and costs this node an audit entry through Raft. Without a limit here, one reader's
// loop, or an integration stuck retrying, spent the whole org's allowance at every partner:
// everyone else's searches came back partial, the partners shown as if down (review E, E4). So
// such searches are limited per caller (its SPIFFE ID; the local socket is one caller) and for
// the node as a whole, both well under what a partner allows. A search just over a limit waits
// its turn, up to MaxLimitWait, so that a loop is paced rather than failed; one that would wait
// longer is refused with RESOURCE_EXHAUSTED, saying when to retry.
const (
	// DefaultCallerRate and DefaultCallerBurst bound one caller: a person who clicks through
	// results, or a script that searches now and then, never meets them; a loop does.
	DefaultCallerRate  = rate.Limit(10)
	DefaultCallerBurst = 20
	// DefaultNodeRate and DefaultNodeBurst bound all callers together: three fifths of a
	// partner's default 50 a second (with its burst of 100), which leaves room for the node's own
	// subscriptions, Describe and file calls, and for replicas that search beside this one.
	DefaultNodeRate  = rate.Limit(30)
	DefaultNodeBurst = 60
	// MaxLimitWait is the longest a search waits for its turn under the limits.
	MaxLimitWait = time.Second
)

// quietRate: a caller that keeps within it, with bursts of twice its own, is quiet. Busier
// callers share two thirds of the node's limit between them (limits.busy), so that a few callers
// in loops, each within its own limit, leave the rest to the quiet ones: the people on the web
// interface's pages, which holds each person to bursts of 20 pages that ask the partners and
// then one a second (node/ui askBurst, askRate). A caller that emptied its quiet bucket is busy
// until the bucket is full again: a loop that slows down a little does not count as quiet.
const quietRate = rate.Limit(2)

// maxCallers is how many callers' buckets are kept before the idle ones (full again, so
// forgetting them loses nothing) are dropped.
const maxCallers = 1024

// refusalLogEvery: a caller's refusals are logged at most once in this time.
const refusalLogEvery = time.Minute

// limits holds the buckets of searches that ask the partners. A nil bucket is no limit.
type limits struct {
	mu          sync.Mutex
	callerRate  rate.Limit
	callerBurst int
	// node is every caller's; busy is also that of the callers that are not quiet.
	node, busy *rate.Limiter
	callers    map[string]*callerLimit
	log        *slog.Logger
	now        func() time.Time
}

// callerLimit is one caller's bucket, and the bucket that says whether it is quiet.
type callerLimit struct {
	own, quiet *rate.Limiter
	busy       bool
	logged     time.Time
}

// newLimits bounds each caller to callerRate with bursts of callerBurst, and all together to
// nodeRate with bursts of nodeBurst; zero is the default, rate.Inf no limit.
func newLimits(callerRate rate.Limit, callerBurst int, nodeRate rate.Limit, nodeBurst int, log *slog.Logger) *limits {
	if callerRate == 0 {
		callerRate = DefaultCallerRate
	}
	if callerBurst <= 0 {
		callerBurst = DefaultCallerBurst
	}
	if nodeRate == 0 {
		nodeRate = DefaultNodeRate
	}
	if nodeBurst <= 0 {
		nodeBurst = DefaultNodeBurst
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &limits{callerRate: callerRate, callerBurst: callerBurst, callers: map[string]*callerLimit{}, log: log, now: time.Now}
	if nodeRate != rate.Inf {
		l.node = rate.NewLimiter(nodeRate, nodeBurst)
		l.busy = rate.NewLimiter(nodeRate*2/3, max(1, nodeBurst*2/3))
	}
	return l
}

// of is the caller's buckets; l.mu is held.
func (l *limits) of(caller string, now time.Time) *callerLimit {
	c := l.callers[caller]
	if c != nil {
		return c
	}
	if len(l.callers) >= maxCallers {
		for k, c := range l.callers {
			if full(c.quiet, now) && (c.own == nil || full(c.own, now)) {
				delete(l.callers, k)
			}
		}
	}
	c = &callerLimit{quiet: rate.NewLimiter(quietRate, 2*l.callerBurst)}
	if l.callerRate != rate.Inf {
		c.own = rate.NewLimiter(l.callerRate, l.callerBurst)
	}
	l.callers[caller] = c
	return c
}

func full(b *rate.Limiter, now time.Time) bool { return b.TokensAt(now) >= float64(b.Burst()) }

// take takes one search that asks the partners for who: it may go after wait (zero: at once),
// and cancel gives its turn back when it does not; or it is refused with RESOURCE_EXHAUSTED
// saying which limit, and when to retry (also as RetryInfo). also is added to the message: what
// else the caller can do.
func (l *limits) take(who, also string) (wait time.Duration, cancel func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	c := l.of(who, now)
	type turn struct {
		r   *rate.Reservation
		why string
	}
	var turns []turn
	if c.own != nil {
		turns = append(turns, turn{c.own.ReserveN(now, 1), fmt.Sprintf("%s is over its limit of %g searches a second that ask the partners (%d at once)",
			who, float64(l.callerRate), l.callerBurst)})
	}
	if full(c.quiet, now) {
		c.busy = false
	}
	if !c.quiet.AllowN(now, 1) {
		c.busy = true
	}
	if l.node != nil {
		nodeWhy := fmt.Sprintf("this node is over its limit of %g searches a second that ask the partners, for all its users together (%d at once), "+
			"so that the partners' nodes, which limit this org as a whole, keep answering it", float64(l.node.Limit()), l.node.Burst())
		turns = append(turns, turn{l.node.ReserveN(now, 1), nodeWhy})
		if c.busy {
			turns = append(turns, turn{l.busy.ReserveN(now, 1), fmt.Sprintf("this node's callers that search more than %g times a second (%s among them) "+
				"are over their share of %g of its %g searches a second that ask the partners: the rest is kept for those who search less",
				float64(quietRate), who, float64(l.busy.Limit()), float64(l.node.Limit()))})
		}
	}
	var why string
	for _, t := range turns {
		if d := t.r.DelayFrom(now); d > wait {
			wait, why = d, t.why
		}
	}
	cancel = func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		at := l.now()
		for _, t := range turns {
			t.r.CancelAt(at)
		}
	}
	if wait <= MaxLimitWait {
		return wait, cancel, nil
	}
	for _, t := range turns {
		t.r.CancelAt(now)
	}
	retry := tenths(wait - MaxLimitWait)
	msg := fmt.Sprintf("%s: slow down, and retry in %s%s", why, retry, also)
	if now.Sub(c.logged) >= refusalLogEvery {
		c.logged = now
		l.log.Info("searches that ask the partners refused: too many too fast", "caller", who, "reason", msg)
	}
	st, derr := status.New(codes.ResourceExhausted, msg).WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)})
	if derr != nil {
		return 0, nil, status.Error(codes.ResourceExhausted, msg)
	}
	return 0, nil, st.Err()
}

// tenths is d rounded up to a tenth of a second: a client that retries after it waits its turn.
func tenths(d time.Duration) time.Duration {
	const tenth = 100 * time.Millisecond
	return (d + tenth - 1) / tenth * tenth
}

// callerOf names the caller of the call in ctx, as its limit is kept: its SPIFFE ID, or "local
// socket" for whoever opens the node's local socket (and a call without a caller, in tests).
func callerOf(ctx context.Context) string {
	caller, _ := api.CallerFrom(ctx)
	return caller.String()
}

// admit takes one search that asks the partners for the caller in ctx, and waits its turn; it
// refuses the search over the limits, or when ctx ends first.
func (s *Service) admit(ctx context.Context, also string) error {
	wait, cancel, err := s.limits.take(callerOf(ctx), also)
	if err != nil || wait == 0 {
		return err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		cancel()
		return status.FromContextError(ctx.Err()).Err()
	}
}
