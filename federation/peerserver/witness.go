package peerserver

import (
	"context"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/witness"
	"github.com/knooppunt/knooppunt/node/api"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// maxHeads is the most heads one Heads call returns.
const maxHeads = 1000

// Witness keeps a signed head of the calling peer's audit chain, after checking that one of the
// peer's replicas signed it with an SVID the peer's bundle vouches for. A head that conflicts with
// one kept before is kept too, as evidence of a fork; the caller is told so.
func (s *Service) Witness(ctx context.Context, req *pb.WitnessRequest) (*pb.WitnessResponse, error) {
	to, done, err := s.admit(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	if s.c.Bundles == nil {
		return nil, status.Error(codes.Unimplemented, "this node keeps no witnessed heads: it has no peers' bundles")
	}
	if !s.gate(to).heads.Allow() {
		return nil, status.Errorf(codes.ResourceExhausted, "peer %s hands over audit heads faster than one a second: send the head at most every second", to.TrustDomain)
	}
	td, err := spiffeid.TrustDomainFromString(to.TrustDomain)
	if err != nil {
		return nil, status.Errorf(codes.PermissionDenied, "trust domain %s: %v", to.TrustDomain, err)
	}
	signer, err := witness.Verify(req.Head, td, s.c.Bundles)
	if err != nil {
		return nil, api.Invalid("head", "%v", err)
	}
	out, err := s.c.Store.Apply(ctx, &pb.Command{Cmd: &pb.Command_KeepHead{KeepHead: &pb.KeepHead{
		Peer: to.TrustDomain, Head: req.Head, ReceivedAt: timestamppb.Now(), Signer: signer.String(), Bounded: true, ByTime: true,
	}}})
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	if fork, _ := out.(string); fork != "" {
		s.c.Logger.Error("a peer signed audit heads that fork: kept as evidence", "peer", to.TrustDomain, "signer", signer, "evidence", fork)
		return nil, api.ReasonStatus(codes.FailedPrecondition, api.ReasonAuditFork, fmt.Sprintf("kept as evidence of a fork in %s's audit chain: %s", to.TrustDomain, fork))
	}
	return &pb.WitnessResponse{}, nil
}

// Heads returns the signed heads of the caller's audit chain that this node keeps, forks
// included, by seq.
func (s *Service) Heads(ctx context.Context, req *pb.HeadsRequest) (*pb.HeadsResponse, error) {
	to, done, err := s.admit(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	if req.AfterSeq < 0 {
		return nil, api.Invalid("after_seq", "%d is negative: use 0 for the first page", req.AfterSeq)
	}
	limit := int(req.Limit)
	if limit < 0 || limit > maxHeads {
		return nil, api.Invalid("limit", "%d: use 0 (default %d) to %d", limit, maxHeads, maxHeads)
	}
	if limit == 0 {
		limit = maxHeads
	}
	heads, err := s.c.DB.HeadsOf(ctx, to.TrustDomain, req.AfterSeq, limit)
	if err != nil {
		return nil, api.Status(s.c.Logger, fmt.Errorf("peerserver: heads: %w", err))
	}
	return &pb.HeadsResponse{Heads: heads}, nil
}
