// Package sharing connects the pure decision engine of package policy to the node: it loads the
// stored policies (compiling each version once), resolves recipients from the peers config, and
// looks up crisis phases. Every path by which a record leaves the node asks Sharing.
package sharing

import (
	"context"
	"fmt"
	"sync"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/policy"
)

// Sharing is the node's view of its policies, peers and phases.
type Sharing struct {
	db     *db.DB
	org    string
	config func() *config.Config

	mu    sync.Mutex
	cache map[string]*policy.Compiled // by policy id; a version's document never changes
}

// New returns a Sharing over d for the org; config returns the running config.
func New(d *db.DB, org string, config func() *config.Config) *Sharing {
	return &Sharing{db: d, org: org, config: config, cache: map[string]*policy.Compiled{}}
}

// Org is the node's own trust domain.
func (s *Sharing) Org() string { return s.org }

// PolicySet returns every stored policy, compiled, with its current lifecycle state.
func (s *Sharing) PolicySet(ctx context.Context) (*policy.Set, error) {
	rows, err := s.db.ListPolicies(ctx, "", "")
	if err != nil {
		return nil, err
	}
	set := &policy.Set{Org: s.org}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		c, ok := s.cache[r.ID]
		if !ok {
			if c, err = policy.Compile(r.Policy); err != nil {
				return nil, fmt.Errorf("sharing: policy %s no longer compiles: %w", r.ID, err)
			}
			s.cache[r.ID] = c
		}
		// The compiled program is shared; the lifecycle fields are the stored ones.
		cur := *c
		cur.Policy = r.Policy
		set.Policies = append(set.Policies, &cur)
	}
	return set, nil
}

// Peers returns the configured peers as policy recipients (their first replica's ID).
func (s *Sharing) Peers() []policy.Recipient {
	var out []policy.Recipient
	for _, p := range s.config().Peers {
		out = append(out, policy.Recipient{ID: "spiffe://" + p.TrustDomain + "/node/r1", TrustDomain: p.TrustDomain, Name: p.Name, Groups: p.Groups})
	}
	return out
}

// LintContext is what a lint against this node checks names against.
func (s *Sharing) LintContext(kinds []string) *policy.Context {
	ctx := &policy.Context{Kinds: kinds, Peers: s.Peers()}
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

// Recipient resolves a peer's SPIFFE ID to the recipient a decision is for.
func (s *Sharing) Recipient(id string) (policy.Recipient, error) {
	sid, err := spiffeid.FromString(id)
	if err != nil {
		return policy.Recipient{}, fmt.Errorf("%q is not a SPIFFE ID: %w", id, err)
	}
	for _, p := range s.config().Peers {
		if p.TrustDomain == sid.TrustDomain().Name() {
			return policy.Recipient{ID: sid.String(), TrustDomain: p.TrustDomain, Name: p.Name, Groups: p.Groups}, nil
		}
	}
	return policy.Recipient{}, fmt.Errorf("%w: %s", ErrUnknownRecipient, sid.TrustDomain())
}

// Phases looks up crisis phases, remembering answers for the life of one request.
type Phases struct {
	db   *db.DB
	seen map[string]string
}

// Phases returns a phase lookup for one request.
func (s *Sharing) Phases() *Phases { return &Phases{db: s.db, seen: map[string]string{}} }

// Of returns the crisis's phase; a crisis whose phase was never set is cold.
func (p *Phases) Of(ctx context.Context, crisis string) (string, error) {
	if ph, ok := p.seen[crisis]; ok {
		return ph, nil
	}
	list, err := p.db.Phases(ctx, crisis)
	if err != nil {
		return "", err
	}
	ph := policy.PhaseCold
	if len(list) == 1 {
		ph = list[0].Phase
	}
	p.seen[crisis] = ph
	return ph, nil
}
