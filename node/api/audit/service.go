// Package audit is the AuditService: officers and admins read the hash-chained audit log and
// verify that nobody has tampered with it.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/peerserver"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Service implements knooppunt.v1.AuditService.
type Service struct {
	pb.UnsafeAuditServiceServer
	db  *db.DB
	log *slog.Logger
	// Witnesses, when set, asks the peers for the heads of the chain they keep and checks
	// them (witness.Witnesses.Check). Nil on a node with no federation.
	Witnesses func(ctx context.Context) ([]*pb.WitnessReport, error)
	// Settle, when set, waits for audit entries that were proposed but not yet committed (a
	// search's, a read's of confidential records; see store.Store.Background), so that a read
	// sees every step answered before it.
	Settle func(ctx context.Context) error
	// Peers, when set, are the running peers (the config file's and those accepted through
	// Raft), whose names List's recipient may give. Nil: the peers accepted through Raft.
	Peers func() []config.Peer
}

var _ pb.AuditServiceServer = (*Service)(nil)

// New returns the service.
func New(d *db.DB, log *slog.Logger) *Service { return &Service{db: d, log: log} }

func (s *Service) settle(ctx context.Context) error {
	if s.Settle == nil {
		return nil
	}
	return s.Settle(ctx)
}

// RegisterService registers the service on s.
func RegisterService(s grpc.ServiceRegistrar, svc *Service) { pb.RegisterAuditServiceServer(s, svc) }

// MaxFilter bounds List's actor and subject, in bytes: an entry's actor is a
// SPIFFE ID (at most 2,048 bytes), its subject a record, policy or peer it is about.
const MaxFilter = 2048

// List returns audit entries in order. An action ending in a dot, such as "policy.", matches
// every action under it.
func (s *Service) List(ctx context.Context, req *pb.ListAuditRequest) (*pb.ListAuditResponse, error) {
	if req.Limit < 0 || req.Limit > 10000 {
		return nil, api.Invalid("limit", "%d: use 0 (default 100) to 10000", req.Limit)
	}
	if req.Action != "" && !db.CheckAuditAction(req.Action) {
		return nil, api.Invalid("action", "%s is no audit action: use one of %s, or the part before a dot with the dot, such as policy.", policy.Quote(req.Action), strings.Join(db.AuditActions, ", "))
	}
	// What no entry can name is refused, as the crisis is, rather than matching nothing (review
	// AF, AF8).
	for _, f := range []struct{ field, value string }{
		{"actor", req.Actor}, {"subject", req.Subject},
	} {
		if err := record.CheckText(f.field, f.value, MaxFilter, "give it as `audit list` shows it"); err != nil {
			return nil, api.Status(s.log, err)
		}
	}
	if err := peerserver.CheckPurpose("purpose", req.Purpose); err != nil {
		return nil, err
	}
	if req.Crisis != "" {
		if err := record.CheckCrisis("crisis", req.Crisis); err != nil {
			return nil, api.Status(s.log, err)
		}
	}
	for _, f := range []struct {
		field string
		seq   int64
	}{{"after_seq", req.AfterSeq}, {"before_seq", req.BeforeSeq}} {
		if f.seq < 0 {
			return nil, api.Invalid(f.field, "%d is negative: use 0 for no bound, or the seq of an entry", f.seq)
		}
	}
	f := db.AuditFilter{Action: req.Action, Actor: req.Actor, Subject: req.Subject, SubjectPrefix: req.SubjectPrefix, Purpose: req.Purpose, Crisis: req.Crisis,
		AfterSeq: req.AfterSeq, BeforeSeq: req.BeforeSeq, Limit: int(req.Limit), Newest: req.Newest}
	if req.Recipient != "" {
		td, err := s.recipient(ctx, req.Recipient)
		if err != nil {
			return nil, err
		}
		f.Recipient = td
	}
	if req.Since != nil {
		if err := record.CheckTime("since", req.Since); err != nil {
			return nil, api.Status(s.log, err)
		}
		f.Since = req.Since.AsTime()
	}
	if err := s.settle(ctx); err != nil {
		return nil, api.Status(s.log, err)
	}
	entries, err := s.db.AuditList(ctx, f)
	if err != nil {
		return nil, api.Status(s.log, err)
	}
	resp := &pb.ListAuditResponse{}
	for _, e := range entries {
		resp.Entries = append(resp.Entries, &pb.AuditEntry{
			Seq: e.Seq, At: timestamppb.New(e.At), Actor: e.Actor, Action: e.Action, Subject: e.Subject,
			Detail: e.Detail, PrevHash: e.PrevHash, Hash: e.Hash,
		})
	}
	return resp, nil
}

