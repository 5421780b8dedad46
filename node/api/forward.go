package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/node/store"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// OnBehalfOf is the header that carries, from a follower to the leader, the SPIFFE ID of the
// caller the follower forwards for ("local" for its local socket). The leader honours it only
// from a replica of its Raft group, and only on the calls a follower forwards.
const OnBehalfOf = "knooppunt-on-behalf-of"

// localCaller is the on-behalf-of value for the local socket.
const localCaller = "local"

// LeaderHeader is the trailer in which a follower names the leader's API address when it
// refuses a call that must be made on the leader itself.
const LeaderHeader = "knooppunt-leader"

// AnsweredHeader is the trailer with which a replica marks its own answer, with its id, to a call
// that another replica may have forwarded to it. A forwarding follower tells by it the leader's
// answer from grpc's own failure of a call whose connection broke while the call was under way
// (the leader killed, the network cut): the leader may have proposed such a write.
const AnsweredHeader = "knooppunt-answered-by"

// writeMethods are the unary methods that change state and that a follower forwards to the
// leader, transparently to the caller.
var writeMethods = map[string]bool{
	"/knooppunt.v1.RecordService/Put":      true,
	"/knooppunt.v1.RecordService/PutBatch": true,
	"/knooppunt.v1.RecordService/Delete":   true,
	"/knooppunt.v1.ExerciseService/Start":  true,
	"/knooppunt.v1.ExerciseService/Close":  true,
	"/knooppunt.v1.ClusterService/Join":    true,
	"/knooppunt.v1.ClusterService/Remove":  true,
	"/knooppunt.v1.PeerService/Accept":     true,
	"/knooppunt.v1.PeerService/Remove":     true,
	"/knooppunt.v1.WebhookService/Add":     true,
	"/knooppunt.v1.WebhookService/Remove":  true,
	"/knooppunt.v1.WebhookService/Retry":   true,
	"/knooppunt.v1.WebhookService/Rotate":  true,
}

// PersonalMethods are the steps that are attributed to a person: policy steps and phase changes
// (an officer's) and rule steps (an editor's or officer's). A follower never forwards them: on the
// leader the person's own SVID must make the call, since a replica's key, which whoever runs the
// node can read, must never be enough to act as one. A follower refuses them with
// FAILED_PRECONDITION and the leader's address in the LeaderHeader trailer, and the client calls
// the leader itself.
var PersonalMethods = map[string]bool{
	"/knooppunt.v1.PolicyService/Propose": true,
	"/knooppunt.v1.PolicyService/Approve": true,
	"/knooppunt.v1.PolicyService/Reject":  true,
	"/knooppunt.v1.PolicyService/Revoke":  true,
	"/knooppunt.v1.PhaseService/Set":      true,
	"/knooppunt.v1.RuleService/Apply":     true,
	"/knooppunt.v1.RuleService/Delete":    true,
}

// leaderReads are read methods whose answer holds what only the leader knows, since only the
// leader subscribes to peers: whether each subscription is open, and which peers take part in an
// exercise. A follower asks the leader, and answers from what it holds itself, without them,
// when the leader does not answer.
var leaderReads = map[string]bool{
	"/knooppunt.v1.PeerService/List":     true,
	"/knooppunt.v1.PeerService/Get":      true,
	"/knooppunt.v1.ExerciseService/List": true,
}

// forwarded reports whether a follower forwards calls of method to the leader, and so whether
// the leader honours the OnBehalfOf header on it.
func forwarded(method string) bool {
	return writeMethods[method] || strongReads[method] || leaderReads[method]
}

// strongReads are read methods that go to the leader when the request asks for consistency
// "strong".
var strongReads = map[string]bool{
	"/knooppunt.v1.RecordService/Get":  true,
	"/knooppunt.v1.RecordService/List": true,
}

// Forwarder sends writes that reach a follower to the leader, over mTLS with the replica's SVID.
type Forwarder struct {
	Store *store.Store
	// Creds authenticates this replica to the leader and the leader to it.
	Creds credentials.TransportCredentials
	// SVID, when set, is the source of the SVID Creds present: once it gives a renewed one, a
	// connection is made anew (identity.SVIDMark), and the old one closed when the old SVID
	// ends, and retiredGrace after at least.
	SVID x509svid.Source
	// APIAddress returns the gRPC address of a replica by id, from config.
	APIAddress func(id string) string
	// Forms, by method, check a request's own fields before a follower forwards it: one the
	// leader would refuse for its form alone is refused here, whatever the group is doing (a
	// leader that is changing would answer UNAVAILABLE, retry). The leader's handler checks
	// them again.
	Forms map[string]func(req any) error

	mu      sync.Mutex
	conns   map[string]forwardConn
	retired identity.Retired
}

