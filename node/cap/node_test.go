package cap_test

import (
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/cap"
	"github.com/knooppunt/knooppunt/node/cap/captest"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/config"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

const sender = "meldkamer@vrzeeland.nl"

// alertDoc is a CAP alert of the sender: msgType, identifier, references, scope and headline
// vary.
func alertDoc(msgType, identifier, references, scope, headline string) string {
	refs := ""
	if references != "" {
		refs = "<references>" + references + "</references>"
	}
	return `<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>` + identifier + `</identifier>
  <sender>` + sender + `</sender>
  <sent>2026-12-03T09:15:00+01:00</sent>
  <status>Actual</status>
  <msgType>` + msgType + `</msgType>
  <scope>` + scope + `</scope>` + refs + `
  <info>
    <language>nl-NL</language>
    <category>Met</category>
    <event>Hoogwater</event>
    <urgency>Expected</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <headline>` + headline + `</headline>
    <area>
      <areaDesc>Walcheren</areaDesc>
      <polygon>51.60,3.40 51.60,3.75 51.45,3.75 51.45,3.40 51.60,3.40</polygon>
      <circle>51.50,3.61 5</circle>
      <geocode><valueName>veiligheidsregio</valueName><value>VR19</value></geocode>
    </area>
  </info>
</alert>`
}

func ref(identifier string) string { return sender + "," + identifier + ",2026-12-03T09:15:00+01:00" }

// TestUpdateAndCancelChains imports through a real node: an alert, an Update of it, an Update of
// that Update (found through the record's label), and a Cancel, each applied to the one record
// of the chain; the node's public alert feed, on the web interface's listener and on its own,
// holds the alert only while it is public and not cancelled.
func TestUpdateAndCancelChains(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Replicas: 1, Feed: true,
		UI: &config.OIDC{Issuer: "http://127.0.0.1:9/realms/test", ClientID: "knooppunt"}})
	r := c.Replicas[0]
	records := r.Records(t)
	apply := func(doc string, opts cap.ImportOptions) (cap.Result, error) {
		t.Helper()
		a, err := cap.Parse(strings.NewReader(doc), 0)
		if err != nil {
			t.Fatal(err)
		}
		return cap.Apply(clustertest.Call(t), records, a, opts)
	}
	mustApply := func(doc string, opts cap.ImportOptions, action string) cap.Result {
		t.Helper()
		res, err := apply(doc, opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.Action != action {
			t.Fatalf("%+v, want %s", res, action)
		}
		return res
	}
	get := func(id string) *pb.Record {
		t.Helper()
		rec, err := records.Get(clustertest.Call(t), &pb.GetRequest{Id: id})
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		return rec
	}
	alerts := func() []*pb.Record {
		t.Helper()
		resp, err := records.List(clustertest.Call(t), &pb.ListRequest{Kind: "alert"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Records
	}
	feeds := []string{"http://" + r.Feed + cap.FeedPath, "http://" + r.UI + cap.FeedPath}
	feedHeadlines := func() []string {
		t.Helper()
		var out []string
		for i, u := range feeds {
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/atom+xml") {
				t.Fatalf("GET %s without signing in: %d %s\n%s", u, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || resp.Header.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("GET %s: CSP %q, Referrer-Policy %q, want the interface's", u, csp, resp.Header.Get("Referrer-Policy"))
			}
			var got []string
			for _, e := range feedEntries(t, body) {
				captest.Validate(t, "a feed entry", e.Content.Alert)
				got = append(got, e.Title)
			}
			if i > 0 && strings.Join(got, "|") != strings.Join(out, "|") {
				t.Fatalf("the web interface's feed %v differs from the feed listener's %v", got, out)
			}
			out = got
		}
		return out
	}

	first := mustApply(alertDoc("Alert", "hw-1", "", "Restricted", "Hoogwater verwacht"), cap.ImportOptions{Crisis: "hoogwater", Region: "VR19"}, cap.Created)
	if first.ID != cap.RecordID(sender, "hw-1") || first.Version != 1 {
		t.Fatalf("first alert: %+v", first)
	}
	rec := get(first.ID)
	if rec.Classification != pb.Classification_INTERNAL || rec.Crisis != "hoogwater" || rec.Region != "VR19" || rec.Kind != "alert" {
		t.Fatalf("a Restricted alert became %s %s %s %s", rec.Classification, rec.Crisis, rec.Region, rec.Kind)
	}
	if got := feedHeadlines(); len(got) != 0 {
		t.Fatalf("an internal alert is in the public feed: %v", got)
	}
	// The feed's updated: the epoch while the node never published an alert (an internal one
	// does not count), else its newest public change, a cancellation that emptied it included.
	feedUpdated := func() time.Time {
		t.Helper()
		resp, err := http.Get(feeds[0])
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var f struct {
			Updated time.Time `xml:"updated"`
		}
		if err := xml.NewDecoder(resp.Body).Decode(&f); err != nil {
			t.Fatal(err)
		}
		return f.Updated
	}
	if got := feedUpdated(); !got.Equal(time.Unix(0, 0)) {
		t.Fatalf("the feed's updated with only an internal alert is %v, want the epoch", got)
	}
	// The same alert again is the same record, and is not written again.
	if again := mustApply(alertDoc("Alert", "hw-1", "", "Restricted", "Hoogwater verwacht"), cap.ImportOptions{Crisis: "hoogwater", Region: "VR19"}, cap.Unchanged); again.Version != 1 {
		t.Fatalf("the same alert twice: %+v", again)
	}
	if n := len(alerts()); n != 1 {
		t.Fatalf("the same alert twice: %d records", n)
	}

	up := mustApply(alertDoc("Update", "hw-2", ref("hw-1"), "Public", "Hoogwater: evacuatie"), cap.ImportOptions{}, cap.Updated)
	rec = get(first.ID)
	if up.ID != first.ID || rec.Version != 2 || rec.Classification != pb.Classification_PUBLIC || rec.Crisis != "hoogwater" || rec.Region != "VR19" {
		t.Fatalf("after the Update: %+v, record v%d %s %s %s", up, rec.Version, rec.Classification, rec.Crisis, rec.Region)
	}
	if got := feedHeadlines(); len(got) != 1 || got[0] != "Hoogwater: evacuatie" {
		t.Fatalf("the feed after the Update made the alert public: %v", got)
	}
	// An Update of the Update names only hw-2, which has no record of its own.
	mustApply(alertDoc("Update", "hw-3", ref("hw-2"), "Public", "Hoogwater: terugkeer"), cap.ImportOptions{}, cap.Updated)
	rec = get(first.ID)
	exported, _ := captest.Export(t, rec)
	if exported.Identifier != "hw-3" || exported.MsgType != "Update" || exported.Info[0].Headline != "Hoogwater: terugkeer" || len(alerts()) != 1 {
		t.Fatalf("after the second Update: %+v, %d alert records", exported, len(alerts()))
	}

	beforeCancel := time.Now().Truncate(time.Second)
	cancelled := mustApply(alertDoc("Cancel", "hw-4", ref("hw-1")+" "+ref("hw-3"), "Public", "Hoogwater voorbij"), cap.ImportOptions{}, cap.Cancelled)
	if cancelled.ID != first.ID {
		t.Fatalf("the Cancel hit %s, want %s", cancelled.ID, first.ID)
	}
	if _, err := records.Get(clustertest.Call(t), &pb.GetRequest{Id: first.ID}); status.Code(err) != codes.NotFound {
		t.Fatalf("the cancelled alert: %v, want NotFound", err)
	}
	if got := feedHeadlines(); len(got) != 0 {
		t.Fatalf("a cancelled alert is in the feed: %v", got)
	}
	if got := feedUpdated(); got.Before(beforeCancel) {
		t.Fatalf("the feed's updated after the Cancel emptied it is %v, before the Cancel (%v)", got, beforeCancel)
	}
	// A Cancel of what is gone is refused and changes nothing; an Update of an alert the node
	// never had is stored as an alert of its own.
	if _, err := apply(alertDoc("Cancel", "hw-5", ref("hw-3"), "Public", "x"), cap.ImportOptions{}); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "nothing to cancel") {
		t.Fatalf("a Cancel of a cancelled alert: %v", err)
	}
	other := mustApply(alertDoc("Update", "zz-2", ref("zz-1"), "Public", "Onbekend"), cap.ImportOptions{}, cap.Created)
	if other.ID != cap.RecordID(sender, "zz-2") || len(alerts()) != 1 {
		t.Fatalf("an Update of an unknown alert: %+v, %d records", other, len(alerts()))
	}
	if _, err := apply(alertDoc("Ack", "zz-3", ref("zz-2"), "Public", "x"), cap.ImportOptions{}); err == nil || !strings.Contains(err.Error(), "alert.msgType") {
		t.Fatalf("an Ack: %v", err)
	}
	if got := feedHeadlines(); len(got) != 1 || got[0] != "Onbekend" {
		t.Fatalf("the feed: %v", got)
	}
	// A poller whose copy is current gets 304; after a change, the new feed.
	etag := func() string {
		t.Helper()
		resp, err := http.Head(feeds[0])
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("ETag")
	}
	conditional := func(tag string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, feeds[0], nil)
		req.Header.Set("If-None-Match", tag)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	before := etag()
	if code := conditional(before); before == "" || code != http.StatusNotModified {
		t.Fatalf("GET with the current ETag %q: %d, want 304", before, code)
	}
	mustApply(alertDoc("Cancel", "zz-4", ref("zz-2"), "Public", "x"), cap.ImportOptions{}, cap.Cancelled)
	if code := conditional(before); code != http.StatusOK || etag() == before {
		t.Fatalf("GET with the old ETag after a Cancel: %d, want 200 and a new ETag", code)
	}
	// The feed is read-only.
	resp, err := http.Post(feeds[0], "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST to the feed: %d", resp.StatusCode)
	}
}
