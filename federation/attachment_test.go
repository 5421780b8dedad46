package federation_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestAttachmentTravelsUnderThePolicy: a guidance record of a names a PDF. b is granted the record
// whole, c with body.attachments redacted. b fetches the file, and a text search from b finds a
// word that only the PDF holds, at a and in b's cache, with a snippet from the PDF's text. c holds
// the record but never the file, is refused the file when it asks, and its text search for the
// same word finds nothing: the redacted file never decides a match.
func TestAttachmentTravelsUnderThePolicy(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 3})
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	pdf := attach.SimplePDF("Handreiking opvang Oekraïense ontheemden", []string{
		"Werkgevers melden arbeid bij het UWV; een tewerkstellingsvergunning is niet nodig.",
		"Gemeenten regelen de noodopvang in afstemming met de veiligheidsregio.",
	})
	sum := sha256.Sum256(pdf)
	hash := hex.EncodeToString(sum[:])
	att, err := attach.Upload(fedtest.Call(t), pb.NewAttachmentServiceClient(a.Local(t)), "handreiking.pdf", bytes.NewReader(pdf), int64(len(pdf)), hash, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"title": "Handreiking opvang", "text": "Zie de bijlage.", "attachments": []*pb.Attachment{att}})
	a.Approve(t, policyDoc("guidance-to-b", spiffeOf(b), "guidance", "public", ""))
	a.Approve(t, policyDoc("guidance-to-c", spiffeOf(c), "guidance", "public", "redact: [body.attachments]\n"))
	a.Put(t, &pb.Record{Id: "handreiking", Kind: "guidance", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC, Body: body})
	waitHeld(t, b, "oekraine", a.TD.Name(), map[string]int64{"handreiking": 1}, "b holds the guidance")
	waitHeld(t, c, "oekraine", a.TD.Name(), map[string]int64{"handreiking": 1}, "c holds the guidance")

	fedtest.Eventually(t, 20*time.Second, "b fetched the PDF", func() (bool, string) {
		var out bytes.Buffer
		err := attach.Download(fedtest.Call(t), pb.NewAttachmentServiceClient(b.Local(t)), a.TD.Name()+"/handreiking", hash, nil, &out, nil)
		return err == nil, fmt.Sprint(err)
	})
	// The peer's name stands for its trust domain, as in search --origin and export (review G,
	// G4: it said the record named no file).
	var byName bytes.Buffer
	if err := attach.Download(fedtest.Call(t), pb.NewAttachmentServiceClient(b.Local(t)), a.Name+"/handreiking", hash, nil, &byName, nil); err != nil || !bytes.Equal(byName.Bytes(), pdf) {
		t.Errorf("b's file of %s/handreiking by the peer's name: %d bytes, %v; want the PDF", a.Name, byName.Len(), err)
	}
	// A record of the peer that b does not hold is said as such, not as a file it does not name.
	err = attach.Download(fedtest.Call(t), pb.NewAttachmentServiceClient(b.Local(t)), a.Name+"/geen-record", hash, nil, &byName, nil)
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "record_id: this node holds no record geen-record of "+a.TD.Name()+" in this mode") {
		t.Errorf("b's file of a record it does not hold: %v", err)
	}

	// The word is in the PDF only. From b: a answers over its own record, PDF included, and
	// b's cache holds the text of the file it fetched. (Waited for in the databases: a search
	// asked again and again would be over a's rate limit for b.)
	for _, o := range []*fedtest.Org{a, b} {
		fedtest.Eventually(t, 20*time.Second, o.Name+" took the PDF's text in", func() (bool, string) {
			state, err := o.Node.DB().FileTextState(context.Background(), hash)
			return state == "indexed", fmt.Sprintf("%q (%v)", state, err)
		})
	}
	ids, hits := textHits(t, b, &pb.Filter{Text: "tewerkstellingsvergunning"})
	if snippet := hits[a.Name+"/handreiking"].GetSnippet(); !slices.Equal(ids[a.Name], []string{"handreiking"}) || !strings.Contains(snippet, "«tewerkstellingsvergunning»") {
		t.Errorf("b finds %v, snippet %q; want a's handreiking by a word of its PDF", ids, snippet)
	}
	// The snippet says which file it is from: the word is not in the record's own text.
	if got := hits[a.Name+"/handreiking"].GetSnippetFile(); got != "handreiking.pdf" {
		t.Errorf("b's hit at a has snippet_file %q, want handreiking.pdf", got)
	}
	_, own := textHits(t, a, &pb.Filter{Text: "tewerkstellingsvergunning"})
	if got := own["/handreiking"].GetSnippetFile(); got != "handreiking.pdf" {
		t.Errorf("a's own hit has snippet_file %q, want handreiking.pdf", got)
	}
	// A word of the record's title (the PDF's title holds it too): the snippet is the title's.
	_, own = textHits(t, a, &pb.Filter{Text: "handreiking"})
	if h := own["/handreiking"]; h == nil || h.SnippetFile != "" {
		t.Errorf("a's own hit for a word of its title: %v, want snippet_file empty", h)
	}
	var n int
	if _, err := b.Node.DB().CatchUpText(context.Background(), db.CatchUpBudget); err != nil {
		t.Fatal(err)
	}
	err = b.Node.DB().EachForeignTextMatch(context.Background(), a.TD.Name(), db.TextFilter{Terms: []string{"tewerkstellingsvergunning"}},
		func(db.Foreign) (bool, error) { n++; return true, nil })
	if err != nil || n != 1 {
		t.Errorf("b's cache finds the PDF's word in %d records (%v), want 1", n, err)
	}

	// b holds a's file, and may not pass it on: an own record of b's that names it is refused,
	// naming the field and a.
	bodyB, _ := json.Marshal(map[string]any{"title": "Doorgestuurd", "text": "x", "attachments": []*pb.Attachment{att}})
	_, err = pb.NewRecordServiceClient(b.Local(t)).Put(fedtest.Call(t), &pb.PutRequest{Record: &pb.Record{Id: "doorgestuurd", Kind: "guidance", Crisis: "oekraine", Region: "NL",
		Classification: pb.Classification_PUBLIC, Body: bodyB}})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "record.body.attachments[0].sha256: file "+hash+" came from "+a.TD.Name()+", a partner") {
		t.Errorf("b's own record naming a's file: %v, want FailedPrecondition naming the field and a", err)
	}
	// Such a record written before that refusal (here past the API, to b's store) does not pass
	// the file on either: c, granted the record by b, is refused the file, and b audits it.
	if _, err := b.Node.Store().Write(fedtest.Call(t), []*pb.Record{{Id: "doorgestuurd", Origin: b.TD.Name(), Kind: "guidance", Crisis: "oekraine", Region: "NL",
		Classification: pb.Classification_PUBLIC, Body: bodyB, UpdatedAt: timestamppb.Now()}}); err != nil {
		t.Fatal(err)
	}
	b.Approve(t, policyDoc("guidance-to-c", spiffeOf(c), "guidance", "public", ""))
	waitHeld(t, c, "oekraine", b.TD.Name(), map[string]int64{"doorgestuurd": 1}, "c holds b's record")
	fromB, err := pb.NewFederationServiceClient(identitytest.Dial(t, b.Addr, c.Replica, b.Bundle(), b.TD)).
		FetchFile(fedtest.Call(t), &pb.FetchFileRequest{RecordId: "doorgestuurd", Sha256: hash})
	if err == nil {
		_, err = fromB.Recv()
	}
	if status.Code(err) != codes.NotFound {
		t.Errorf("c fetches a's file from b: %v, want NOT_FOUND", err)
	}
	var passedOn bool
	for _, e := range b.Audit(t, db.AuditFederationDenied) {
		passedOn = passedOn || strings.Contains(e.Detail, "FetchFile") && strings.HasPrefix(e.Actor, spiffeOf(c))
	}
	if !passedOn {
		t.Errorf("b did not audit c's refused FetchFile of a's file")
	}

	// c: the record without its attachments, no file, refused when it asks, and no match.
	if _, err := c.Node.DB().FileInfo(context.Background(), hash); !errors.Is(err, db.ErrFileNotFound) {
		t.Fatalf("c holds the file whose field was redacted for it: %v", err)
	}
	stream, err := pb.NewFederationServiceClient(identitytest.Dial(t, a.Addr, c.Replica, a.Bundle(), a.TD)).
		FetchFile(fedtest.Call(t), &pb.FetchFileRequest{RecordId: "handreiking", Sha256: hash})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.NotFound {
		t.Fatalf("c fetches the redacted file: %v, want NOT_FOUND", err)
	}
	if ids, _ := textHits(t, c, &pb.Filter{Text: "tewerkstellingsvergunning"}); len(ids[a.Name]) != 0 {
		t.Errorf("c finds %v at a by a word of a file withheld from it", ids[a.Name])
	}
	if ids, hits := textHits(t, c, &pb.Filter{Text: "handreiking"}); !slices.Equal(ids[a.Name], []string{"handreiking"}) || hits[a.Name+"/handreiking"].GetSnippetFile() != "" {
		t.Errorf("c finds %v at a for the record's own title (snippet_file %q), want handreiking, from no file", ids[a.Name], hits[a.Name+"/handreiking"].GetSnippetFile())
	}
	var denied bool
	for _, e := range a.Audit(t, db.AuditFederationDenied) {
		denied = denied || strings.Contains(e.Detail, "FetchFile") && strings.HasPrefix(e.Actor, spiffeOf(c))
	}
	if !denied {
		t.Errorf("a did not audit c's refused FetchFile")
	}
}

