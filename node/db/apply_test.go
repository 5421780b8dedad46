package db_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// position is what AppliedIndex and LastSeq say.
func position(t *testing.T, d *db.DB) (uint64, int64) {
	t.Helper()
	idx, err := d.AppliedIndex()
	if err != nil {
		t.Fatalf("AppliedIndex: %v", err)
	}
	seq, err := d.LastSeq()
	if err != nil {
		t.Fatalf("LastSeq: %v", err)
	}
	return idx, seq
}

// TestApplyDisclosuresEveryChunkSize applies commands of 0 to 140 disclosures, and as many
// retractions, which the bulk statements split in every way they can, and checks that each
// record has its row and its audit entry, in order, and nothing else.
func TestApplyDisclosuresEveryChunkSize(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	var index uint64
	var audited int64
	for n := 0; n <= 140; n++ {
		to := fmt.Sprintf("peer-%03d.crisis.test", n)
		c := disclosures(n, fmt.Sprint(n))
		c.Recipient, c.Holder = to, "spiffe://"+to+"/user/app"
		index++
		if err := d.ApplyDisclosures(index, c); err != nil {
			t.Fatalf("%d disclosures: %v", n, err)
		}
		held, err := d.Disclosed(ctx, c.Holder)
		if err != nil {
			t.Fatal(err)
		}
		if len(held) != n {
			t.Fatalf("%d disclosures left %d rows", n, len(held))
		}
		for _, x := range c.Disclosed {
			if held[x.RecordId] != x.Version {
				t.Fatalf("%d disclosures: %s at version %d, want %d", n, x.RecordId, held[x.RecordId], x.Version)
			}
		}
		entries, err := d.AuditList(ctx, db.AuditFilter{AfterSeq: audited, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != n {
			t.Fatalf("%d disclosures made %d audit entries", n, len(entries))
		}
		for i, e := range entries {
			if e.Seq != audited+int64(i)+1 || e.Subject != c.Disclosed[i].RecordId || e.Action != db.AuditDisclosure {
				t.Fatalf("%d disclosures: entry %d is %d %s %s, want %d %s %s", n, i, e.Seq, e.Action, e.Subject, audited+int64(i)+1, db.AuditDisclosure, c.Disclosed[i].RecordId)
			}
		}
		audited += int64(n)

		back := &pb.RecordDisclosures{Recipient: to, RecipientId: c.RecipientId, Holder: c.Holder, Via: "Subscribe", At: hour(1)}
		for _, x := range c.Disclosed {
			back.Retracted = append(back.Retracted, &pb.Disclosure{RecordId: x.RecordId, Reason: "revoked"})
		}
		index++
		if err := d.ApplyDisclosures(index, back); err != nil {
			t.Fatalf("%d retractions: %v", n, err)
		}
		if held, _ := d.Disclosed(ctx, c.Holder); len(held) != 0 {
			t.Fatalf("%d retractions left %d rows", n, len(held))
		}
		audited += int64(n)
	}
	rep, err := verifyChain(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FirstBroken != 0 || rep.Entries != audited {
		t.Fatalf("AuditVerify = %+v, want %d entries, none broken", rep, audited)
	}
	if idx, seq := position(t, d); idx != index || seq != 0 {
		t.Fatalf("position = %d, %d; want %d, 0 (disclosures are not changes)", idx, seq, index)
	}
}

// TestPosition follows AppliedIndex and LastSeq, which the database keeps in memory, through
// writes, a replay, a refused command, a reopen and a restore to an older snapshot, checking
// them against the meta rows in the file.
func TestPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "knooppunt.db")
	d, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	inFile := func() (uint64, int64) {
		h, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		var idx uint64
		var seq int64
		if err := h.QueryRow(`SELECT (SELECT value FROM meta WHERE key='applied_index'), (SELECT value FROM meta WHERE key='last_seq')`).Scan(&idx, &seq); err != nil {
			t.Fatal(err)
		}
		return idx, seq
	}
	want := func(step string, idx uint64, seq int64) {
		t.Helper()
		if gi, gs := position(t, d); gi != idx || gs != seq {
			t.Fatalf("%s: position = %d, %d; want %d, %d", step, gi, gs, idx, seq)
		}
		if fi, fs := inFile(); fi != idx || fs != seq {
			t.Fatalf("%s: meta in the file = %d, %d; want %d, %d", step, fi, fs, idx, seq)
		}
	}
	want("new", 0, 0)

	if _, err := d.Apply(3, []*db.Write{put("a", `{}`), put("b", `{}`), withVersion(put("c", `{}`), 9)}); err != nil {
		t.Fatal(err)
	}
	want("two writes, one stale", 3, 2)
	if err := d.ApplyDisclosures(4, disclosures(5, "x")); err != nil {
		t.Fatal(err)
	}
	want("disclosures", 4, 2)
	snapshot := backup(t, d)
	if _, err := d.Apply(4, []*db.Write{put("d", `{}`)}); err != nil {
		t.Fatal(err)
	}
	want("replay", 4, 2)

	// A command that fails rolls back, and the next one still applies: the connection was not
	// left inside a transaction. (The node never proposes an authority without its DER, which
	// the table refuses.)
	bad := &pb.KeepAuthorities{TrustDomain: "x.example", Authorities: [][]byte{nil}, At: timestamppb.New(t0)}
	if err := d.ApplyKeepAuthorities(5, bad); err == nil {
		t.Fatal("ApplyKeepAuthorities of an authority without DER succeeded")
	}
	want("refused", 4, 2)
	if _, err := d.Apply(5, []*db.Write{put("d", `{}`)}); err != nil {
		t.Fatalf("Apply after a refused command: %v", err)
	}
	want("after refused", 5, 3)

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	want("reopened", 5, 3)

	f, err := os.Open(snapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := d.Restore(f); err != nil {
		t.Fatal(err)
	}
	want("restored to index 4", 4, 2)
	res, err := d.Apply(5, []*db.Write{put("e", `{}`)})
	if err != nil || res == nil || res[0].Seq != 3 {
		t.Fatalf("Apply(5) after restoring index 4 = %+v, %v; want applied at seq 3", res, err)
	}
	want("after restore", 5, 3)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.LastSeq(); err == nil {
		t.Error("LastSeq after Close succeeded")
	}
	if _, err := d.AppliedIndex(); err == nil {
		t.Error("AppliedIndex after Close succeeded")
	}
}

// TestLastSeqOnlyCommitted reads the feed as a subscription does while commits go on: woken by
// Changed, up to LastSeq. Every change LastSeq names must be readable by then.
func TestLastSeqOnlyCommitted(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	const n = 300
	done := make(chan error, 1)
	go func() {
		for i := 1; i <= n; i++ {
			if _, err := d.Apply(uint64(i), []*db.Write{put(fmt.Sprintf("r%03d", i), `{}`)}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	deadline := time.After(30 * time.Second)
	var after int64
	for after < n {
		changed := d.Changed()
		upTo, err := d.LastSeq()
		if err != nil {
			t.Fatal(err)
		}
		if upTo > after {
			got, err := d.Changes(ctx, after, upTo, n, db.Actual, "", "")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != int(upTo-after) || got[len(got)-1].Seq != upTo {
				t.Fatalf("LastSeq = %d after %d, but the feed holds %d changes up to it", upTo, after, len(got))
			}
			after = upTo
			continue
		}
		select {
		case <-changed:
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			done <- nil
		case <-deadline:
			t.Fatalf("feed stuck at %d of %d", after, n)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestReadsHonourCancelledContext: List and Changes run their SQL without the caller's context
// (see boundedQuery), so they check it themselves.
func TestReadsHonourCancelledContext(t *testing.T) {
	d := newDB(t)
	a := &applier{t: t, d: d}
	a.mustApply(put("a", `{}`), put("b", `{}`))
	ctx, cancel := context.WithCancel(context.Background())
	if recs, _, err := d.List(ctx, db.Filter{}); err != nil || len(recs) != 2 {
		t.Fatalf("List = %d records, %v; want 2", len(recs), err)
	}
	cancel()
	if _, _, err := d.List(ctx, db.Filter{}); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := d.Changes(ctx, 0, 2, 10, db.Actual, "", ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Changes with a cancelled context: %v, want context.Canceled", err)
	}
}
