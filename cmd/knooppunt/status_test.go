package main

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// noPeers answers PeerService List with no peers.
type noPeers struct {
	pb.UnimplementedPeerServiceServer
}

func (noPeers) List(context.Context, *pb.ListPeersRequest) (*pb.ListPeersResponse, error) {
	return &pb.ListPeersResponse{}, nil
}

// deniedWebhooks and deniedRecords refuse List, as the role table does for a role that may not.
type deniedWebhooks struct {
	pb.UnimplementedWebhookServiceServer
}

func (deniedWebhooks) List(context.Context, *pb.ListWebhooksRequest) (*pb.ListWebhooksResponse, error) {
	return nil, status.Error(codes.PermissionDenied, "not for this role")
}

type deniedRecords struct {
	pb.UnimplementedRecordServiceServer
}

func (deniedRecords) List(context.Context, *pb.ListRequest) (*pb.ListResponse, error) {
	return nil, status.Error(codes.PermissionDenied, "not for this role")
}

// fakeNode serves the services register registers on a unix socket of its own, and returns a
// client connection to it.
func fakeNode(t *testing.T, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("unix", filepath.Join(shortDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("unix://"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestStatusSaysWhatTheRoleMayNotRead: status -o json keeps its shape whoever asks: a list the
// caller may read and that is empty is [], one it may not read is null and named in
// not_visible; the table names those too, apart from an empty part.
func TestStatusSaysWhatTheRoleMayNotRead(t *testing.T) {
	conn := fakeNode(t, func(srv *grpc.Server) {
		pb.RegisterPeerServiceServer(srv, noPeers{})
		pb.RegisterWebhookServiceServer(srv, deniedWebhooks{})
		pb.RegisterRecordServiceServer(srv, deniedRecords{})
	})
	ops := operations(t.Context(), conn)
	if err := ops.err(); err != nil {
		t.Fatalf("parts refused to the role are not errors: %v", err)
	}
	doc := map[string]any{}
	ops.addJSON(doc)
	got, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"firing":null,"not_visible":["webhooks","firing"],"peers":[],"webhooks":null}`; string(got) != want {
		t.Errorf("status -o json parts:\n%s\nwant\n%s", got, want)
	}
	var table strings.Builder
	tw := newTable(&table)
	ops.print(tw)
	tw.Flush()
	if want := "peers      0\nnot shown  webhooks, firing: your role may not read them\n"; table.String() != want {
		t.Errorf("status table parts:\n%q\nwant\n%q", table.String(), want)
	}
}

// TestRaftLine: status says what a replica without a leader, and a leader that misses replicas,
// mean for what the node does.
func TestRaftLine(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		st   *pb.StatusResponse
		want []string
		not  string
	}{
		{&pb.StatusResponse{RaftState: "Leader", Leader: "r1", AppliedIndex: 9, Voters: 3}, []string{"Leader (leader r1, applied index 9)"}, "reachable"},
		{&pb.StatusResponse{RaftState: "Candidate", AppliedIndex: 215}, []string{"NO LEADER", "writes are refused", "does not change"}, ""},
		{&pb.StatusResponse{RaftState: "Candidate", StartedAt: timestamppb.New(now.Add(-5 * time.Minute))},
			[]string{"NO LEADER, none since it started 5m0s ago", "no majority of its group, or it was removed while it was down"}, node.NotMember},
		{&pb.StatusResponse{RaftState: "Follower", StartedAt: timestamppb.New(now.Add(-time.Hour)), LeaderSeenAt: timestamppb.New(now.Add(-90 * time.Second))},
			[]string{"Follower, NO LEADER, none for 1m30s (applied index 0)"}, "since it started"},
		{&pb.StatusResponse{RaftState: "Leader", Leader: "r1", Voters: 3, Unreachable: []string{"r2 (last answered 10s ago)"}},
			[]string{"2 of 3 replicas reachable, not r2 (last answered 10s ago)", "one more failure stops writes"}, ""},
		{&pb.StatusResponse{RaftState: "Leader", Leader: "r1", Voters: 5, Unreachable: []string{"r5 (never answered in this term)"}},
			[]string{"4 of 5 replicas reachable"}, "one more failure"},
		// A replica that cannot write its log blames its disk, not its group (review H, F8).
		{&pb.StatusResponse{RaftState: "Follower", AppliedIndex: 561, RaftLogError: "no space left on device", RaftLogErrorAt: timestamppb.New(now.Add(-time.Minute))},
			[]string{"Follower, leader none (applied index 561): THE RAFT LOG CANNOT BE WRITTEN since ", ": no space left on device: free space"}, "majority"},
		// A replica that cannot restore its leader's snapshot says so, with its leader (review AH, AH2).
		{&pb.StatusResponse{RaftState: "Follower", Leader: "r2", AppliedIndex: 9, SnapshotRefused: "db: restore: snapshot is not a knooppunt database: schema version 29, want 1 to 28",
			SnapshotRefusedAt: timestamppb.New(now.Add(-time.Minute))},
			[]string{"Follower, leader r2 (applied index 9): THIS REPLICA CANNOT RESTORE ITS LEADER'S SNAPSHOT since ", ": schema version 29, want 1 to 28: it takes in nothing more", "upgrade this replica"}, "(leader r2, applied"},
		// A replica that started empty says it asks for no vote, with a leader or without.
		{&pb.StatusResponse{RaftState: "Follower", Leader: "r1", AppliedIndex: 40, CatchingUp: true},
			[]string{"Follower (leader r1, applied index 40); catching up: started on an empty Raft directory, or on a log that lost entries, it asks for no vote"}, "NO LEADER"},
		{&pb.StatusResponse{RaftState: "Candidate", AppliedIndex: 22, CatchingUp: true, LeaderSeenAt: timestamppb.New(now.Add(-time.Minute))},
			[]string{"Candidate, NO LEADER, none for 1m0s (applied index 22), CATCHING UP:", "cannot tell that it holds all the group committed, so it asks for no vote"}, "no majority"},
	} {
		got := raftLine(c.st, now)
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

// TestNotAMemberIsSaidSo: a replica outside its group's configuration (removed, or waiting to be
// joined) is said to be so by status, whatever the caller's role, and by cluster status, not to
// reach no majority, and neither prints an empty leader.
func TestNotAMemberIsSaidSo(t *testing.T) {
	removed := &pb.ClusterStatusResponse{Replica: "r3", State: "Follower", AppliedIndex: 11, Replicas: []*pb.Replica{
		{Id: "r1", Suffrage: "Voter"}, {Id: "r2", Suffrage: "Voter"}}}
	waiting := &pb.ClusterStatusResponse{Replica: "r4", State: "Follower"}
	got := raftLine(&pb.StatusResponse{RaftState: "Follower", AppliedIndex: 11, NotMember: true}, time.Now())
	if want := "Follower (applied index 11), " + node.NotMember; !strings.HasPrefix(got, want) || strings.Contains(got, "NO LEADER") || strings.Contains(got, "majority") {
		t.Errorf("status of a replica outside its group: %q, want %q and no NO LEADER", got, want)
	}
	for _, c := range []struct {
		st        *pb.ClusterStatusResponse
		want, not []string
	}{
		{removed, []string{"replica r3 is Follower; " + node.NotMember + "; applied 11"}, []string{"leader ;", "no replica leads", "Only the leader"}},
		{waiting, []string{"replica r4 is Follower; " + node.NotMember + "; applied 0"}, []string{"leader ;", "ID  "}},
		{&pb.ClusterStatusResponse{Replica: "r1", State: "Follower", Replicas: []*pb.Replica{{Id: "r1"}, {Id: "r2"}, {Id: "r3"}}},
			[]string{"replica r1 is Follower; no leader known; applied 0", "no replica leads just now"}, []string{"leader ;", node.NotMember, "WRITES REFUSED"}},
		// A replica catching up says so, and, with no leader, what to start (review AJ, M4).
		{&pb.ClusterStatusResponse{Replica: "r1", State: "Candidate", CatchingUp: true, AppliedIndex: 1152, Replicas: []*pb.Replica{{Id: "r1"}, {Id: "r2"}, {Id: "r3"}}},
			[]string{"replica r1 is Candidate, CATCHING UP (started on an empty Raft directory, or on a log that lost entries", "applied 1152", "this one, catching up, asks for no vote: start the replica that led it"}, []string{"ask again in a moment"}},
		{&pb.ClusterStatusResponse{Replica: "r1", State: "Follower", Leader: "r2", CatchingUp: true, Replicas: []*pb.Replica{{Id: "r1"}, {Id: "r2", Leader: true}, {Id: "r3"}}},
			[]string{"replica r1 is Follower, CATCHING UP", "leader r2", "ask r2"}, []string{"start the replica"}},
		// A leader says which replicas keep it from taking writes (review V, V2).
		{&pb.ClusterStatusResponse{Replica: "r1", State: "Leader", Leader: "r1", ApplyLevel: 2, Replicas: []*pb.Replica{{Id: "r1", Leader: true}, {Id: "r2", OlderRelease: true}, {Id: "r3"}}},
			[]string{"WRITES REFUSED: r2 runs an earlier knooppunt release than the leader", "upgrade it"}, []string{"r3 run", "NO API ADDRESS"}},
		// A replica the answering one's raft.servers does not name (review AA, AA6).
		{&pb.ClusterStatusResponse{Replica: "r1", State: "Follower", Leader: "r4", Replicas: []*pb.Replica{{Id: "r1"}, {Id: "r2"}, {Id: "r4", Leader: true, NoApiAddress: true}}},
			[]string{"NO API ADDRESS for r4 in the raft.servers of r1: a write r1 forwards while one of them leads fails; add them to raft.servers there (docs/cluster.md)."}, nil},
		// A replica that cannot restore the leader's snapshots, on the leader and on itself
		// (review AH, AH2).
		{&pb.ClusterStatusResponse{Replica: "r2", State: "Leader", Leader: "r2", Replicas: []*pb.Replica{{Id: "r1", SnapshotRefused: "schema version 29, want 1 to 28"}, {Id: "r2", Leader: true}}},
			[]string{"SNAPSHOT REFUSED: r1 cannot restore the leader's snapshots (schema version 29, want 1 to 28): it takes in nothing more, and says NOT_SERVING. A snapshot of a newer release: upgrade it."}, []string{"this replica"}},
		{&pb.ClusterStatusResponse{Replica: "r1", State: "Follower", Leader: "r2", SnapshotRefused: "schema version 29, want 1 to 28", Replicas: []*pb.Replica{{Id: "r1"}, {Id: "r2", Leader: true}}},
			[]string{"SNAPSHOT REFUSED: this replica, r1, cannot restore its leader's snapshots (schema version 29, want 1 to 28)"}, nil},
	} {
		var b strings.Builder
		if err := printCluster(&b, "table", c.st); err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("cluster status of %v:\n%s\nwant %q", c.st, b.String(), w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(b.String(), n) {
				t.Errorf("cluster status of %v:\n%s\nwant no %q", c.st, b.String(), n)
			}
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

// TestPrintSearchNamesTheFileMatched: a snippet from an attachment names the file, in the
// MATCH column and in -o json; one from the record's text names none.
func TestPrintSearchNamesTheFileMatched(t *testing.T) {
	resp := &pb.SearchResponse{Hits: []*pb.SearchHit{
		{Record: &pb.Record{Id: "richtlijn-1", Origin: "ncc.crisis.test"}, Source: "ncc", Snippet: "Registreer in de «BRP».", SnippetFile: "Richtlijn aankomst.pdf"},
		{Record: &pb.Record{Id: "sitrep-1", Origin: "vr.crisis.test"}, Snippet: "Geen «BRP» storing."},
	}}
	var b strings.Builder
	if err := printSearch(&b, "", resp, nil); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(lineWith(out, "richtlijn-1"), "in Richtlijn aankomst.pdf: Registreer in de «BRP».") || strings.Contains(lineWith(out, "sitrep-1"), " in ") {
		t.Errorf("search table:\n%s", out)
	}
	b.Reset()
	if err := printSearch(&b, "json", resp, nil); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); strings.Count(out, `"snippet_file"`) != 1 || !strings.Contains(out, `"snippet_file": "Richtlijn aankomst.pdf"`) {
		t.Errorf("search -o json:\n%s", out)
	}
}

// TestPrintPictureMarksCachedEntries: an entry of a source that does not answer now is marked
// CACHED, and the sums say how many such entries they count: those of the kinds they add up.
func TestPrintPictureMarksCachedEntries(t *testing.T) {
	resp := &pb.PictureResponse{Crisis: "c",
		Entries: []*pb.PictureEntry{
			{Kind: "shelter.capacity", Region: "VR09", Key: "Utrecht", Source: "lcvs.crisis.test", Record: &pb.Record{Id: "u", Body: []byte(`{"beds_free":3}`)}},
			{Kind: "shelter.capacity", Region: "VR09", Key: "Zeist", Source: "vr.crisis.test", Record: &pb.Record{Id: "z", Body: []byte(`{"beds_free":4}`)}},
			{Kind: "qa", Region: "NL", Key: "qa-1", Source: "lcvs.crisis.test", Record: &pb.Record{Id: "qa-1", Body: []byte(`{"question":"Werk?"}`)}},
		},
		Aggregates: []*pb.Aggregate{{Kind: "shelter.capacity", Field: "beds_free", Region: "VR09", Sum: 7, Records: 2}}}
	resp.Partial, resp.Peers = true, []*pb.PeerStatus{{Peer: "lcvs", TrustDomain: "lcvs.crisis.test", State: "unreachable", Count: 2}}
	var b strings.Builder
	if err := printPicture(&b, "", resp, nil); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	utrecht, zeist := lineWith(out, "Utrecht"), lineWith(out, "Zeist")
	if !strings.Contains(utrecht, "CACHED") || strings.Contains(zeist, "CACHED") || !strings.Contains(lineWith(out, "qa-1"), "CACHED") || !strings.Contains(out, "The sums count 1 entries marked CACHED") {
		t.Errorf("the picture with lcvs unreachable:\n%s", out)
	}
	// -o json says it of each entry, and of each peer its trust domain (the entries' source) and
	// its entries in the picture.
	b.Reset()
	if err := printPicture(&b, "json", resp, nil); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Entries []struct {
			Key    string `json:"key"`
			Cached bool   `json:"cached"`
		} `json:"entries"`
		Peers []struct {
			TrustDomain string `json:"trust_domain"`
			Count       int64  `json:"count"`
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(b.String()), &doc); err != nil {
		t.Fatal(err)
	}
	cached := map[string]bool{}
	for _, e := range doc.Entries {
		cached[e.Key] = e.Cached
	}
	if !cached["Utrecht"] || cached["Zeist"] || !cached["qa-1"] || len(doc.Peers) != 1 || doc.Peers[0].TrustDomain != "lcvs.crisis.test" || doc.Peers[0].Count != 2 {
		t.Errorf("picture -o json: cached %v, peers %+v\n%s", cached, doc.Peers, b.String())
	}
}

// TestPrintPictureMarksShortenedEntries: an entry whose long fields the picture left out to stay
// within its bound is marked SHORTENED with those fields, a note says how to see it whole, and
// -o json names them.
func TestPrintPictureMarksShortenedEntries(t *testing.T) {
	resp := &pb.PictureResponse{Crisis: "c", Entries: []*pb.PictureEntry{
		{Kind: "sitrep", Region: "NL", Key: "s1", Source: "ncc.crisis.test", Record: &pb.Record{Id: "s1", Body: []byte(`{"title":"Verslag 1"}`)}, FieldsLeftOut: []string{"summary"}},
		{Kind: "sitrep", Region: "NL", Key: "s2", Source: "ncc.crisis.test", Record: &pb.Record{Id: "s2", Body: []byte(`{"title":"Verslag 2","summary":"kort"}`)}},
	}}
	var b strings.Builder
	if err := printPicture(&b, "", resp, nil); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	s1, s2 := lineWith(out, "Verslag 1"), lineWith(out, "Verslag 2")
	if !strings.Contains(s1, "SHORTENED:summary") || strings.Contains(s2, "SHORTENED") || !strings.Contains(out, "1 entries are SHORTENED") {
		t.Errorf("the picture with one entry shortened:\n%s", out)
	}
	b.Reset()
	if err := printPicture(&b, "json", resp, nil); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Entries []struct {
			FieldsLeftOut []string `json:"fields_left_out"`
		}
	}
	if err := json.Unmarshal([]byte(b.String()), &doc); err != nil || len(doc.Entries) != 2 || !slices.Equal(doc.Entries[0].FieldsLeftOut, []string{"summary"}) || doc.Entries[1].FieldsLeftOut != nil {
		t.Errorf("picture -o json (%v):\n%s", err, b.String())
	}
}

// lineWith is the first line of out that holds word, or "".
func lineWith(out, word string) string {
	for line := range strings.Lines(out) {
		if strings.Contains(line, word) {
			return line
		}
	}
	return ""
}

// TestRoughly: a span reads in days from two days on, in hours and minutes from an hour on,
// else to the second.
func TestRoughly(t *testing.T) {
	for d, want := range map[time.Duration]string{
		2159*time.Hour + 58*time.Minute + 54*time.Second: "89 days",
		48 * time.Hour:                    "2 days",
		47*time.Hour + 59*time.Minute:     "47h59m",
		time.Hour + 30*time.Second:        "1h1m",
		42*time.Second + time.Millisecond: "42s",
	} {
		if got := roughly(d); got != want {
			t.Errorf("roughly(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestDiskSize: free disk in GiB from a GiB up, else in MiB, so that a disk nearly full does
// not read 0.0 GiB whatever is left.
func TestDiskSize(t *testing.T) {
	for b, want := range map[int64]string{
		5 << 30:   "5.0 GiB",
		1 << 30:   "1.0 GiB",
		40 << 20:  "40.0 MiB",
		5_270_000: "5.0 MiB",
		0:         "0.0 MiB",
	} {
		if got := diskSize(b); got != want {
			t.Errorf("diskSize(%d) = %q, want %q", b, got, want)
		}
	}
}

// TestStoreLine: below the reserve, status says that writes are refused, and why.
func TestStoreLine(t *testing.T) {
	if got, want := storeLine(&pb.StatusResponse{DbBytes: 3 << 20, DiskFreeBytes: 5 << 30, DiskReserveBytes: 256 << 20}), "3.0 MiB; 5.0 GiB free on its disk"; got != want {
		t.Errorf("with room: %q, want %q", got, want)
	}
	got := storeLine(&pb.StatusResponse{DbBytes: 3 << 20, DiskFreeBytes: 100 << 20, DiskReserveBytes: 256 << 20})
	if want := "3.0 MiB; ONLY 100.0 MiB FREE ON ITS DISK, under the reserve of 256.0 MiB (limits.disk_reserve_mib): as leader it refuses writes that add data"; !strings.HasPrefix(got, want) {
		t.Errorf("under the reserve: %q, want %q", got, want)
	}
}

// TestPrintRecordsMarksDocumentsNotInForce: record list marks a replaced or expired document as
// search does, and leaves one in force unmarked.
func TestPrintRecordsMarksDocumentsNotInForce(t *testing.T) {
	recs := []*pb.Record{
		{Id: "qa-oud", Kind: "qa", Crisis: "c", Region: "NL", Classification: pb.Classification_PUBLIC, Version: 2, Body: []byte(`{"question":"Mag ik werken?","answer":"Ja.","superseded_by":"qa-nieuw"}`)},
		{Id: "qa-verlopen", Kind: "qa", Crisis: "c", Region: "NL", Classification: pb.Classification_PUBLIC, Version: 1, Body: []byte(`{"question":"Waar?","answer":"Daar.","valid_until":"2020-01-01"}`)},
		{Id: "qa-nieuw", Kind: "qa", Crisis: "c", Region: "NL", Classification: pb.Classification_PUBLIC, Version: 1, Body: []byte(`{"question":"Mag ik werken?","answer":"Ja, met een vergunning."}`)},
	}
	var out, errOut strings.Builder
	if err := printRecords(&out, &errOut, recs, "", nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"qa-oud (SUPERSEDED) ", "qa-verlopen (EXPIRED) ", "\nqa-nieuw "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("record list lacks %q:\n%s", want, out.String())
		}
	}
}

// TestPrintPictureSaysWhatDisagreeingSourcesReport: under a row flagged DISAGREES, the table
// says for each such source what it reports instead, its figures first, with its record's id,
// version and age, and the columns of the rows around it stay aligned; one whose record the
// answer left out is named with the search that shows it; -o json gives the records under the
// entry.
func TestPrintPictureSaysWhatDisagreeingSourcesReport(t *testing.T) {
	lcvs := &pb.Record{Id: "shelter-goes", Origin: "lcvs.crisis.test", Version: 3, UpdatedAt: timestamppb.New(time.Now().Add(-2 * time.Hour)),
		Body: []byte(`{"municipality":"Goes","location":"Sporthal","beds_total":40,"beds_free":1}`)}
	resp := &pb.PictureResponse{Crisis: "oekraine", Entries: []*pb.PictureEntry{
		{Kind: "shelter.capacity", Region: "VR19", Key: "Goes", Source: "vr-zeeland.crisis.test", Conflict: []string{"lcvs.crisis.test"}, Disagreeing: []*pb.Record{lcvs},
			ConflictFields: []string{"beds_free", "location"}, FiguresDisagree: true,
			Record: &pb.Record{Id: "opvang-goes", Crisis: "oekraine", Body: []byte(`{"municipality":"Goes","beds_total":40,"beds_free":15}`)}},
		{Kind: "shelter.capacity", Region: "VR19", Key: "Hulst", Source: "vr-zeeland.crisis.test", Conflict: []string{"lcvs.crisis.test"},
			ConflictFields: []string{"beds_total"}, FiguresDisagree: true,
			Record: &pb.Record{Id: "opvang-hulst", Crisis: "oekraine", Body: []byte(`{"municipality":"Hulst","beds_free":4}`)}},
		// The same figures, with a field withheld and a note: it differs, and does not disagree.
		{Kind: "shelter.capacity", Region: "VR19", Key: "Middelburg", Source: "vr-zeeland.crisis.test", Conflict: []string{"lcvs.crisis.test"},
			ConflictFields: []string{"beds_total", "notes"}, Disagreeing: []*pb.Record{{Id: "shelter-middelburg", Origin: "lcvs.crisis.test", Version: 1,
				UpdatedAt: timestamppb.New(time.Now().Add(-time.Hour)), Body: []byte(`{"municipality":"Middelburg","beds_free":7,"beds_total":50,"notes":"x"}`)}},
			Record: &pb.Record{Id: "opvang-middelburg", Crisis: "oekraine", Body: []byte(`{"municipality":"Middelburg","beds_free":7}`)}},
	}, Aggregates: []*pb.Aggregate{{Kind: "shelter.capacity", Field: "beds_free", Region: "VR19", Sum: 26, Records: 3}, {Kind: "shelter.capacity", Field: "beds_total", Region: "VR19", Sum: 40, Records: 1}}}
	var b strings.Builder
	if err := printPicture(&b, "", resp, nil); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	goes := lineWith(out, "  Goes  ")
	says := "    lcvs.crisis.test says: beds_free 1 · beds_total 40 · location Sporthal (shelter-goes, v3, 2h0m ago)\n"
	if !strings.Contains(goes, "DISAGREES:lcvs.crisis.test") || !strings.Contains(out, goes+says) {
		t.Errorf("the row of Goes is not followed by what lcvs reports:\n%s", out)
	}
	if mb := lineWith(out, "  Middelburg  "); strings.Contains(mb, "DISAGREES") || !strings.Contains(mb, "DIFFERS:lcvs.crisis.test:beds_total,notes") ||
		!strings.Contains(out, mb+"    lcvs.crisis.test says: beds_free 7 · beds_total 50") {
		t.Errorf("the row of Middelburg, whose figures agree, is not flagged DIFFERS with what lcvs reports:\n%s", out)
	}
	hulst := lineWith(out, "  Hulst  ")
	if !strings.Contains(out, hulst+"    lcvs.crisis.test says otherwise: its record was left out to keep the picture within its bound; `knooppunt search --origin lcvs.crisis.test --crisis oekraine --kind shelter.capacity --region VR19` shows it\n") {
		t.Errorf("the row of Hulst does not say how to see what lcvs reports:\n%s", out)
	}
	// The summaries start in one column, in the header and in every row.
	col := strings.Index(lineWith(out, "SUMMARY"), "SUMMARY")
	for _, row := range []string{goes, hulst, lineWith(out, "  Middelburg  ")} {
		if strings.Index(row, "beds_free") != col {
			t.Errorf("a row's summary does not start under SUMMARY (column %d):\n%s", col, out)
		}
	}
	b.Reset()
	if err := printPicture(&b, "json", resp, nil); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Entries []struct {
			Disagreeing []struct {
				Origin string         `json:"origin"`
				ID     string         `json:"id"`
				Body   map[string]any `json:"body"`
			} `json:"disagreeing"`
			ConflictFields  []string `json:"conflict_fields"`
			FiguresDisagree bool     `json:"figures_disagree"`
		}
	}
	if err := json.Unmarshal([]byte(b.String()), &doc); err != nil || len(doc.Entries) != 3 || len(doc.Entries[0].Disagreeing) != 1 ||
		doc.Entries[0].Disagreeing[0].Origin != "lcvs.crisis.test" || doc.Entries[0].Disagreeing[0].Body["beds_free"] != 1.0 || doc.Entries[1].Disagreeing != nil ||
		!doc.Entries[0].FiguresDisagree || doc.Entries[2].FiguresDisagree || strings.Join(doc.Entries[2].ConflictFields, ",") != "beds_total,notes" {
		t.Errorf("picture -o json (%v):\n%s", err, b.String())
	}
}