type forwardConn struct {
	conn *grpc.ClientConn
	svid identity.SVIDMark
}

// retiredGrace is how long a connection made with a replica's old SVID serves the calls under
// way on it.
const retiredGrace = time.Minute

// replicaReconnect bounds how long a connection to another replica waits between attempts to
// reconnect. grpc's default grows to two minutes while the replica is down, and a call on the
// connection fails at once until the next attempt: a follower would then refuse writes for up to
// that long after a replica that was down comes back and becomes the leader.
var replicaReconnect = grpc.WithConnectParams(grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: 5 * time.Second,
})

func (f *Forwarder) conn(addr string) (*grpc.ClientConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		f.conns = map[string]forwardConn{}
	}
	if c, ok := f.conns[addr]; ok {
		if !c.svid.Renewed() {
			return c.conn, nil
		}
		f.retired.Add(c.conn, c.svid.Grace(retiredGrace))
		delete(f.conns, addr)
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(f.Creds), replicaReconnect)
	if err != nil {
		return nil, err
	}
	f.conns[addr] = forwardConn{conn: c, svid: identity.MarkSVID(f.SVID)}
	return c, nil
}

// replicaRedial is how long a forwarded call waits, at most, for its connection to the leader to
// try again (replicaReconnect) when the last attempt failed, or for another leader: a call fails
// at once while the connection waits, and a leader that came up meanwhile (this replica started
// first, or it was restarted) answers the next attempt. A follower's forwarded writes and
// commands would otherwise be refused for up to a second after it first reached its leader too
// early.
const replicaRedial = 1500 * time.Millisecond

// Invoke makes a call on the leader, for a follower. While this replica knows no leader it waits
// for one, up to replicaRedial. A call its connection could not send (the connection waits to try
// again) waits, within the same bound, for that connection or for another leader, and is made
// again there; so does one the replica taken for the leader refused as it leads no more. A call
// under way when this replica learns of another leader, or loses the one it called, ends with
// ABORTED: that leader may have taken it, and a stalled one (a frozen process) would answer only
// at the caller's deadline. It returns store.ErrLeadsNow when this replica itself leads by then:
// the call is its own.
func (f *Forwarder) Invoke(ctx context.Context, method string, req, reply any) error {
	until := time.Now().Add(replicaRedial)
	for {
		changed := f.Store.LeaderChanged()
		if f.Store.IsLeader() {
			return store.ErrLeadsNow
		}
		id := f.Store.Leader()
		if id == "" {
			if awaitChange(ctx, changed, until) {
				continue // a leader, or this replica leads
			}
			return f.noLeader()
		}
		conn, err := f.Leader()
		if err != nil {
			return err
		}
		err = f.invokeOn(ctx, conn, id, changed, method, req, reply)
		if Reason(err) == ReasonNotLeaderEither {
			// It no longer leads, and did nothing: the group's leader, once this replica knows it.
			if awaitChange(ctx, changed, until) {
				continue
			}
			return err
		}
		if !unconnected(err) {
			return err
		}
		if !time.Now().Before(until) || !f.awaitLeader(ctx, conn, changed, until) {
			// grpc's own error for a leader it cannot reach would read, at the caller, as if this
			// replica could not be reached: say whose connection failed.
			msg := status.Convert(err).Message()
			if handshakeRefused(msg) {
				// No election mends this: Raft runs on connections opened before, and the leader
				// stays (review AK, AK4).
				return status.Errorf(codes.Unavailable, "this replica is not the leader and cannot reach leader %s at %s: the TLS handshake failed (%s): this replica's SVID or the leader's has expired or is not trusted; check each replica's status (its identity line) and the SPIRE agent", id, conn.Target(), msg)
			}
			return status.Errorf(codes.Unavailable, "this replica is not the leader and cannot reach leader %s at %s (%s): the group elects a new leader within seconds if it is gone; retry shortly", id, conn.Target(), msg)
		}
	}
}