// recipient is the trust domain that List's recipient names: a peer's, by its name or its trust
// domain, or a trust domain (a name with a dot) that is no longer a peer, which the log may
// still name. A removed peer's name is no longer known: only its trust domain finds it.
func (s *Service) recipient(ctx context.Context, name string) (string, error) {
	var peers []config.Peer
	if s.Peers != nil {
		peers = s.Peers()
	} else {
		infos, err := s.db.Peers(ctx)
		if err != nil {
			return "", api.Status(s.log, err)
		}
		for _, p := range infos {
			peers = append(peers, config.Peer{Name: p.Name, TrustDomain: p.TrustDomain})
		}
	}
	names := make([]string, 0, len(peers))
	for _, p := range peers {
		if p.Name == name || p.TrustDomain == name {
			return p.TrustDomain, nil
		}
		names = append(names, p.Name)
	}
	if strings.Contains(name, ".") {
		if td, err := spiffeid.TrustDomainFromString(name); err == nil && td.Name() == name {
			return name, nil
		}
	}
	known := "this node has no peers"
	if len(names) > 0 {
		slices.Sort(names)
		known = "use one of " + strings.Join(names, ", ")
	}
	// A removed peer's name is known no more; the log names its trust domain.
	return "", api.Invalid("recipient", "%s is no peer's name, nor a trust domain (such as ggdghor.crisis.test): %s; for a peer that was removed, give its trust domain", policy.Quote(name), known)
}

// Verify recomputes the chain.
func (s *Service) Verify(ctx context.Context, req *pb.VerifyAuditRequest) (*pb.VerifyAuditResponse, error) {
	var anchor db.AuditAnchor
	if a := req.GetAnchor(); a != nil {
		if a.Seq <= 0 {
			return nil, api.Invalid("anchor.seq", "%d: an anchor names an entry, whose seq is 1 or more", a.Seq)
		}
		if len(a.Hash) != sha256.Size {
			return nil, api.Invalid("anchor.hash", "%d bytes: an entry's hash is a SHA-256 hash of %d bytes", len(a.Hash), sha256.Size)
		}
		anchor = db.AuditAnchor{Seq: a.Seq, Hash: hex.EncodeToString(a.Hash)}
	}
	if err := s.settle(ctx); err != nil {
		return nil, api.Status(s.log, err)
	}
	rep, err := s.db.AuditVerify(ctx, anchor)
	if err != nil {
		return nil, api.Status(s.log, err)
	}
	resp := &pb.VerifyAuditResponse{Ok: rep.FirstBroken == 0, Entries: rep.Entries, FirstBroken: rep.FirstBroken, Problem: rep.Problem}
	// A node without peers (or without federation) has no witness to ask: it answers with none,
	// and the chain verified on its own; the caller must not read that as vouched for (audit
	// verify --witnesses exits 2, review O, O2).
	if req.Witnesses {
		var reports []*pb.WitnessReport
		if s.Witnesses != nil {
			if reports, err = s.Witnesses(ctx); err != nil {
				return nil, api.Status(s.log, err)
			}
		}
		if len(reports) == 0 && !req.AcceptNoWitnesses {
			return nil, api.FieldStatus(codes.FailedPrecondition, "witnesses", "this node has no peers to witness its chain: nobody vouched for it; verify against a head kept outside the node (--anchor)")
		}
		resp.Witnesses = reports
		// A head a witness holds that the chain does not: the chain was rewritten, even if it
		// verifies on its own. The first such head, by seq, is the one reported.
		for _, r := range reports {
			if r.State == "rewritten" && (resp.Ok || r.Seq < resp.FirstBroken) {
				resp.Ok, resp.FirstBroken, resp.Problem = false, r.Seq, r.Problem
			}
		}
	}
	if rep.Head.Seq != 0 {
		h, err := hex.DecodeString(rep.Head.Hash)
		if err != nil {
			return nil, api.Status(s.log, err)
		}
		resp.Head = &pb.AuditAnchor{Seq: rep.Head.Seq, Hash: h}
	}
	return resp, nil
}
