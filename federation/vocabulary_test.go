package federation_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestPartnerWordsCannotProbeTheIndex: partner b sends a 4,096 words that each hold a part of a word,
// then searches a for that part. What a answers must not depend on records b may not read: a
// record partner c shared with a alone, or a's own secret record (review fed-adversary 1). Before,
// b's words counted in a's vocabulary, so the part stood for 4,096 words, and one word more, in
// any record a held, made b's search refused as too broad. a's own people still find the part
// in a's own records, and in b's.
func TestPartnerWordsCannotProbeTheIndex(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 3})
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	const crisis = "orakel"
	b.Approve(t, policyDoc("naar-a", spiffeOf(a), "sitrep", "internal", ""))
	c.Approve(t, policyDoc("naar-a", spiffeOf(a), "sitrep", "internal", ""))
	pad := func(part string) string {
		var words []string
		for i := range 4096 {
			words = append(words, fmt.Sprintf("%sq%c%c%c", part, 'a'+i/676, 'a'+(i/26)%26, 'a'+i%26))
		}
		return strings.Join(words, " ")
	}
	parts := []string{"zwartsch", "geheimop"}
	for i, part := range parts {
		b.Put(t, fedtest.Sitrep(fmt.Sprintf("vulling-%d", i), crisis, pb.Classification_INTERNAL, pad(part)))
	}
	waitForeign := func(from *fedtest.Org, n int) {
		t.Helper()
		fedtest.Eventually(t, 20*time.Second, fmt.Sprintf("a holds %d records of %s", n, from.Name), func() (bool, string) {
			got, err := a.Node.DB().ForeignList(context.Background(), db.ForeignFilter{Origin: from.TD.Name()})
			return err == nil && len(got) == n, fmt.Sprint(len(got), err)
		})
	}
	waitForeign(b, 2)
	probe := func() string {
		t.Helper()
		var out []string
		for _, part := range parts {
			stream, err := pb.NewFederationServiceClient(asPeer(t, b, a)).Query(fedtest.Call(t), &pb.QueryRequest{Filter: &pb.Filter{Text: part}})
			n := 0
			for err == nil {
				if _, err = stream.Recv(); err == nil {
					n++
				}
			}
			if errors.Is(err, io.EOF) {
				err = nil
			}
			out = append(out, fmt.Sprintf("%s: %d records, %s", part, n, status.Convert(err).Message()))
		}
		return strings.Join(out, "; ")
	}
	before := probe()
	if strings.Contains(before, "more than") {
		t.Fatalf("b's search of a is refused as too broad for b's own words: %s", before)
	}
	c.Put(t, fedtest.Sitrep("c-geheim", crisis, pb.Classification_INTERNAL, "Operatie zwartschaap begint"))
	waitForeign(c, 1)
	a.Put(t, fedtest.Sitrep("a-geheim", "anders", pb.Classification_SECRET, "De geheimoperatie Noordzee"))
	if after := probe(); after != before {
		t.Errorf("b's searches of a answer otherwise once a holds records b may not read:\nbefore %s\nafter  %s", before, after)
	}
	// a's own search of its records, and of the copies it holds, still finds them. (A search of
	// partners' copies still reads every partner's words: b's 4,096 make zwartsch too broad
	// there, as b's own words may.)
	found := func(each func(fn func(string) (bool, error)) error) []string {
		var ids []string
		if err := each(func(id string) (bool, error) { ids = append(ids, id); return true, nil }); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	d := a.Node.DB()
	if _, err := d.CatchUpText(context.Background(), db.CatchUpBudget); err != nil {
		t.Fatal(err)
	}
	own := found(func(fn func(string) (bool, error)) error {
		return d.EachTextMatch(context.Background(), db.TextFilter{Terms: []string{"geheimop"}}, func(r *pb.Record) (bool, error) { return fn(r.Id) })
	})
	if strings.Join(own, ",") != "a-geheim" {
		t.Errorf("a's search of its own records for geheimop finds %v, want a-geheim", own)
	}
	cached := found(func(fn func(string) (bool, error)) error {
		return d.EachForeignTextMatch(context.Background(), c.TD.Name(), db.TextFilter{Terms: []string{"zwartschaap"}}, func(r db.Foreign) (bool, error) { return fn(r.Record.Id) })
	})
	if strings.Join(cached, ",") != "c-geheim" {
		t.Errorf("a's search of c's records for zwartschaap finds %v, want c-geheim", cached)
	}
}
