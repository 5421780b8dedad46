package db_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestApplyKeepHead: heads are kept per peer, append-only; the same head twice is kept once; a
// second hash for a seq, and a seq below the highest held, are kept as forks and audited as
// audit.fork; a fork does not raise the highest seq held. Two databases that apply the same
// commands hold the same bytes.
func TestApplyKeepHead(t *testing.T) {
	ctx := context.Background()
	const peer = "ncc.crisis.test"
	head := func(seq int64, fill byte) *pb.KeepHead {
		return &pb.KeepHead{Peer: peer, Signer: "spiffe://" + peer + "/node/r1", ReceivedAt: hour(int(seq)), Head: &pb.SignedHead{
			Org: peer, Seq: seq, Hash: bytes.Repeat([]byte{fill}, sha256.Size), At: hour(int(seq)), Signature: []byte{fill}, Chain: [][]byte{{1, 2, 3}}}}
	}
	cmds := []struct {
		c    *pb.KeepHead
		fork string
	}{
		{head(10, 1), ""},
		{head(10, 1), ""}, // the same head again
		{head(12, 2), ""},
		{head(12, 3), "a second head for entry 12"},
		{head(11, 4), "a head for entry 11, below entry 12"},
		{head(20, 5), ""},
		{&pb.KeepHead{Peer: "other.crisis.test", Signer: "spiffe://other.crisis.test/node/r1", ReceivedAt: hour(1),
			Head: &pb.SignedHead{Org: "other.crisis.test", Seq: 1, Hash: bytes.Repeat([]byte{6}, sha256.Size), At: hour(1)}}, ""},
	}
	apply := func(d *db.DB) {
		for i, c := range cmds {
			fork, err := d.ApplyKeepHead(uint64(i+1), c.c)
			if err != nil {
				t.Fatal(err)
			}
			if c.fork == "" && fork != "" || c.fork != "" && !strings.HasPrefix(fork, c.fork) {
				t.Fatalf("command %d (seq %d): fork %q, want %q", i, c.c.Head.Seq, fork, c.fork)
			}
		}
	}
	d1, d2 := newDB(t), newDB(t)
	apply(d1)
	apply(d2)
	heads, err := d1.HeadsOf(ctx, peer, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range heads {
		got = append(got, fmt.Sprintf("%d:%d:%v", h.Head.Seq, h.Head.Hash[0], h.Fork))
		if len(h.Head.Chain) != 1 || !bytes.Equal(h.Head.Chain[0], []byte{1, 2, 3}) || h.Head.Org != peer {
			t.Fatalf("head %d kept as %v: the chain and org must come back", h.Head.Seq, h.Head)
		}
	}
	if want := "10:1:false 11:4:true 12:2:false 12:3:true 20:5:false"; strings.Join(got, " ") != want {
		t.Fatalf("heads of %s: %s, want %s", peer, strings.Join(got, " "), want)
	}
	// Pages of three end with every head of their last seq: the fork of 12 is on the first,
	// never lost between pages that go on after 12.
	var pages []string
	for after := int64(0); ; {
		page, err := d1.HeadsOf(ctx, peer, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []string
		for _, h := range page {
			seqs = append(seqs, fmt.Sprint(h.Head.Seq))
		}
		pages = append(pages, strings.Join(seqs, ","))
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].Head.Seq
	}
	if want := "10,11,12,12 20"; strings.Join(pages, " ") != want {
		t.Fatalf("pages of three: %q, want %q", strings.Join(pages, " "), want)
	}
	forks, err := d1.AuditList(ctx, db.AuditFilter{Action: db.AuditFork})
	if err != nil {
		t.Fatal(err)
	}
	if len(forks) != 2 || forks[0].Subject != peer || !strings.Contains(forks[0].Detail, `"seq":12`) || !strings.Contains(forks[1].Detail, `"seq":11`) {
		t.Fatalf("audit.fork entries: %v", forks)
	}
	sums := [2]string{}
	for i, d := range []*db.DB{d1, d2} {
		sums[i] = queriesChecksum(t, d.Path(), `SELECT * FROM witnessed_heads ORDER BY rowid`, `SELECT seq, at, actor, action, subject, detail, hex(hash) FROM audit ORDER BY seq`)
	}
	if sums[0] != sums[1] {
		t.Fatal("two databases that applied the same heads differ")
	}
	if rep, err := verifyChain(ctx, d1); err != nil || rep.FirstBroken != 0 {
		t.Fatalf("AuditVerify = %+v, %v", rep, err)
	}
}

// TestLateHeadIsNoFork: with by_time, a head below the highest held that the peer signed before
// every head above it came late, and is kept as an ordinary head; one signed after a head above
// it is evidence of a fork. A witness that paused took the calls that waited in any order and
// called a sound chain forked (review H, F3); without by_time it still does, as entries of an
// earlier release must apply alike.
func TestLateHeadIsNoFork(t *testing.T) {
	const peer = "lcvs.crisis.test"
	head := func(seq int64, fill byte, signed int, byTime bool) *pb.KeepHead {
		return &pb.KeepHead{Peer: peer, Signer: "spiffe://" + peer + "/node/r1", ReceivedAt: hour(30), Bounded: true, ByTime: byTime, Head: &pb.SignedHead{
			Org: peer, Seq: seq, Hash: bytes.Repeat([]byte{fill}, sha256.Size), At: hour(signed), Signature: []byte{fill}}}
	}
	d := newDB(t)
	for i, c := range []struct {
		c    *pb.KeepHead
		fork string
	}{
		{head(10, 1, 10, true), ""},
		{head(14, 2, 14, true), ""},
		{head(12, 3, 12, true), ""},                                     // signed before 14: late
		{head(11, 4, 15, true), "a head for entry 11, below entry 14"},  // signed after 14
		{head(13, 5, 13, false), "a head for entry 13, below entry 14"}, // an entry of an earlier release
	} {
		fork, err := d.ApplyKeepHead(uint64(i+1), c.c)
		if err != nil {
			t.Fatal(err)
		}
		if c.fork == "" && fork != "" || c.fork != "" && !strings.HasPrefix(fork, c.fork) {
			t.Errorf("head %d signed at %s (by_time %v): fork %q, want %q", c.c.Head.Seq, c.c.Head.At.AsTime(), c.c.ByTime, fork, c.fork)
		}
	}
	heads, err := d.HeadsOf(context.Background(), peer, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range heads {
		got = append(got, fmt.Sprintf("%d:%v", h.Head.Seq, h.Fork))
	}
	if want := "10:false 11:true 12:false 13:true 14:false"; strings.Join(got, " ") != want {
		t.Errorf("heads kept: %s, want %s", strings.Join(got, " "), want)
	}
}

// TestKeptHeadsAreBounded: of a bounded command's peer, the newest db.KeptHeads heads are kept
// and the first db.KeptForks pieces of fork evidence, each audited once; evidence beyond those is
// still answered as a fork. A peer that raised its seq at every call filled the table with
// heads, each with its chain (review D, F1). Commands without bounded are kept as before.
func TestKeptHeadsAreBounded(t *testing.T) {
	ctx := context.Background()
	const peer = "ncc.crisis.test"
	d := newDB(t)
	index := uint64(0)
	keep := func(seq int64, fill byte, bounded bool) string {
		t.Helper()
		index++
		fork, err := d.ApplyKeepHead(index, &pb.KeepHead{Peer: peer, Signer: "spiffe://" + peer + "/node/r1", ReceivedAt: hour(1), Bounded: bounded,
			Head: &pb.SignedHead{Org: peer, Seq: seq, Hash: bytes.Repeat([]byte{fill}, sha256.Size), At: hour(1), Signature: []byte{1}, Chain: [][]byte{{1}}}})
		if err != nil {
			t.Fatal(err)
		}
		return fork
	}
	count := func(fork bool) (n int, lowest int64) {
		t.Helper()
		heads, err := d.HeadsOf(ctx, peer, 0, 3*db.KeptHeads)
		if err != nil {
			t.Fatal(err)
		}
		lowest = -1
		for _, h := range heads {
			if h.Fork == fork {
				n++
				if lowest < 0 {
					lowest = h.Head.Seq
				}
			}
		}
		return n, lowest
	}
	keep(1, 1, false) // before the bound: kept as before, until a bounded command prunes it
	for seq := int64(2); seq <= db.KeptHeads+50; seq++ {
		keep(seq, 1, true)
	}
	if n, lowest := count(false); n != db.KeptHeads || lowest != 51 {
		t.Fatalf("kept %d heads from seq %d, want the newest %d, from 51", n, lowest, db.KeptHeads)
	}
	for i := range db.KeptForks + 5 {
		if fork := keep(int64(100+i), 2, true); !strings.HasPrefix(fork, "a second head for entry") {
			t.Fatalf("fork %d answered %q, want the evidence", i, fork)
		}
	}
	if n, _ := count(true); n != db.KeptForks {
		t.Fatalf("kept %d pieces of fork evidence, want %d", n, db.KeptForks)
	}
	entries, err := d.AuditList(ctx, db.AuditFilter{Action: db.AuditFork, Limit: 1000})
	if err != nil || len(entries) != db.KeptForks {
		t.Fatalf("%d audit.fork entries (%v), want %d", len(entries), err, db.KeptForks)
	}
	if n, _ := count(false); n != db.KeptHeads {
		t.Fatalf("evidence of forks pruned heads: %d kept, want %d", n, db.KeptHeads)
	}
}
