package federation_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// filesWith lists the regular files under dir whose raw bytes contain text.
func filesWith(t *testing.T, dir, text string) []string {
	t.Helper()
	var out []string
	clustertest.EachFile(t, dir, func(rel string, data []byte) {
		if bytes.Contains(data, []byte(text)) {
			out = append(out, rel)
		}
	})
	return out
}

// TestNothingLeftBehind checks erasure.within: a record's body text is in files of the source's
// and the recipient's data directories while both hold it (the database or its WAL, the Raft
// log, a snapshot); within the bound after a's policy is revoked, the text is in no file of b's
// data directory, and within the bound after a deletes the record, in no file of a's. Every
// byte of every file is scanned.
func TestNothingLeftBehind(t *testing.T) {
	const within = 2 * time.Second
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, EraseWithin: within})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "erasure"
	text := fmt.Sprintf("vertrouwelijke-melding-%d", time.Now().UnixNano())
	pol := a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("gone", crisis, pb.Classification_INTERNAL, text))
	// Other records come and go around it, so that the log and the database have more in them
	// than the one record.
	for i := range 20 {
		a.Put(t, fedtest.Sitrep(fmt.Sprintf("stays-%d", i), crisis, pb.Classification_INTERNAL, "blijft"))
	}
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"gone": 1, "stays-0": 1, "stays-1": 1, "stays-2": 1, "stays-3": 1, "stays-4": 1,
		"stays-5": 1, "stays-6": 1, "stays-7": 1, "stays-8": 1, "stays-9": 1, "stays-10": 1, "stays-11": 1, "stays-12": 1, "stays-13": 1,
		"stays-14": 1, "stays-15": 1, "stays-16": 1, "stays-17": 1, "stays-18": 1, "stays-19": 1}, "b receives every record")
	for _, o := range []*fedtest.Org{a, b} {
		if got := filesWith(t, o.DataDir(), text); len(got) == 0 {
			t.Fatalf("%s holds the record but no file of its data directory has its text: the scan is broken", o.Name)
		}
	}

	erased := func(o *fedtest.Org, after string) {
		t.Helper()
		start := time.Now()
		var left []string
		fedtest.Eventually(t, within+3*time.Second, fmt.Sprintf("%s's data directory loses the text after %s", o.Name, after), func() (bool, string) {
			left = filesWith(t, o.DataDir(), text)
			return len(left) == 0, fmt.Sprintf("after %s, %s has the text in %s", time.Since(start).Round(time.Millisecond), o.Name, strings.Join(left, ", "))
		})
		t.Logf("%s: the text left every file %s after %s (erasure.within %s)", o.Name, time.Since(start).Round(time.Millisecond), after, within)
	}

	// A retraction: b drops the record, and within the bound its text leaves b's disk.
	a.Revoke(t, pol)
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{}, "revoking the policy retracts every record from b")
	erased(b, "the retraction")
	if got := filesWith(t, a.DataDir(), text); len(got) == 0 {
		t.Fatal("a lost the text of a record it still holds")
	}

	// A delete at the source: within the bound its text leaves a's disk.
	a.Delete(t, "gone")
	erased(a, "the delete")

	// The nodes still work, on the log and the database they were left with, also after a
	// restart.
	a.Put(t, fedtest.Sitrep("after", crisis, pb.Classification_INTERNAL, "na"))
	for _, o := range []*fedtest.Org{a, b} {
		o.Stop(t)
		o.Start(t)
	}
	a.Approve(t, policyDoc("sitreps-to-b-again", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("after", crisis, pb.Classification_INTERNAL, "na, opnieuw"))
	fedtest.Eventually(t, 10*time.Second, "b receives a's records again after both restarted", func() (bool, string) {
		got := b.Held(t, crisis, a.TD.Name())
		return got["after"] == 2 && len(got) == 21, "b holds " + fedtest.Describe(got)
	})
}
