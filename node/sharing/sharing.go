// Package sharing connects the pure decision engine of package policy to the node: it loads the
// stored policies (compiling each version once, and reading them again only when a policy step,
// phase change or restore moved db.Generation), resolves recipients from the peers config, and
// looks up crisis phases. Every path by which a record leaves the node asks Sharing.
package sharing

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/policy"
)

// Sharing is the node's view of its policies, peers and phases.
type Sharing struct {
	db     *db.DB
	org    string
	config func() *config.Config
	log    *slog.Logger

	mu sync.Mutex
	// cache holds the compiled policies by id (a version's document never changes); nil for a
	// stored version this build cannot compile, which is left out of the set, logged once.
	cache map[string]*policy.Compiled
	// set and phases are what the database held at generation gen. Every policy step and phase
	// change (and a restore) moves the generation, so a set read at gen answers until it moves.
	// A policy that expires needs no new set: Decide checks the validity window at its now.
	gen    uint64
	set    *policy.Set
	phases map[string]string
	// listed is db.ListedPeers as it was at peers generation listedGen.
	listed    map[string]db.PeerListing
	listedGen uint64
	listedOK  bool
}

// New returns a Sharing over d for the org; config returns the running config; log says which
// stored policy cannot be compiled.
func New(d *db.DB, org string, config func() *config.Config, log *slog.Logger) *Sharing {
	return &Sharing{db: d, org: org, config: config, log: log, cache: map[string]*policy.Compiled{}}
}

// Org is the node's own trust domain.
func (s *Sharing) Org() string { return s.org }

// Leaving reports whether the peer of a trust domain is leaving (`peer remove`, or gone from the
// config file): every decision for it is then deny. An accepted peer that leaves while the
// config file lists its trust domain is not: the file's peer is in effect. A peer that leaves
// because the file dropped it is, also while the running config still has the old file.
// A peer that the running config has from Raft, and the peers table no longer lists, was
// removed: the node makes the running config follow the table a moment after the step commits,
// and until then it is granted nothing either (CI: a record put in that moment reached a peer
// that had been removed, on its open subscription).
// Every decision for a peer asks, so the peers table is read once per peers generation.
func (s *Sharing) Leaving(ctx context.Context, trustDomain string) (bool, error) {
	gen := s.db.PeersGeneration() // before the read: a step after it makes the next call read again
	s.mu.Lock()
	listed, ok := s.listed, s.listedOK && s.listedGen == gen
	s.mu.Unlock()
	if !ok {
		var err error
		if listed, err = s.db.ListedPeers(ctx); err != nil {
			return false, err
		}
		s.mu.Lock()
		s.listed, s.listedGen, s.listedOK = listed, gen, true
		s.mu.Unlock()
	}
	l, is := listed[trustDomain]
	if l.LeftFile {
		return true, nil
	}
	for _, p := range s.config().Peers {
		if p.TrustDomain != trustDomain {
			continue
		}
		if p.Source != config.PeerFromRaft {
			return false, nil // the file's peer is in effect
		}
		if !is {
			return true, nil // removed; the running config has yet to follow
		}
	}
	return l.Leaving, nil
}

// PolicySet returns every stored policy, compiled, with its current lifecycle state. The set is
// read from the database only when the generation has moved since the last read; a Set is
// immutable, so every caller shares it.
func (s *Sharing) PolicySet(ctx context.Context) (*policy.Set, error) {
	set, _, err := s.current(ctx)
	return set, err
}

// current returns the policy set and the crisis phases of the database's generation.
func (s *Sharing) current(ctx context.Context) (*policy.Set, map[string]string, error) {
	// Read the generation before the rows: a step commits before it moves the generation, so
	// rows read after gen was read are at least as new as gen, and a set stored under an older
	// generation than the current one is never served.
	gen := s.db.Generation()
	s.mu.Lock()
	if s.set != nil && s.gen == gen {
		set, phases := s.set, s.phases
		s.mu.Unlock()
		return set, phases, nil
	}
	s.mu.Unlock()

	rows, err := s.db.ListPolicies(ctx, "", "")
	if err != nil {
		return nil, nil, err
	}
	list, err := s.db.Phases(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	phases := make(map[string]string, len(list))
	for _, p := range list {
		phases[PhaseKey(p.Exercise, p.Crisis)] = p.Phase
	}
	set := &policy.Set{Org: s.org}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		c, ok := s.cache[r.ID]
		if ok && c == nil {
			continue
		}
		if !ok {
			if c, err = policy.Compile(r.Policy); err != nil {
				// Fail closed for that version alone: it grants nothing, and every other
				// policy stays in force.
				s.cache[r.ID] = nil
				s.log.Error("sharing: a stored policy does not compile with this release: it grants nothing; propose a new version of it",
					"policy", r.ID, "state", r.State, "err", err)
				continue
			}
			s.cache[r.ID] = c
		}
		// The compiled program is shared; the lifecycle fields are the stored ones.
		cur := *c
		cur.Policy = r.Policy
		set.Policies = append(set.Policies, &cur)
	}
	if s.set == nil || gen >= s.gen {
		s.gen, s.set, s.phases = gen, set, phases
	}
	return set, phases, nil
}