// handshakeRefused reports whether grpc's message of a failed connection says that the TLS
// handshake failed over a certificate: one side's SVID expired, missing, or of a CA the other
// does not trust.
func handshakeRefused(msg string) bool {
	for _, s := range []string{"authentication handshake failed", "remote error: tls:", "x509", "missing X509-SVID"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// awaitChange waits, up to until and while ctx lasts, for changed to close, and reports whether
// it did.
func awaitChange(ctx context.Context, changed <-chan struct{}, until time.Time) bool {
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-changed:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// movedGrace is how long a forwarded call waits for the answer of the leader it was sent to once
// this replica learns of another leader. A leader that handed the lead on before it did anything
// (a removal of itself) answers at once, and the call goes on to the new one; a stalled leader
// (a frozen process) would answer only at the caller's deadline.
const movedGrace = 500 * time.Millisecond

// invokeOn makes the call on conn, to leader id. It ends the call with ABORTED should this replica
// learn of another leader, or lose id, meanwhile, and id not answer within movedGrace; and when
// the call fails UNAVAILABLE with no answer of id's own (AnsweredHeader), as its connection broke
// after the call was sent: id may have proposed it, and another leader may commit it, while
// UNAVAILABLE tells a client that nothing was done.
func (f *Forwarder) invokeOn(ctx context.Context, conn *grpc.ClientConn, id string, changed <-chan struct{}, method string, req, reply any) error {
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var moved atomic.Bool
	go func() {
		for {
			select {
			case <-changed:
				if f.Store.Leader() == id { // learnt late of the leader it called
					changed = f.Store.LeaderChanged()
					continue
				}
				moved.Store(true)
				t := time.NewTimer(movedGrace)
				defer t.Stop()
				select {
				case <-t.C:
					cancel()
				case <-callCtx.Done():
				}
				return
			case <-callCtx.Done():
				return
			}
		}
	}()
	var trailer metadata.MD
	err := conn.Invoke(callCtx, method, req, reply, grpc.Trailer(&trailer))
	if ctx.Err() != nil {
		return err // the caller's own cancel or deadline
	}
	write := writeMethods[method] || method == pb.ReplicaService_Apply_FullMethodName
	return forwardOutcome(id, write, err, trailer, moved.Load())
}

// forwardOutcome is what a follower answers for a call it forwarded to leader id, which ended
// with err and trailer; moved when the follower learnt of another leader during the call. A read
// (not write) that ended so changed nothing, and is sent again: UNAVAILABLE.
func forwardOutcome(id string, write bool, err error, trailer metadata.MD, moved bool) error {
	switch {
	case err == nil, unconnected(err):
		return err
	case len(trailer.Get(AnsweredHeader)) > 0 || Reason(err) != "":
		return err // id's own answer (a reason is too, from a release that did not mark them)
	case !write && moved:
		return status.Errorf(codes.Unavailable, "the leader changed while this read was forwarded to %s: retry", id)
	case !write:
		return err
	case moved:
		return status.Errorf(codes.Aborted, "the leader changed while this call was forwarded to %s, so a write may have been stored: read it again, and write it again only if it is not there", id)
	case status.Code(err) == codes.Unavailable:
		return status.Errorf(codes.Aborted, "the connection to leader %s broke while this call was forwarded to it (%s), so a write may have been stored: read it again, and write it again only if it is not there", id, status.Convert(err).Message())
	}
	return err
}

// awaitLeader waits, up to until and while ctx lasts, for conn to be connected or for another
// leader, and reports whether either came.
func (f *Forwarder) awaitLeader(ctx context.Context, conn *grpc.ClientConn, changed <-chan struct{}, until time.Time) bool {
	ctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	go func() {
		select {
		case <-changed:
			cancel()
		case <-ctx.Done():
		}
	}()
	conn.Connect()
	for st := conn.GetState(); st != connectivity.Ready; st = conn.GetState() {
		if st == connectivity.Shutdown || !conn.WaitForStateChange(ctx, st) {
			select {
			case <-changed:
				return true
			default:
				return false
			}
		}
	}
	return true
}

// unconnected reports whether err is grpc's failure of a call that its connection could not
// send, as it had no connection: such a call did not reach the other replica.
func unconnected(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Unavailable && strings.HasPrefix(st.Message(), "connection error")
}

// Close closes the connections to other replicas.
func (f *Forwarder) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.conn.Close()
	}
	f.retired.CloseAll()
	f.conns = nil
}

// Replica returns a connection to replica id of the group, at its API address in config.
func (f *Forwarder) Replica(id string) (*grpc.ClientConn, error) {
	addr := ""
	if f.APIAddress != nil {
		addr = f.APIAddress(id)
	}
	if addr == "" {
		return nil, fmt.Errorf("replica %s has no API address in raft.servers", id)
	}
	return f.conn(addr)
}

// ApplyLevel asks replica id which apply level its release says (store.Config.AskLevel): 0 from
// a release before levels, whose ClusterService/Status answers without one; and why it fails
// to restore its leader's snapshots, if it does ("" from a release before it said so).
func (f *Forwarder) ApplyLevel(ctx context.Context, id string) (store.ReplicaSays, error) {
	conn, err := f.Replica(id)
	if err != nil {
		return store.ReplicaSays{}, err
	}
	st, err := pb.NewClusterServiceClient(conn).Status(ctx, &pb.ClusterStatusRequest{})
	if err != nil {
		return store.ReplicaSays{}, err
	}
	return store.ReplicaSays{Level: st.GetApplyLevel(), SnapshotRefused: st.GetSnapshotRefused()}, nil
}

// noLeader is the refusal of a replica that knows no leader: it cannot reach a majority, or it
// is no member of the group (removed, or waiting to be joined: a join mends that, so it stays
// UNAVAILABLE, as a client retries), which the message says (review AA, AA12: it sent the
// operator to the network).
func (f *Forwarder) noLeader() error {
	if !f.Store.Member() {
		return status.Error(codes.Unavailable, "this replica is not a member of its group: removed, or waiting to be joined (knooppunt cluster join on the leader): send it to a replica of the group")
	}
	return status.Error(codes.Unavailable, "no leader: this replica cannot reach a majority of its group; retry shortly or on another replica")
}

// Leader returns a connection to the leader, or an UNAVAILABLE status naming the leader this
// replica knows (if any).
func (f *Forwarder) Leader() (*grpc.ClientConn, error) {
	id := f.Store.Leader()
	if id == "" {
		return nil, f.noLeader()
	}
	addr := ""
	if f.APIAddress != nil {
		addr = f.APIAddress(id)
	}
	if addr == "" {
		return nil, status.Errorf(codes.Unavailable, "this replica is not the leader; the leader is %s (raft %s), whose API address is not in raft.servers: send the write there", id, f.Store.LeaderAddress())
	}
	c, err := f.conn(addr)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "this replica is not the leader and cannot reach leader %s at %s: %v", id, addr, err)
	}
	return c, nil
}

