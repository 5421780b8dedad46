package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// ApplyLevel is how this release applies log entries. A release that applies an entry otherwise
// raises it, and marks the entries it writes so that it applies unmarked ones as the release
// before did (docs/cluster.md, Upgrades). A replica of an earlier release cannot read such a mark,
// and would apply the entry otherwise: its audit chain and state would part from the others'
// without a word (review V, V2). So the leader takes no writes while another replica of its group
// says a lower level, or says none, as a release before levels does.
const ApplyLevel = 1

// OlderReplicaError is a write the leader refused because replica Replica of its group applies
// log entries at Level, below the leader's Want: it would apply them otherwise.
type OlderReplicaError struct {
	Replica     string
	Level, Want uint32
}

func (e *OlderReplicaError) Error() string {
	return fmt.Sprintf("store: replica %s runs an earlier knooppunt release (apply level %d, this leader's %d), which would apply this write otherwise", e.Replica, e.Level, e.Want)
}

// levelAsk bounds one question to a replica about its level; levelEvery spaces the leader's
// rounds of questions, and levelRecheck the questions to a replica known to be older, or not yet
// heard, when a write comes.
const (
	levelAsk     = time.Second
	levelEvery   = 10 * time.Second
	levelRecheck = time.Second
)

// levels is what the leader knows of the other replicas' apply levels.
type levels struct {
	mu sync.Mutex
	// seen is each replica's level as it last said it, since this replica became leader.
	seen map[string]uint32
	// refused is why each replica that said so fails to restore this leader's snapshots.
	refused map[string]string
	// asked is when each replica was last asked.
	asked map[string]time.Time
	// cut are the replicas that stopped answering Raft since they last said their level: one
	// restarted meanwhile may run another release.
	cut map[string]bool
	// term is the term in which seen was gathered: a new leadership asks anew.
	term uint64
}

// begin starts what is known of term, forgetting an earlier term's: a new leadership asks anew.
// lv.mu is held.
func (lv *levels) begin(term uint64) {
	if lv.term != term {
		lv.term, lv.seen, lv.asked, lv.refused, lv.cut = term, map[string]uint32{}, map[string]time.Time{}, map[string]string{}, map[string]bool{}
	}
}

// Level is the apply level this replica says (Config.Level, else ApplyLevel).
func (s *Store) Level() uint32 {
	if s.cfg.Level != 0 {
		return s.cfg.Level
	}
	return ApplyLevel
}

// OlderReplica is olderReplica: on the leader, an *OlderReplicaError while another replica of its
// group says a lower apply level, and it takes no writes.
func (s *Store) OlderReplica() error {
	if s.raft.State() != raft.Leader {
		return nil
	}
	return s.olderReplica()
}

// olderReplica is nil when every other replica of the group says a level at least this one's, or
// cannot be asked now (it is down: once it answers, it is known). Otherwise it is the
// *OlderReplicaError of the first that says less. Replicas not yet asked in this leadership are
// asked first, for at most levelAsk, and those known to be older again, at most every
// levelRecheck, so that writes go in again as soon as they run this release.
func (s *Store) olderReplica() error {
	if s.cfg.AskLevel == nil {
		return nil
	}
	others := s.otherReplicas()
	s.lv.mu.Lock()
	s.lv.begin(s.raft.CurrentTerm())
	var ask []string
	now := time.Now()
	for _, id := range others {
		level, heard := s.lv.seen[id]
		at, asked := s.lv.asked[id]
		// One not heard from that was asked is down: watchLevels asks it again, not the writes,
		// which would wait for it.
		if !asked || heard && level < s.Level() && now.Sub(at) >= levelRecheck {
			ask = append(ask, id)
		}
	}
	s.lv.mu.Unlock()
	if len(ask) > 0 {
		s.askLevels(ask)
	}
	s.lv.mu.Lock()
	defer s.lv.mu.Unlock()
	for _, id := range others {
		if level, heard := s.lv.seen[id]; heard && level < s.Level() {
			return &OlderReplicaError{Replica: id, Level: level, Want: s.Level()}
		}
	}
	return nil
}