// TestDownloadOfAConfidentialFileIsAudited (review AD, AD2): the file of a confidential record is
// read as the record is, and kept in the audit log with who read it: at the source, of its own
// record; at a partner that holds the record, of its copy, named by its origin. The partner's
// download was not audited.
func TestDownloadOfAConfidentialFileIsAudited(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	pdf := attach.SimplePDF("Draaiboek evacuatie", []string{"Verzamelpunten en routes, niet openbaar."})
	sum := sha256.Sum256(pdf)
	hash := hex.EncodeToString(sum[:])
	att, err := attach.Upload(fedtest.Call(t), pb.NewAttachmentServiceClient(a.Local(t)), "draaiboek.pdf", bytes.NewReader(pdf), int64(len(pdf)), hash, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"title": "Draaiboek evacuatie", "text": "Zie de bijlage.", "attachments": []*pb.Attachment{att}})
	a.Approve(t, policyDoc("guidance-to-b", spiffeOf(b), "guidance", "confidential", ""))
	a.Put(t, &pb.Record{Id: "draaiboek", Kind: "guidance", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_CONFIDENTIAL, Body: body})
	waitHeld(t, b, "oekraine", a.TD.Name(), map[string]int64{"draaiboek": 1}, "b holds the draaiboek")
	download := func(o *fedtest.Org, id string) error {
		var out bytes.Buffer
		return attach.Download(fedtest.Call(t), pb.NewAttachmentServiceClient(o.Local(t)), id, hash, nil, &out, nil)
	}
	fedtest.Eventually(t, 20*time.Second, "b fetched the PDF and serves it", func() (bool, string) {
		err := download(b, a.TD.Name()+"/draaiboek")
		return err == nil, fmt.Sprint(err)
	})
	if err := download(a, "draaiboek"); err != nil {
		t.Fatal(err)
	}
	for o, id := range map[*fedtest.Org]string{a: "draaiboek", b: a.TD.Name() + "/draaiboek"} {
		fedtest.Eventually(t, 10*time.Second, o.Name+" audits the download of "+id, func() (bool, string) {
			entries := o.Audit(t, db.AuditRecordRead)
			for _, e := range entries {
				var d struct {
					Via            string
					Classification string
					IDs            []string
				}
				if json.Unmarshal([]byte(e.Detail), &d) == nil && d.Via == "Download" && d.Classification == "confidential" && slices.Equal(d.IDs, []string{id}) && e.Actor == "local socket" {
					return true, ""
				}
			}
			return false, fmt.Sprintf("record.read entries: %v", entries)
		})
	}
}