type consistencyRequest interface{ GetConsistency() string }

// CheckConsistency checks a read's consistency: "" or local, or strong. The records service
// checks it too, so that a node of one replica, which has no forwarder, refuses what a group
// refuses.
func CheckConsistency(c string) error {
	switch c {
	case "", "local", "strong":
		return nil
	}
	return Invalid("consistency", "%q: use local or strong", c)
}

// Unary forwards writes, and strong reads, that reach a follower. It runs after the authorizer,
// which put the caller in the context.
func (f *Forwarder) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		strong := false
		if strongReads[info.FullMethod] {
			if r, ok := req.(consistencyRequest); ok {
				if err := CheckConsistency(r.GetConsistency()); err != nil {
					return nil, err
				}
				strong = r.GetConsistency() == "strong"
			}
		}
		if forwarded(info.FullMethod) || info.FullMethod == pb.ReplicaService_Apply_FullMethodName {
			grpc.SetTrailer(ctx, metadata.Pairs(AnsweredHeader, f.Store.ReplicaID()))
		}
		if leaderReads[info.FullMethod] {
			return f.leaderRead(ctx, info.FullMethod, req, h)
		}
		personal := PersonalMethods[info.FullMethod]
		if !writeMethods[info.FullMethod] && !strong && !personal {
			return h(ctx, req)
		}
		if f.Store.IsLeader() {
			if strong {
				if err := f.Store.VerifyLeader(); err != nil {
					return nil, status.Error(codes.Unavailable, "this replica could not confirm it still leads: retry")
				}
			}
			return f.own(ctx, info.FullMethod, req, h)
		}
		if personal {
			return nil, f.toLeader(ctx)
		}
		if check := f.Forms[info.FullMethod]; check != nil {
			if err := check(req); err != nil {
				return nil, err
			}
		}
		reply, err := f.forward(ctx, info.FullMethod, req)
		if errors.Is(err, store.ErrLeadsNow) {
			if strong {
				if err := f.Store.VerifyLeader(); err != nil {
					return nil, status.Error(codes.Unavailable, "this replica could not confirm it still leads: retry")
				}
			}
			return f.own(ctx, info.FullMethod, req, h) // it leads now: the call is its own
		}
		return reply, err
	}
}

// own makes a call on this replica, the leader. A write its handler refused as this replica
// handed the lead on, having done nothing (ReasonNotLeaderEither: the leader's removal of itself),
// goes on to the new leader; a call another replica forwarded goes back to that one, which sends
// it on itself.
func (f *Forwarder) own(ctx context.Context, method string, req any, h grpc.UnaryHandler) (any, error) {
	reply, err := h(ctx, req)
	if !writeMethods[method] || Reason(err) != ReasonNotLeaderEither {
		return reply, err
	}
	reply, err = f.forward(ctx, method, req)
	if errors.Is(err, store.ErrLeadsNow) {
		return nil, status.Error(codes.Unavailable, "the group changed leader while this call waited: retry")
	}
	return reply, err
}

