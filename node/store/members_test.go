package store

import (
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestCommittedAtStart: the configuration a replica takes as committed when it starts is the
// one before the newest configuration entry after its snapshot, since a change is proposed only
// once the one before it is committed; the snapshot's when the log after it holds one entry or
// none; the group's first when there is no snapshot and one entry. Entries the snapshot covers
// are not read: the trailing log behind a snapshot may hold older configurations.
func TestCommittedAtStart(t *testing.T) {
	conf := func(ids ...string) []byte {
		var c raft.Configuration
		for _, id := range ids {
			c.Servers = append(c.Servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(id), Suffrage: raft.Voter})
		}
		return raft.EncodeConfiguration(c)
	}
	type entry struct {
		index uint64
		conf  []byte // nil: a command
	}
	for _, tc := range []struct {
		name     string
		log      []entry
		snapshot uint64 // its last index; 0: none. Its configuration is of s1, s2 at index 2.
		want     []string
	}{
		{name: "empty"},
		{name: "the first configuration", log: []entry{{1, conf("a", "b", "c")}, {2, nil}, {3, nil}}, want: []string{"a", "b", "c"}},
		{name: "a change pending", log: []entry{{1, conf("a", "b", "c")}, {2, nil}, {3, conf("a", "c")}}, want: []string{"a", "b", "c"}},
		{name: "the one before the newest", log: []entry{{1, conf("a")}, {2, conf("a", "b")}, {3, nil}, {4, conf("a", "b", "c")}, {5, nil}}, want: []string{"a", "b"}},
		{name: "a snapshot alone", log: []entry{{2, conf("x")}, {3, nil}, {4, nil}}, snapshot: 4, want: []string{"s1", "s2"}},
		{name: "a snapshot and a change", log: []entry{{2, conf("x")}, {3, nil}, {4, nil}, {5, conf("s1")}}, snapshot: 4, want: []string{"s1", "s2"}},
		{name: "a snapshot and two changes", log: []entry{{3, nil}, {4, nil}, {5, conf("s1", "s2", "s3")}, {6, nil}, {7, conf("s1", "s3")}}, snapshot: 4, want: []string{"s1", "s2", "s3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			logs, err := openLog(dir, hclog.NewNullLogger(), quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer logs.Close()
			for _, e := range tc.log {
				l := &raft.Log{Index: e.index, Term: 1, Type: raft.LogCommand, Data: []byte("command")}
				if e.conf != nil {
					l.Type, l.Data = raft.LogConfiguration, e.conf
				}
				if err := logs.StoreLog(l); err != nil {
					t.Fatal(err)
				}
			}
			snaps, err := openSnapshots(dir, hclog.NewNullLogger(), quiet)
			if err != nil {
				t.Fatal(err)
			}
			if tc.snapshot > 0 {
				_, trans := raft.NewInmemTransport("s1") // the snapshot's meta names peers by their addresses
				sink, err := snaps.Create(raft.SnapshotVersionMax, tc.snapshot, 1, raft.DecodeConfiguration(conf("s1", "s2")), 2, trans)
				if err != nil {
					t.Fatal(err)
				}
				if err := sink.Close(); err != nil {
					t.Fatal(err)
				}
			}
			got, err := committedAtStart(logs, snaps)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			if got != nil {
				for _, s := range got.servers {
					ids = append(ids, string(s.ID))
				}
			}
			if !slices.Equal(ids, tc.want) {
				t.Fatalf("committed at start: %v, want %v", ids, tc.want)
			}
		})
	}
}