// Peers returns the configured peers as policy recipients (their first replica's ID).
func (s *Sharing) Peers() []policy.Recipient {
	var out []policy.Recipient
	for _, p := range s.config().Peers {
		out = append(out, policy.Recipient{ID: config.FirstReplicaID(p.TrustDomain), TrustDomain: p.TrustDomain, Name: p.Name, Groups: p.Groups})
	}
	return out
}

// LintContext is what a lint against this node checks names against.
func (s *Sharing) LintContext(kinds *record.Kinds) *policy.Context {
	ctx := &policy.Context{Kinds: kinds.Names(), Peers: s.Peers(), Fields: map[string][]string{}, Declared: map[string][]string{}}
	for _, n := range ctx.Kinds {
		ctx.Fields[n] = kinds.Get(n).ClosedFields()
		ctx.Declared[n] = kinds.Get(n).Fields()
	}
	seen := map[string]bool{}
	for _, p := range s.config().Peers {
		for _, g := range p.Groups {
			if !seen[g] {
				seen[g] = true
				ctx.Groups = append(ctx.Groups, g)
			}
		}
	}
	return ctx
}

// ErrUnknownRecipient means a SPIFFE ID is not of a configured peer.
var ErrUnknownRecipient = fmt.Errorf("sharing: not a configured peer")

// Recipient resolves a peer's SPIFFE ID to the recipient a decision is for. A peer's name or
// trust domain stands for its node (config.FirstReplicaID), as the web forms suggest it.
func (s *Sharing) Recipient(id string) (policy.Recipient, error) {
	peers := s.config().Peers
	if !strings.Contains(id, "://") {
		for _, p := range peers {
			if id == p.Name || id == p.TrustDomain {
				id = config.FirstReplicaID(p.TrustDomain)
			}
		}
	}
	if g, ok := strings.CutPrefix(id, "group:"); ok {
		return policy.Recipient{}, fmt.Errorf("%q is a group, and a decision is for one partner: give one of the group's partners by its name or SPIFFE ID (knooppunt peer list shows the groups of each), such as spiffe://TD/node/r1", "group:"+g)
	}
	sid, err := spiffeid.FromString(id)
	if err != nil {
		return policy.Recipient{}, fmt.Errorf("%q is neither a peer's name nor a SPIFFE ID (spiffe://TD/…; knooppunt peer list shows the peers): %w", id, err)
	}
	for _, p := range peers {
		if p.TrustDomain == sid.TrustDomain().Name() {
			return policy.Recipient{ID: sid.String(), TrustDomain: p.TrustDomain, Name: p.Name, Groups: p.Groups}, nil
		}
	}
	return policy.Recipient{}, fmt.Errorf("%w: %s", ErrUnknownRecipient, sid.TrustDomain())
}

// Snapshot returns the policy set and the crisis phases of one generation, and a phase lookup
// over the same phases, for a caller that must see the two as they were at one moment. The map
// is shared: do not change it.
func (s *Sharing) Snapshot(ctx context.Context) (*policy.Set, map[string]string, *Phases, error) {
	set, phases, err := s.current(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return set, phases, &Phases{s: s, seen: phases}, nil
}

// Phases looks up crisis phases for one request. It reads them at the first lookup, with the
// policy set of the same generation, and then keeps them for the life of the request.
type Phases struct {
	s    *Sharing
	seen map[string]string
}

// Phases returns a phase lookup for one request.
func (s *Sharing) Phases() *Phases { return &Phases{s: s} }

// PhaseKey is the key of a crisis's phase in the mode of the exercise ("" the actual crisis):
// an exercise keeps phases of its own, so that it can be warm while the actual crisis is cold.
func PhaseKey(exercise, crisis string) string {
	if exercise == "" {
		return crisis
	}
	return exercise + "\x00" + crisis
}

// Of returns the phase of the crisis in the mode of the exercise ("" the actual crisis); a crisis
// whose phase was never set in that mode is cold.
func (p *Phases) Of(ctx context.Context, exercise, crisis string) (string, error) {
	if p.seen == nil {
		_, seen, err := p.s.current(ctx)
		if err != nil {
			return "", err
		}
		p.seen = seen
	}
	if ph, ok := p.seen[PhaseKey(exercise, crisis)]; ok {
		return ph, nil
	}
	return policy.PhaseCold, nil
}