// leaderRead answers one of leaderReads: on the leader itself, else from the leader, else, when
// none answers (no leader, or one this replica cannot reach), from this replica, whose answer
// then lacks what only the leader knows and says so by leaving it unset.
func (f *Forwarder) leaderRead(ctx context.Context, method string, req any, h grpc.UnaryHandler) (any, error) {
	if f.Store.IsLeader() {
		return h(ctx, req)
	}
	// forward refuses a call another replica forwarded here, taking this one for the leader:
	// answered here too, as below.
	fctx, cancel := context.WithTimeout(ctx, leaderReadWait)
	defer cancel()
	reply, err := f.forward(fctx, method, req)
	if err != nil && ctx.Err() == nil {
		// No leader, one that does not answer in time, or one of the release before, which
		// refuses to answer these for a replica: this replica's own answer, which the caller
		// was admitted to here.
		return h(ctx, req)
	}
	return reply, err
}

// leaderReadWait bounds how long a follower waits for the leader's answer to one of leaderReads
// before it answers itself: a leader cut off by the network may leave a connection attempt
// hanging, and every page of the web interface lists the exercises.
const leaderReadWait = 2 * time.Second

// toLeader refuses a personal step on a follower, naming the leader the caller must call.
func (f *Forwarder) toLeader(ctx context.Context) error {
	id := f.Store.Leader()
	if id == "" {
		return f.noLeader()
	}
	addr := ""
	if f.APIAddress != nil {
		addr = f.APIAddress(id)
	}
	if addr == "" {
		return status.Errorf(codes.FailedPrecondition, "this replica is not the leader, and a policy, phase or rule step is taken on the leader itself, under your own identity: the leader is %s, whose API address is not in raft.servers", id)
	}
	grpc.SetTrailer(ctx, metadata.Pairs(LeaderHeader, addr))
	return status.Errorf(codes.FailedPrecondition, "this replica is not the leader, and a policy, phase or rule step is taken on the leader itself, under your own identity: call %s (replica %s)", addr, id)
}

func (f *Forwarder) forward(ctx context.Context, method string, req any) (any, error) {
	caller, ok := CallerFrom(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "no caller to forward for")
	}
	if caller.ForwardedBy != "" {
		return nil, ReasonStatus(codes.Unavailable, ReasonNotLeaderEither, fmt.Sprintf("this replica is not the leader either (leader now: %q): the group is changing leader; retry", f.Store.Leader()))
	}
	reply, err := newReply(method)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	who := localCaller
	if !caller.ID.IsZero() {
		who = caller.ID.String()
	}
	out := metadata.AppendToOutgoingContext(ctx, OnBehalfOf, who)
	if err := f.Invoke(out, method, req, reply); err != nil {
		return nil, err
	}
	return reply, nil
}

// newReply makes an empty response message of a method, from the registered descriptors.
func newReply(method string) (proto.Message, error) {
	svc, name, ok := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	if !ok {
		return nil, fmt.Errorf("forward: bad method %q", method)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("forward: %s is not a service", svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, fmt.Errorf("forward: no method %s", method)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	return mt.New().Interface(), nil
}

// followHops is how many times FollowLeader follows a refusal: during a change of leader the
// replica a follower named may have stepped down, and names the new one in turn.
const followHops = 3

// FollowLeader is a client interceptor that takes a personal step (a policy, phase or rule step)
// that a follower refused to the leader the follower named (see PersonalMethods), with the same
// credentials, so that the step reaches the leader under the caller's own identity; and on, if
// that one too was no longer the leader, up to followHops times. Every other call, and every
// other refusal, is left as it is.
func FollowLeader(creds credentials.TransportCredentials, opts ...grpc.DialOption) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
		if !PersonalMethods[method] {
			return invoker(ctx, method, req, reply, cc, callOpts...)
		}
		var trailer metadata.MD
		err := invoker(ctx, method, req, reply, cc, append(callOpts, grpc.Trailer(&trailer))...)
		for range followHops {
			leader := trailer.Get(LeaderHeader)
			if status.Code(err) != codes.FailedPrecondition || len(leader) != 1 || leader[0] == "" {
				return err
			}
			conn, cerr := grpc.NewClient(leader[0], append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)...)
			if cerr != nil {
				return err
			}
			trailer = nil
			err = conn.Invoke(ctx, method, req, reply, append(callOpts, grpc.Trailer(&trailer))...)
			conn.Close()
		}
		return err
	}
}