// TestAttachmentFetchKeepsOutOfTheRecordsWay: with a byte budget that takes half a minute over a
// file, the records written after the one that names it reach the recipient at once; the file
// follows in the background.
func TestAttachmentFetchKeepsOutOfTheRecordsWay(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, Extra: func(name string) string {
		return "attachments:\n  fetch_bytes_per_second: 65536\n"
	}})
	a, b := f.Orgs[0], f.Orgs[1]
	data := make([]byte, 2<<20)
	copy(data, "%PDF-1.7\n")
	for i := 9; i < len(data); i++ {
		data[i] = byte(i * 7)
	}
	att, err := attach.Upload(fedtest.Call(t), pb.NewAttachmentServiceClient(a.Local(t)), "groot.pdf", bytes.NewReader(data), int64(len(data)), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Approve(t, policyDoc("all-to-b", spiffeOf(b), "guidance, sitrep", "internal", ""))
	body, _ := json.Marshal(map[string]any{"title": "Groot", "text": "bijlage", "attachments": []*pb.Attachment{att}})
	a.Put(t, &pb.Record{Id: "groot", Kind: "guidance", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC, Body: body})
	want := map[string]int64{"groot": 1}
	for i := range 5 {
		id := fmt.Sprintf("sitrep-%d", i)
		want[id] = a.Put(t, fedtest.Sitrep(id, "oekraine", pb.Classification_INTERNAL, "na de bijlage")).Version
	}
	start := time.Now()
	waitHeld(t, b, "oekraine", a.TD.Name(), want, "b holds the records written after the file's")
	if _, err := b.Node.DB().FileInfo(context.Background(), att.Sha256); !errors.Is(err, db.ErrFileNotFound) {
		t.Fatalf("b holds the file already (%v): the budget did not hold it back", err)
	}
	t.Logf("the records arrived in %s, before the file", time.Since(start))
	fedtest.Eventually(t, 10*time.Second, "the fetch of the file under way", func() (bool, string) {
		got := b.Metric(t, "knooppunt_federation_file_bytes_fetched_total", map[string]string{"peer": a.Name})
		return got > 0, fmt.Sprintf("%g bytes fetched", got)
	})
}

