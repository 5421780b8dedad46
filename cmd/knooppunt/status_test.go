package main

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestRaftLine: status says what a replica without a leader, and a leader that misses replicas,
// mean for what the node does.
func TestRaftLine(t *testing.T) {
	for _, c := range []struct {
		st   *pb.StatusResponse
		want []string
		not  string
	}{
		{&pb.StatusResponse{RaftState: "Leader", Leader: "r1", AppliedIndex: 9, Voters: 3}, []string{"Leader (leader r1, applied index 9)"}, "reachable"},
		{&pb.StatusResponse{RaftState: "Candidate", AppliedIndex: 215}, []string{"NO LEADER", "writes are refused", "does not change"}, ""},
		{&pb.StatusResponse{RaftState: "Leader", Leader: "r1", Voters: 3, Unreachable: []string{"r2 (last answered 10s ago)"}},
			[]string{"2 of 3 replicas reachable, not r2 (last answered 10s ago)", "one more failure stops writes"}, ""},
		{&pb.StatusResponse{RaftState: "Leader", Leader: "r1", Voters: 5, Unreachable: []string{"r5 (never answered in this term)"}},
			[]string{"4 of 5 replicas reachable"}, "one more failure"},
	} {
		got := raftLine(c.st)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("raftLine(%v) = %q, want it to say %q", c.st, got, w)
			}
		}
		if c.not != "" && strings.Contains(got, c.not) {
			t.Errorf("raftLine(%v) = %q, want no %q", c.st, got, c.not)
		}
	}
}

// TestPrintPeerStatesNamesWhoIsMissing: a partial picture names the peers that did not answer,
// and one whose copy is still catching up.
func TestPrintPeerStatesNamesWhoIsMissing(t *testing.T) {
	var b strings.Builder
	printPeerStates(&b, nil, []*pb.PeerStatus{
		{Peer: "lcvs", State: "unreachable", CacheAgeMs: 180000, Error: "cannot connect"},
		{Peer: "ncc", State: "answered"},
		{Peer: "ggd", State: "answered", CatchingUpSince: timestamppb.Now()},
	}, true, false)
	out := b.String()
	for _, want := range []string{"served from cache, 3m0s old", "PARTIAL: lcvs did not answer", "BEHIND: this node is still taking in what ggd shares", "catching up since"} {
		if !strings.Contains(out, want) {
			t.Errorf("the peers' table lacks %q:\n%s", want, out)
		}
	}
}

// TestPrintSearchSaysTheIndexIsBehind: a text search made while the full-text index was still
// taking in writes says so, in the table and in -o json.
func TestPrintSearchSaysTheIndexIsBehind(t *testing.T) {
	resp := &pb.SearchResponse{TextPending: 6312}
	var b strings.Builder
	if err := printSearch(&b, "", resp, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "still taking in 6312 writes") {
		t.Errorf("search table:\n%s", b.String())
	}
	b.Reset()
	if err := printSearch(&b, "json", resp, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"text_pending": 6312`) {
		t.Errorf("search -o json:\n%s", b.String())
	}
}

// TestPrintPictureMarksCachedEntries: an entry of a source that does not answer now is marked
// CACHED, and the sums say how many such entries they count.
func TestPrintPictureMarksCachedEntries(t *testing.T) {
	resp := &pb.PictureResponse{Crisis: "c",
		Entries: []*pb.PictureEntry{
			{Kind: "shelter.capacity", Region: "VR09", Key: "Utrecht", Source: "lcvs.crisis.test", Record: &pb.Record{Id: "u", Body: []byte(`{"beds_free":3}`)}},
			{Kind: "shelter.capacity", Region: "VR09", Key: "Zeist", Source: "vr.crisis.test", Record: &pb.Record{Id: "z", Body: []byte(`{"beds_free":4}`)}},
		},
		Aggregates: []*pb.Aggregate{{Kind: "shelter.capacity", Field: "beds_free", Region: "VR09", Sum: 7, Records: 2}}}
	now := &pb.SearchResponse{Partial: true, Peers: []*pb.PeerStatus{{Peer: "lcvs", TrustDomain: "lcvs.crisis.test", State: "unreachable"}}}
	var b strings.Builder
	if err := printPicture(&b, "", resp, nil, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	var utrecht, zeist string
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.Contains(line, "Utrecht"):
			utrecht = line
		case strings.Contains(line, "Zeist"):
			zeist = line
		}
	}
	if !strings.Contains(utrecht, "CACHED") || strings.Contains(zeist, "CACHED") || !strings.Contains(out, "The sums count 1 entries marked CACHED") {
		t.Errorf("the picture with lcvs unreachable:\n%s", out)
	}
}
