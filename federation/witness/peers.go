package witness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// DefaultInterval is how often a node hands its head to its peers when nothing else does.
const DefaultInterval = 5 * time.Minute

// Witness states in a report.
const (
	OK          = "ok"
	Rewritten   = "rewritten"
	Invalid     = "invalid"
	None        = "none"
	Unreachable = "unreachable"
)

// Config wires the witnessing of a node's chain.
type Config struct {
	DB *db.DB
	// Org is the node's trust domain.
	Org string
	// SVID signs the heads.
	SVID x509svid.Source
	// Bundles vouch for the SVIDs that signed the heads the peers hand back: the org's own. The
	// leader records the org's bundle through Apply as it changes, and a head is checked against
	// the authorities the bundle held at the head's time as well as today's.
	Bundles x509bundle.Source
	// Apply proposes a command to the group's Raft log.
	Apply func(context.Context, *pb.Command) error
	// Peers returns the configured peers; Conn connects to one.
	Peers func() []config.Peer
	Conn  func(config.Peer) (*grpc.ClientConn, error)
	// Leading reports whether this replica leads its group: only the leader hands heads out, so
	// that a peer gets one head per entry, not one per replica.
	Leading func() bool
	// Interval is how often the head goes out when no policy step or phase change sends it
	// sooner. Default 5 minutes.
	Interval time.Duration
	Logger   *slog.Logger
}

// Witnesses hands the node's signed heads to its peers and checks the chain against the heads
// they keep.
type Witnesses struct {
	c Config
	// kept is the set of authorities this leader last found recorded, by keyOf; Run's alone.
	kept string
}

// New returns the witnessing of a node's chain.
func New(c Config) *Witnesses {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Witnesses{c: c}
}

// Run hands the head out until ctx ends: when this replica starts to lead, after every policy
// step and phase change (which move the database's generation), every peer step, and every
// Interval. A head that
// did not move since it last went out is not sent again until Interval passed.
func (w *Witnesses) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var (
		leading  bool
		gen      uint64
		sentAt   time.Time
		sentSeq  int64
		sentHash []byte
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !w.c.Leading() {
			leading = false
			w.kept = "" // another leader may record the bundle meanwhile
			continue
		}
		if err := w.keepAuthorities(ctx); err != nil {
			w.c.Logger.Warn("could not record the trust bundle's authorities", "err", err)
		}
		// A peer added, regrouped or removed changes who gets what, as a policy step does: its
		// entries are witnessed at once, not at the next Interval (review O, O6). Both counters
		// only grow, so their sum moves whenever either does.
		g := w.c.DB.Generation() + w.c.DB.PeersGeneration()
		due := !leading || g != gen || time.Since(sentAt) >= w.c.Interval
		leading = true
		if !due {
			continue
		}
		seq, hash, err := w.c.DB.AuditHead(ctx)
		if err != nil || seq == 0 {
			continue
		}
		if seq == sentSeq && bytes.Equal(hash, sentHash) && time.Since(sentAt) < w.c.Interval {
			gen = g
			continue
		}
		if err := w.Send(ctx, seq, hash); err != nil {
			w.c.Logger.Warn("could not sign the audit head", "err", err)
			continue
		}
		gen, sentAt, sentSeq, sentHash = g, time.Now(), seq, hash
	}
}

// keepAuthorities records the org's bundle through Raft when its authorities differ from those
// the group last recorded as held.
func (w *Witnesses) keepAuthorities(ctx context.Context) error {
	if w.c.Apply == nil || w.c.Bundles == nil {
		return nil
	}
	td, err := spiffeid.TrustDomainFromString(w.c.Org)
	if err != nil {
		return err
	}
	b, err := w.c.Bundles.GetX509BundleForTrustDomain(td)
	if err != nil {
		return err
	}
	var ders [][]byte
	for _, c := range b.X509Authorities() {
		ders = append(ders, c.Raw)
	}
	key := keyOf(ders)
	if key == w.kept {
		return nil
	}
	recorded, err := w.c.DB.Authorities(ctx, td.Name())
	if err != nil {
		return err
	}
	var held [][]byte
	for _, a := range recorded {
		if a.RemovedAt.IsZero() {
			held = append(held, a.DER)
		}
	}
	if keyOf(held) != key {
		cmd := &pb.Command{Cmd: &pb.Command_KeepAuthorities{KeepAuthorities: &pb.KeepAuthorities{
			TrustDomain: td.Name(), Authorities: ders, At: timestamppb.Now()}}}
		if err := w.c.Apply(ctx, cmd); err != nil {
			return err
		}
	}
	w.kept = key
	return nil
}