// TestFilesThatFailDoNotStopTheOthers: a peer's records name seventeen files; it cannot serve
// the sixteen that come first (the fetcher's batch), and serves the last. Files that keep
// failing wait their turn, and the one after them is fetched all the same.
func TestFilesThatFailDoNotStopTheOthers(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 1})
	a := f.Orgs[0]
	content := []byte("het ene bestand dat de partner wel heeft")
	sum := sha256.Sum256(content)
	good := hex.EncodeToString(sum[:])
	var hashes []string
	for i := range 16 {
		hashes = append(hashes, fmt.Sprintf("%064x", i+1)) // before good in sha256 order
	}
	hashes = append(hashes, good)
	p := &fakePeer{}
	var (
		mu    sync.Mutex
		asked = map[string]int{}
	)
	var named []namedFile
	for _, h := range hashes {
		named = append(named, namedFile{sha: h, name: "b.txt", size: len(content)})
	}
	p.subscribe = p.feedOfFiles(named)
	p.fetchFile = func(req *pb.FetchFileRequest, s grpc.ServerStreamingServer[pb.FileData]) error {
		mu.Lock()
		asked[req.Sha256]++
		mu.Unlock()
		if req.Sha256 != good {
			return status.Error(codes.NotFound, "no longer shared")
		}
		return s.Send(&pb.FileData{Data: content})
	}
	startFake(t, f, "bestanden", p)
	f.AddPeers(t, p.id.Peer(p.addr, "all"))
	fedtest.Eventually(t, 15*time.Second, "a fetches the file after the sixteen it cannot", func() (bool, string) {
		_, err := a.Node.DB().FileInfo(context.Background(), good)
		mu.Lock()
		defer mu.Unlock()
		return err == nil, fmt.Sprintf("%d files asked for, the good one %d times: %v", len(asked), asked[good], err)
	})
}

