package store

import (
	"fmt"

	"github.com/hashicorp/raft"
)

// InGroup reports whether id is a replica of the group: a voter or non-voter of its newest
// configuration, or of the newest one this replica knows to be committed. The newest may not be
// committed yet, and may never be: a leader that proposes a change and is deposed before a
// majority has it keeps the change in its log until the next leader overwrites it. When the
// change removes the replica that leads next, a replica that went by the newest configuration
// alone would refuse that leader, and never learn that the change was undone.
func (s *Store) InGroup(id string) bool {
	if c := s.fsm.committed.Load(); c != nil && hasServer(c.servers, id) {
		return true
	}
	f := s.raft.GetConfiguration()
	return f.Error() == nil && hasServer(f.Configuration().Servers, id)
}

func hasServer(servers []raft.Server, id string) bool {
	for _, srv := range servers {
		if string(srv.ID) == id {
			return true
		}
	}
	return false
}

// committedAtStart is the configuration that Raft takes as committed when it starts on this
// log and these snapshots: the one before the newest configuration entry after the newest
// snapshot, since Raft proposes a change only once the one before it is committed; or the
// snapshot's; nil on an empty log. It reads the log after the snapshot backwards, as far as its
// second configuration entry, which Raft itself reads whole as it starts.
func committedAtStart(logs raft.LogStore, snaps raft.SnapshotStore) (*groupConfig, error) {
	var snap *groupConfig
	after := uint64(0)
	list, err := snaps.List()
	if err != nil {
		return nil, fmt.Errorf("store: list snapshots: %w", err)
	}
	if len(list) > 0 {
		snap = &groupConfig{index: list[0].ConfigurationIndex, servers: list[0].Configuration.Servers}
		after = list[0].Index
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("store: first log index: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("store: last log index: %w", err)
	}
	var found []*groupConfig
	for i := last; i > after && i >= first && len(found) < 2; i-- {
		var e raft.Log
		if err := logs.GetLog(i, &e); err != nil {
			return nil, fmt.Errorf("store: read log entry %d: %w", i, err)
		}
		if e.Type == raft.LogConfiguration {
			found = append(found, &groupConfig{index: e.Index, servers: raft.DecodeConfiguration(e.Data).Servers})
		}
	}
	switch {
	case len(found) == 2:
		return found[1], nil
	case snap != nil:
		return snap, nil
	case len(found) == 1:
		return found[0], nil // the group's first configuration
	}
	return nil, nil
}