// keyOf names a set of certificates by their sorted hashes.
func keyOf(ders [][]byte) string {
	sums := make([]string, len(ders))
	for i, der := range ders {
		sum := sha256.Sum256(der)
		sums[i] = string(sum[:])
	}
	sort.Strings(sums)
	return strings.Join(sums, "")
}

// bundleAt is the org's bundle for checking a head signed at t: today's authorities, and those
// the bundle held at t by the record the leader keeps.
func (w *Witnesses) bundleAt(td spiffeid.TrustDomain, history []db.Authority, t time.Time) *x509bundle.Bundle {
	b := x509bundle.New(td)
	if cur, err := w.c.Bundles.GetX509BundleForTrustDomain(td); err == nil {
		b = cur.Clone()
	}
	for _, a := range history {
		if !a.Held(t) {
			continue
		}
		if c, err := x509.ParseCertificate(a.DER); err == nil {
			b.AddX509Authority(c)
		}
	}
	return b
}

// Send signs the head (seq, hash) and hands it to every peer, in parallel, each within 5
// seconds. A peer that cannot be reached is logged; it gets the next head. A peer that kept the
// head as evidence that this node's chain forked says so: that is logged at ERROR, counted in
// knooppunt_audit_disputed_total and audited as audit.disputed, so that the node's own officers
// learn it from their node and not only from the partner (review O, O7).
func (w *Witnesses) Send(ctx context.Context, seq int64, hash []byte) error {
	svid, err := w.c.SVID.GetX509SVID()
	if err != nil {
		return err
	}
	head, err := Sign(svid, seq, hash, time.Now())
	if err != nil {
		return err
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		disputed []*pb.AuditEntry
	)
	for _, p := range w.c.Peers() {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			conn, err := w.c.Conn(p)
			if err == nil {
				_, err = pb.NewFederationServiceClient(conn).Witness(ctx, &pb.WitnessRequest{Head: head})
			}
			switch {
			case err == nil:
			case isFork(err):
				says := status.Convert(err).Message()
				if len(says) > maxSays {
					says = strings.ToValidUTF8(says[:maxSays], "") + "…"
				}
				w.c.Logger.Error("a peer kept this node's audit head as evidence that the chain forked or was rewritten: run knooppunt audit verify --witnesses, and talk to the peer's security officers",
					"peer", p.Name, "seq", seq, "peer_says", says)
				metrics.AuditDisputed.WithLabelValues(p.TrustDomain).Inc()
				detail, _ := json.Marshal(map[string]any{"seq": seq, "hash": fmt.Sprintf("%x", hash), "peer_says": says})
				mu.Lock()
				disputed = append(disputed, &pb.AuditEntry{At: timestamppb.Now(), Actor: p.TrustDomain, Action: db.AuditDisputed,
					Subject: fmt.Sprintf("entry %d", seq), Detail: string(detail)})
				mu.Unlock()
			default:
				w.c.Logger.Warn("a peer did not take the audit head", "peer", p.Name, "seq", seq, "err", err)
			}
		})
	}
	wg.Wait()
	if len(disputed) > 0 && w.c.Apply != nil {
		sort.Slice(disputed, func(i, j int) bool { return disputed[i].Actor < disputed[j].Actor })
		err := w.c.Apply(ctx, &pb.Command{Cmd: &pb.Command_AppendAudit{AppendAudit: &pb.AppendAudit{Entries: disputed}}})
		if err != nil {
			w.c.Logger.Error("could not audit the peers' answers that this node's audit chain forked", "entries", len(disputed), "err", err)
		}
	}
	return nil
}

// maxSays bounds what of a peer's answer an audit.disputed entry keeps.
const maxSays = 1024

