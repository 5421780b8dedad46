package peers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestPeerInputRefused: a value that cannot name a peer, a ttl out of range and too many groups
// are refused as INVALID_ARGUMENT naming the field, before anything is looked up or signed; a
// well-formed name of no peer is NOT_FOUND naming it (review AF, AF5 and AF6). Nothing is added.
func TestPeerInputRefused(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Replicas: 1})
	r := c.Leader(t, 10*time.Second, c.Replicas...)
	peers := pb.NewPeerServiceClient(r.Local(t))

	ncc := identitytest.NewCA(t, "ncc.crisis.test")
	file := identitytest.Invitation(t, ncc, identitytest.SVID(t, ncc, "/node/r1", identity.SVIDOptions{}), "NCC", "127.0.0.1:1")
	many := make([]string, 10001)
	for i := range many {
		many[i] = fmt.Sprintf("g%d", i)
	}
	huge := strings.Repeat("a", 1<<20)

	for _, tc := range []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
		msg   string
	}{
		{"get, invalid UTF-8", func() error {
			_, err := peers.Get(clustertest.Call(t), &pb.GetPeerRequest{Name: "ab\xff\xfecd"})
			return err
		},
			codes.InvalidArgument, "name", "name: not valid UTF-8: give a peer's name or trust domain (`knooppunt peer list` shows them)"},
		{"get, NUL", func() error {
			_, err := peers.Get(clustertest.Call(t), &pb.GetPeerRequest{Name: "ab\x00cd"})
			return err
		},
			codes.InvalidArgument, "name", "name: holds a control or invisible character (U+0000) at byte 2: give a peer's name or trust domain"},
		{"get, 1 MiB", func() error { _, err := peers.Get(clustertest.Call(t), &pb.GetPeerRequest{Name: huge}); return err },
			codes.InvalidArgument, "name", "name: 1048576 bytes is over the limit of 255"},
		{"get, spaces and a tab", func() error { _, err := peers.Get(clustertest.Call(t), &pb.GetPeerRequest{Name: "  \t "}); return err },
			codes.InvalidArgument, "name", "name: missing: give a peer's name or trust domain"},
		{"get, no such peer", func() error {
			_, err := peers.Get(clustertest.Call(t), &pb.GetPeerRequest{Name: "af-nopeer"})
			return err
		},
			codes.NotFound, "name", "name: no peer \"af-nopeer\": `knooppunt peer list` shows the peers"},
		{"remove, invalid UTF-8", func() error {
			_, err := peers.Remove(clustertest.Call(t), &pb.RemovePeerRequest{Name: "ab\xff\xfecd", Reason: "gone"})
			return err
		}, codes.InvalidArgument, "name", "name: not valid UTF-8"},
		{"remove, a bad reason before the lookup", func() error {
			_, err := peers.Remove(clustertest.Call(t), &pb.RemovePeerRequest{Name: "af-nopeer", Reason: "ab\xffcd"})
			return err
		}, codes.InvalidArgument, "reason", "reason: not valid UTF-8"},
		{"remove, no such peer", func() error {
			_, err := peers.Remove(clustertest.Call(t), &pb.RemovePeerRequest{Name: "af-nopeer", Reason: "gone"})
			return err
		}, codes.NotFound, "name", "name: no peer \"af-nopeer\" was accepted: `knooppunt peer list` shows the peers"},
		{"invite, the largest ttl", func() error {
			_, err := peers.Invite(clustertest.Call(t), &pb.InviteRequest{TtlSeconds: 9223372036854775807})
			return err
		}, codes.InvalidArgument, "ttl_seconds", "ttl_seconds: 9223372036854775807 seconds is out of range: give 60 (1m) to 2592000 (30d), or 0 for 24h0m0s"},
		{"invite, the smallest ttl", func() error {
			_, err := peers.Invite(clustertest.Call(t), &pb.InviteRequest{TtlSeconds: -9223372036854775808})
			return err
		}, codes.InvalidArgument, "ttl_seconds", "ttl_seconds: -9223372036854775808 seconds is out of range"},
		{"invite, a ttl that wraps", func() error {
			_, err := peers.Invite(clustertest.Call(t), &pb.InviteRequest{TtlSeconds: 1 << 62})
			return err
		}, codes.InvalidArgument, "ttl_seconds", "ttl_seconds: 4611686018427387904 seconds is out of range"},
		{"invite, too many groups", func() error {
			_, err := peers.Invite(clustertest.Call(t), &pb.InviteRequest{Groups: many})
			return err
		}, codes.InvalidArgument, "groups", "groups: 10001 groups is over the limit of 64: name the groups your policies grant by"},
		{"invite, a group that is none", func() error {
			_, err := peers.Invite(clustertest.Call(t), &pb.InviteRequest{Groups: []string{"rijk", huge}})
			return err
		}, codes.InvalidArgument, "groups[1]", `groups[1]: "` + strings.Repeat("a", 80) + `…" is not a group name`},
		{"accept, too many groups", func() error {
			_, err := peers.Accept(clustertest.Call(t), &pb.AcceptRequest{Invitation: file, Groups: many})
			return err
		}, codes.InvalidArgument, "groups", "groups: 10001 groups is over the limit of 64"},
		{"accept, 65 groups", func() error {
			_, err := peers.Accept(clustertest.Call(t), &pb.AcceptRequest{Invitation: file, Groups: many[:65]})
			return err
		}, codes.InvalidArgument, "groups", "groups: 65 groups is over the limit of 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clustertest.WantRefused(t, tc.call(), tc.code, tc.field, tc.msg)
		})
	}
	// 64 groups are taken, and nothing refused above was added.
	if _, err := peers.Invite(clustertest.Call(t), &pb.InviteRequest{Groups: many[:64], TtlSeconds: 3600}); err != nil {
		t.Fatalf("invite with 64 groups: %v", err)
	}
	list, err := peers.List(clustertest.Call(t), &pb.ListPeersRequest{})
	if err != nil || len(list.Peers) != 0 {
		t.Fatalf("peers after the refusals: %v, %v; want none", list, err)
	}
}
