package peerserver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/policy"
)

// TestWalksOneAtATimePerPeer: a peer's walks of the store wait for one another, and another
// peer's walk does not wait for them.
func TestWalksOneAtATimePerPeer(t *testing.T) {
	s := New(Config{})
	b1 := policy.Recipient{TrustDomain: "b.crisis.test", ID: "spiffe://b.crisis.test/node/r1"}
	b2 := policy.Recipient{TrustDomain: "b.crisis.test", ID: "spiffe://b.crisis.test/node/r2"}
	c := policy.Recipient{TrustDomain: "c.crisis.test", ID: "spiffe://c.crisis.test/node/r1"}

	release, err := s.walk(context.Background(), b1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.walk(ctx, b2); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a second walk of b's while the first runs: %v, want to wait until its deadline", err)
	}
	relC, err := s.walk(context.Background(), c)
	if err != nil {
		t.Fatalf("c's walk while b walks: %v", err)
	}
	relC()

	got := make(chan error, 1)
	go func() {
		rel, err := s.walk(context.Background(), b2)
		if err == nil {
			rel()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("b's second walk did not wait for the first: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	release()
	if err := <-got; err != nil {
		t.Fatalf("b's second walk after the first ended: %v", err)
	}

	// A walk waiting for its turn ends when the node shuts down.
	release, err = s.walk(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	s.Shutdown()
	if _, err := s.walk(context.Background(), c); status.Code(err) != codes.Unavailable {
		t.Fatalf("a walk that waits when the node shuts down: %v, want Unavailable", err)
	}
}

// TestKeptAnswersAreBounded: a peer that calls as ever new SPIFFE IDs (its CA can issue any)
// cannot grow what a gate keeps for it beyond maxKept.
func TestKeptAnswersAreBounded(t *testing.T) {
	m := map[string]int{}
	for i := range 10 * maxKept {
		keep(m, fmt.Sprintf("spiffe://b.crisis.test/node/r%d", i), i)
		if len(m) > maxKept {
			t.Fatalf("%d entries kept after %d IDs, want at most %d", len(m), i+1, maxKept)
		}
	}
	keep(m, "spiffe://b.crisis.test/node/again", 1)
	keep(m, "spiffe://b.crisis.test/node/again", 2)
	if m["spiffe://b.crisis.test/node/again"] != 2 {
		t.Fatal("an ID kept again does not hold its newest answer")
	}
}

// TestTextSearchesTakeTurns: a peer runs at most textSearches text searches at once, the next
// waiting for its turn (review fed-adversary 4); a search without text, and another peer's text
// search, do not wait for them.
func TestTextSearchesTakeTurns(t *testing.T) {
	s := New(Config{})
	b := policy.Recipient{TrustDomain: "b.crisis.test", ID: "spiffe://b.crisis.test/node/r1"}
	c := policy.Recipient{TrustDomain: "c.crisis.test", ID: "spiffe://c.crisis.test/node/r1"}
	var releases []func()
	for range textSearches {
		release, err := s.searchText(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.searchText(ctx, b); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("b's text search beyond %d at once: %v, want to wait until its deadline", textSearches, err)
	}
	if rel, err := s.searchText(context.Background(), c); err != nil {
		t.Fatalf("c's text search while b's run: %v", err)
	} else {
		rel()
	}
	if rel, err := s.walk(context.Background(), b); err != nil {
		t.Fatalf("b's walk while its text searches run: %v", err)
	} else {
		rel()
	}
	releases[0]()
	if rel, err := s.searchText(context.Background(), b); err != nil {
		t.Fatalf("b's text search once one ended: %v", err)
	} else {
		rel()
	}
}

// TestHoldersPerPeerAreBounded: a peer's people and applications, each its own holder of what it
// gets, search as at most maxHolders IDs an hour (review fed-adversary 3): one more is refused,
// one of them searches again, another peer is not counted with it, and an hour later there is
// room again.
func TestHoldersPerPeerAreBounded(t *testing.T) {
	s := New(Config{})
	now := time.Now()
	person := func(td string, i int) policy.Recipient {
		return policy.Recipient{TrustDomain: td, ID: fmt.Sprintf("spiffe://%s/user/p%d", td, i)}
	}
	for i := range maxHolders {
		if err := s.newHolder(person("b.crisis.test", i), now); err != nil {
			t.Fatalf("holder %d: %v", i, err)
		}
	}
	if err := s.newHolder(person("b.crisis.test", maxHolders), now); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("holder %d of one peer in an hour: %v, want ResourceExhausted", maxHolders+1, err)
	}
	if err := s.newHolder(person("b.crisis.test", 3), now.Add(time.Minute)); err != nil {
		t.Fatalf("a holder that searched before, again: %v", err)
	}
	if err := s.newHolder(person("c.crisis.test", 0), now); err != nil {
		t.Fatalf("another peer's holder: %v", err)
	}
	if err := s.newHolder(person("b.crisis.test", maxHolders), now.Add(holderWindow)); err != nil {
		t.Fatalf("a new holder an hour later: %v", err)
	}
}

// TestDescribedKeyHasTheGroups: a kept Describe answer is the recipient's as it was named then:
// a peer placed in other groups, or renamed, asks anew (review B, L4).
func TestDescribedKeyHasTheGroups(t *testing.T) {
	to := policy.Recipient{TrustDomain: "b.crisis.test", ID: "spiffe://b.crisis.test/node/r1", Name: "b", Groups: []string{"regios"}}
	moved, renamed, none := to, to, to
	moved.Groups = []string{"rijk"}
	renamed.Name = "bee"
	none.Groups = nil
	for _, other := range []policy.Recipient{moved, renamed, none} {
		if describedKey(other) == describedKey(to) {
			t.Errorf("%+v and %+v share a kept Describe answer", to, other)
		}
	}
}