// isFork says whether a Witness call's error is the peer's answer that it kept the head as
// evidence of a fork: by its reason, or, from a peer of a release before it, by its words.
func isFork(err error) bool {
	if api.Reason(err) == api.ReasonAuditFork {
		return true
	}
	st := status.Convert(err)
	return st.Code() == codes.FailedPrecondition && strings.HasPrefix(st.Message(), "kept as evidence of a fork")
}

// Check asks every peer, in parallel, within 10 seconds, for the heads of this node's chain it
// keeps, and checks each: its signature and chain verify with the org's bundle at its time, and
// the chain holds an entry at its seq with its hash. A head the node signed that the chain does
// not hold means the chain was rewritten; the report names the witness and the seq.
func (w *Witnesses) Check(ctx context.Context) ([]*pb.WitnessReport, error) {
	td, err := spiffeid.TrustDomainFromString(w.c.Org)
	if err != nil {
		return nil, fmt.Errorf("witness: org %q: %w", w.c.Org, err)
	}
	peers := w.c.Peers()
	reports := make([]*pb.WitnessReport, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			reports[i] = w.check(ctx, td, p)
		})
	}
	wg.Wait()
	sort.Slice(reports, func(i, j int) bool { return reports[i].Peer < reports[j].Peer })
	return reports, nil
}

func (w *Witnesses) check(ctx context.Context, td spiffeid.TrustDomain, p config.Peer) *pb.WitnessReport {
	rep := &pb.WitnessReport{Peer: p.Name, TrustDomain: p.TrustDomain}
	fail := func(state string, seq int64, format string, args ...any) {
		// A rewritten chain is the finding that matters; it outranks a witness's bad head.
		if rep.State == "" || rep.State == Invalid && state == Rewritten {
			rep.State, rep.Seq, rep.Problem = state, seq, fmt.Sprintf(format, args...)
		}
	}
	conn, err := w.c.Conn(p)
	if err != nil {
		rep.State, rep.Problem = Unreachable, err.Error()
		return rep
	}
	history, err := w.c.DB.Authorities(ctx, td.Name())
	if err != nil {
		rep.State, rep.Problem = Unreachable, err.Error()
		return rep
	}
	fc := pb.NewFederationServiceClient(conn)
	var after int64
	for {
		resp, err := fc.Heads(ctx, &pb.HeadsRequest{AfterSeq: after})
		if err != nil {
			rep.State, rep.Problem = Unreachable, status.Convert(err).Message()
			return rep
		}
		for _, held := range resp.Heads {
			h := held.Head
			rep.Heads++
			signer, err := Verify(h, td, w.bundleAt(td, history, h.GetAt().AsTime()))
			if err != nil {
				fail(Invalid, h.GetSeq(), "%s keeps a head for entry %d that does not verify: %v", p.Name, h.GetSeq(), err)
				continue
			}
			local, err := w.c.DB.AuditHashAt(ctx, h.Seq)
			if err != nil {
				rep.State, rep.Problem = Unreachable, err.Error()
				return rep
			}
			at := h.At.AsTime().UTC().Format(time.RFC3339)
			switch {
			case local == nil:
				fail(Rewritten, h.Seq, "witness %s holds a head for entry %d, signed by %s at %s, and the chain has no entry %d: entries were removed from its end", p.Name, h.Seq, signer, at, h.Seq)
			case !bytes.Equal(local, h.Hash):
				fail(Rewritten, h.Seq, "witness %s holds a head for entry %d with hash %x, signed by %s at %s; the chain's entry %d has hash %x: the chain was rewritten from this entry or before it", p.Name, h.Seq, h.Hash, signer, at, h.Seq, local)
			case h.Seq >= rep.NewestSeq:
				rep.NewestSeq, rep.NewestAt = h.Seq, h.At
			}
		}
		if len(resp.Heads) < 1000 {
			break
		}
		next := resp.Heads[len(resp.Heads)-1].Head.GetSeq()
		if next <= after {
			// A witness of another release that pages otherwise would send this page again.
			rep.State, rep.Problem = Unreachable, fmt.Sprintf("witness %s sent a page of heads that does not go past entry %d", p.Name, after)
			return rep
		}
		after = next
	}
	if rep.State == "" {
		rep.State = OK
		if rep.Heads == 0 {
			rep.State = None
		}
	}
	return rep
}