// askLevels asks the replicas ids for their levels, together, each for at most levelAsk, and
// notes the answers of this term.
func (s *Store) askLevels(ids []string) {
	term := s.raft.CurrentTerm()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), levelAsk)
			defer cancel()
			says, err := s.cfg.AskLevel(ctx, id)
			level := says.Level
			s.lv.mu.Lock()
			defer s.lv.mu.Unlock()
			if s.lv.term != term {
				return
			}
			s.lv.asked[id] = time.Now()
			if err == nil {
				delete(s.lv.cut, id)
				if says.SnapshotRefused != "" {
					s.lv.refused[id] = says.SnapshotRefused
				} else {
					delete(s.lv.refused, id)
				}
				if prev, heard := s.lv.seen[id]; !heard || prev != level {
					s.lv.seen[id] = level
					if level < s.Level() {
						s.log.Error("raft: a replica of this group runs an earlier knooppunt release, which applies log entries otherwise: this leader takes no writes until every replica runs this release (docs/cluster.md, Upgrades)",
							"replica", id, "apply_level", level, "leader_apply_level", s.Level())
					} else if heard {
						s.log.Info("raft: a replica of this group now runs a release that applies log entries as this one does", "replica", id, "apply_level", level)
					}
				}
			}
		})
	}
	wg.Wait()
}

// otherReplicas are the ids of the group's replicas, voters and non-voters, but this one.
func (s *Store) otherReplicas() []string {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []string
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) != s.cfg.ReplicaID {
			out = append(out, string(srv.ID))
		}
	}
	return out
}

// OlderReplicas are the replicas that the leader last heard say a lower level than its own, in
// order of id; none on a follower.
func (s *Store) OlderReplicas() []string {
	var out []string
	s.ofThisTerm(func() {
		for id, level := range s.lv.seen {
			if level < s.Level() {
				out = append(out, id)
			}
		}
	})
	slices.Sort(out)
	return out
}

// refusingReplicas are, on the leader, the replicas that said in this term that they fail to
// restore its snapshots, with why; none on a follower.
func (s *Store) refusingReplicas() (out map[string]string) {
	s.ofThisTerm(func() { out = maps.Clone(s.lv.refused) })
	return out
}

// ofThisTerm runs read with lv.mu held when this replica leads and what lv holds was gathered in
// its term; it runs nothing otherwise.
func (s *Store) ofThisTerm(read func()) {
	if s.raft.State() != raft.Leader {
		return
	}
	s.lv.mu.Lock()
	defer s.lv.mu.Unlock()
	if s.lv.term == s.raft.CurrentTerm() {
		read()
	}
}

// watchLevels asks, while this replica leads, every other replica for its level every
// levelEvery, from the start of each leadership on: a replica whose binary was replaced by an
// earlier release is known before a write comes. One that did not answer is asked again every
// tick (unheardReplicas).
func (s *Store) watchLevels() {
	tick := time.NewTicker(levelEvery / 10)
	defer tick.Stop()
	var last time.Time
	var term uint64
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		if s.raft.State() != raft.Leader {
			continue
		}
		if t := s.raft.CurrentTerm(); t != term || time.Since(last) >= levelEvery {
			term, last = t, time.Now()
			s.lv.mu.Lock()
			s.lv.begin(t)
			s.lv.mu.Unlock()
			s.askLevels(s.otherReplicas())
		} else if down := s.unheardReplicas(); len(down) > 0 {
			s.askLevels(down)
		}
	}
}

// levelCut notes, on the leader, that replica id failed a heartbeat, or answers again after it
// failed: it is asked for its level again at every tick until it answers (unheardReplicas), as
// it may come back restarted on another release. Noted again when it answers Raft again, an
// answer the stopping process gave in between does not count.
func (s *Store) levelCut(id string) {
	s.lv.mu.Lock()
	defer s.lv.mu.Unlock()
	if s.lv.term == s.raft.CurrentTerm() && s.lv.cut != nil {
		s.lv.cut[id] = true
	}
}

// unheardReplicas are the other replicas that were asked for their level in this leadership and
// have not answered, they were down, and those that stopped answering Raft since they last said
// it (levelCut). watchLevels asks them again at every tick, so that one that comes back running
// an earlier release is known within a tick or two, not at the next round (levelEvery), while it
// applies the entries it is sent (CI: a replica restarted as the leader changed went unmarked in
// cluster status).
func (s *Store) unheardReplicas() []string {
	others := s.otherReplicas()
	s.lv.mu.Lock()
	defer s.lv.mu.Unlock()
	if s.lv.term != s.raft.CurrentTerm() {
		return nil
	}
	var out []string
	for _, id := range others {
		_, heard := s.lv.seen[id]
		if _, asked := s.lv.asked[id]; asked && !heard || s.lv.cut[id] {
			out = append(out, id)
		}
	}
	return out
}