// TestFilesThisNodeDoesNotTakeAreNotFetched: a peer's records name a file over this node's
// attachments.max_bytes, a text file named as a script and a text file named as a PDF (review 22
// M2, M3). None of them is asked for (no chunk goes through Raft, no erasure follows), each is
// counted once, and none is tried again; a good file after them is fetched all the same.
func TestFilesThisNodeDoesNotTakeAreNotFetched(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 1, Extra: func(string) string {
		return "attachments:\n  max_bytes: 1048576\n"
	}})
	a := f.Orgs[0]
	content := []byte("het ene bestand dat deze node wel neemt")
	sum := sha256.Sum256(content)
	good := hex.EncodeToString(sum[:])
	files := []namedFile{
		{fmt.Sprintf("%064x", 1), "groot.txt", 3 << 20},
		{fmt.Sprintf("%064x", 2), "instructies.bat", len(content)},
		{fmt.Sprintf("%064x", 3), "rapport.pdf", len(content)},
		{good, "goed.txt", len(content)},
	}
	p := &fakePeer{}
	var (
		mu    sync.Mutex
		asked = map[string]int{}
	)
	p.subscribe = p.feedOfFiles(files)
	p.fetchFile = func(req *pb.FetchFileRequest, s grpc.ServerStreamingServer[pb.FileData]) error {
		mu.Lock()
		asked[req.Sha256]++
		mu.Unlock()
		return s.Send(&pb.FileData{Data: content})
	}
	startFake(t, f, "bestanden", p)
	f.AddPeers(t, p.id.Peer(p.addr, "all"))
	fedtest.Eventually(t, 15*time.Second, "a fetches the good file", func() (bool, string) {
		_, err := a.Node.DB().FileInfo(context.Background(), good)
		return err == nil, fmt.Sprint(err)
	})
	// Three fetcher passes (one every 2 s) later, nothing refused was asked for or counted again.
	deadline := time.Now().Add(6 * time.Second)
	for {
		mu.Lock()
		n := len(asked)
		mu.Unlock()
		refused := a.Metric(t, "knooppunt_federation_files_refused_total", nil)
		if n != 1 || refused > 3 {
			t.Fatalf("asked for %v, %g files refused; want only the good file asked for, and 3 refused once each", asked, refused)
		}
		if time.Now().After(deadline) {
			if refused != 3 {
				t.Fatalf("%g files refused, want 3", refused)
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, _, up, ch, _ := a.Node.DB().FileCounts(context.Background()); up != 0 || ch != 0 {
		t.Errorf("%d uploads, %d chunks staged: a refused file reached Raft", up, ch)
	}
}

// namedFile is a text file as a fake peer's record names it.
type namedFile struct {
	sha, name string
	size      int
}

// feedOfFiles is a fake peer's feed of one public sitrep per file, each naming its file, from the
// subscriber's cursor on; it then stays open.
func (p *fakePeer) feedOfFiles(files []namedFile) func(*pb.SubscribeRequest, grpc.ServerStreamingServer[pb.FeedEvent]) error {
	return func(req *pb.SubscribeRequest, s grpc.ServerStreamingServer[pb.FeedEvent]) error {
		for i := int(req.Cursor); i < len(files); i++ {
			body := fmt.Sprintf(`{"title":"bijlage %d","summary":"s","attachments":[{"sha256":%q,"size":%d,"media_type":"text/plain; charset=utf-8","filename":%q}]}`, i, files[i].sha, files[i].size, files[i].name)
			rec := &pb.Record{Id: fmt.Sprintf("bijlage-%d", i), Origin: p.id.TD.Name(), Kind: "sitrep", Crisis: "bestanden", Region: "NL",
				Classification: pb.Classification_PUBLIC, Version: 1, UpdatedAt: timestamppb.Now(), Body: []byte(body)}
			if err := s.Send(&pb.FeedEvent{Seq: int64(i + 1), Event: &pb.FeedEvent_Upsert{Upsert: &pb.SharedRecord{Record: rec}}}); err != nil {
				return err
			}
		}
		<-s.Context().Done()
		return nil
	}
}
