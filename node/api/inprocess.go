package api

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/federation/identity"
)

// InProcess is a gRPC channel inside the node: the generated clients (pb.NewSearchServiceClient
// and the like) call the node's own service implementations through it, without a socket, as a
// person whose SPIFFE ID the context carries (AsPerson). Every call passes the Authorizer first,
// with the person's roles resolved from the same Access as over mTLS, and then the same
// interceptors as the node's gRPC servers: MethodRoles stays the one gate to the data.
//
// It serves people, never replicas: an ID under spiffe://TD/node/ is refused, and nobody can
// forward for someone else through it.
type InProcess struct {
	authz    *Authorizer
	after    grpc.UnaryServerInterceptor
	services map[string]*inprocService
	onDenied func(person, method, reason string)
	// shareReplies: the caller only reads replies (ShareReplies).
	shareReplies bool
}

type inprocService struct {
	impl    any
	desc    *grpc.ServiceDesc
	methods map[string]grpc.MethodDesc
}

// NewInProcess returns a channel whose calls z authorizes and then pass through after, in order,
// as on the node's servers.
func NewInProcess(z *Authorizer, after ...grpc.UnaryServerInterceptor) *InProcess {
	return &InProcess{authz: z, after: chainUnary(after), services: map[string]*inprocService{}}
}

// OnDenied, when set, is told of every call the Authorizer refuses on the channel: a person
// in the browser who asked for what their role does not allow, such as a reader's forged form,
// leaves a trace in the audit log and not only in the log. Call it before the channel serves.
func (p *InProcess) OnDenied(f func(person, method, reason string)) { p.onDenied = f }

// authorize decides a call by the Authorizer and reports a refusal to OnDenied.
func (p *InProcess) authorize(ctx context.Context, method string, id spiffeid.ID) (context.Context, error) {
	ctx, err := p.authz.authorizeID(ctx, method, id, false)
	if err != nil && p.onDenied != nil {
		p.onDenied(id.String(), method, status.Convert(err).Message())
	}
	return ctx, err
}

// ShareReplies makes each reply share memory with the message the handler returned, as the
// message a gRPC server encodes after its handler returns, instead of being a deep copy of it.
// Only for a caller that never changes a reply, such as the REST API, which encodes each one
// to JSON and drops it. Call it before the channel serves.
func (p *InProcess) ShareReplies() { p.shareReplies = true }

type personKey struct{}

// AsPerson returns a context in which calls on an InProcess channel are made as id.
func AsPerson(ctx context.Context, id spiffeid.ID) context.Context {
	return context.WithValue(ctx, personKey{}, id)
}

// RegisterService makes a service callable on the channel; it implements grpc.ServiceRegistrar,
// so the node registers its services here as on its gRPC servers.
func (p *InProcess) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s := &inprocService{impl: impl, desc: desc, methods: map[string]grpc.MethodDesc{}}
	for _, m := range desc.Methods {
		s.methods[m.MethodName] = m
	}
	p.services[desc.ServiceName] = s
}

// GetServiceInfo lists the registered services, as grpc.Server does.
func (p *InProcess) GetServiceInfo() map[string]grpc.ServiceInfo {
	out := map[string]grpc.ServiceInfo{}
	for name, s := range p.services {
		info := grpc.ServiceInfo{Metadata: s.desc.Metadata}
		for _, m := range s.desc.Methods {
			info.Methods = append(info.Methods, grpc.MethodInfo{Name: m.MethodName})
		}
		for _, m := range s.desc.Streams {
			info.Methods = append(info.Methods, grpc.MethodInfo{Name: m.StreamName, IsClientStream: m.ClientStreams, IsServerStream: m.ServerStreams})
		}
		out[name] = info
	}
	return out
}

// person is the person a call on the channel is made as: the one in ctx, never a replica.
func (p *InProcess) person(ctx context.Context) (spiffeid.ID, error) {
	id, ok := ctx.Value(personKey{}).(spiffeid.ID)
	if !ok || id.IsZero() {
		return spiffeid.ID{}, status.Error(codes.Unauthenticated, "no person: the web interface must sign the person in first")
	}
	if identity.IsReplica(p.authz.access.Load().TrustDomain, id) {
		return spiffeid.ID{}, ReasonStatus(codes.PermissionDenied, ReasonRoleDenied, fmt.Sprintf("%s is a replica ID: the in-process channel serves people only", id))
	}
	return id, nil
}

// Invoke calls a unary method as the person in ctx.
func (p *InProcess) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	id, err := p.person(ctx)
	if err != nil {
		return err
	}
	var ok bool
	svc, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	s := p.services[svc]
	var md grpc.MethodDesc
	if s != nil {
		md, ok = s.methods[name]
	}
	if s == nil || !ok {
		// Through the Authorizer all the same, so that an unlisted method is refused, and
		// logged, as on the servers.
		if _, err := p.authorize(ctx, method, id); err != nil {
			return err
		}
		return status.Errorf(codes.Unimplemented, "%s is not served in-process", method)
	}
	in, ok1 := args.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok1 || !ok2 {
		return status.Errorf(codes.Internal, "in-process call %s: request and reply must be protobuf messages", method)
	}
	dec := func(v any) error {
		m, ok := v.(proto.Message)
		if !ok {
			return fmt.Errorf("in-process call %s: %T is not a protobuf message", method, v)
		}
		// A copy, so that the handler never shares memory with the caller's request.
		proto.Merge(m, in)
		return nil
	}
	interceptor := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx, err := p.authorize(ctx, info.FullMethod, id)
		if err != nil {
			return nil, err
		}
		return p.after(ctx, req, info, h)
	}
	// The handler runs as a gRPC server's would: with the caller's deadline and values, but not
	// the metadata the caller meant for this call (grpc-gateway's copy of the request's headers),
	// which a call the handler makes with its context would otherwise send on, to the leader or
	// to partners' nodes.
	ctx = metadata.NewOutgoingContext(ctx, nil)
	// What the handler sets with grpc.SetHeader and grpc.SetTrailer reaches a caller's
	// grpc.Header and grpc.Trailer options, as over a socket.
	st := &unaryStream{method: method}
	resp, err := md.Handler(s.impl, grpc.NewContextWithServerTransportStream(ctx, st), dec, interceptor)
	st.mu.Lock()
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = st.header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = st.trailer
		}
	}
	st.mu.Unlock()
	if err != nil {
		return err
	}
	m, ok := resp.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "in-process call %s: reply %T is not a protobuf message", method, resp)
	}
	if p.shareReplies && shareInto(out, m) {
		return nil
	}
	proto.Reset(out)
	proto.Merge(out, m)
	return nil
}

// unaryStream is a unary call's grpc.ServerTransportStream on the channel: it keeps the
// metadata the handler sets for the caller. A handler may set it from goroutines of its own
// (Picture searches beside its reads), as a socket's stream allows.
type unaryStream struct {
	method          string
	mu              sync.Mutex
	header, trailer metadata.MD
}

func (s *unaryStream) Method() string { return s.method }
func (s *unaryStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.header = metadata.Join(s.header, md)
	return nil
}
func (s *unaryStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }
func (s *unaryStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

// shareInto sets the fields of dst to those of src, a message of the same generated type,
// sharing their memory. The fields of a message generated with the open struct API are its
// exported struct fields (a oneof is one, an interface); of its unexported ones, dst keeps its
// own state and size cache, and takes src's unknown fields. False when the type is laid out
// otherwise, such as by the opaque API, with dst then partly set: the caller resets it.
func shareInto(dst, src proto.Message) bool {
	d, s := reflect.ValueOf(dst), reflect.ValueOf(src)
	if d.Type() != s.Type() || d.Kind() != reflect.Pointer || d.Elem().Kind() != reflect.Struct || d.IsNil() || s.IsNil() {
		return false
	}
	d, s = d.Elem(), s.Elem()
	t := d.Type()
	for i := range t.NumField() {
		switch f := t.Field(i); {
		case f.IsExported():
			d.Field(i).Set(s.Field(i))
		case f.Name == "unknownFields":
			dst.ProtoReflect().SetUnknown(src.ProtoReflect().GetUnknown())
		case f.Name != "state" && f.Name != "sizeCache":
			return false
		}
	}
	return true
}

// NewStream calls a server-streaming method (one request, a stream of replies, such as
// AttachmentService.Download) or a client-streaming one (a stream of requests, one reply, such
// as AttachmentService.Upload) as the person in ctx, decided by the Authorizer as on the servers,
// whose streams pass through nothing else. A server-streaming handler starts once the request is
// sent, a client-streaming one at the first; every message is a copy. A server-streaming call
// that sends more than one request is refused.
func (p *InProcess) NewStream(ctx context.Context, _ *grpc.StreamDesc, method string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	id, err := p.person(ctx)
	if err != nil {
		return nil, err
	}
	svc, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	var sd *grpc.StreamDesc
	if s := p.services[svc]; s != nil {
		for i := range s.desc.Streams {
			if s.desc.Streams[i].StreamName == name {
				sd = &s.desc.Streams[i]
			}
		}
	}
	actx, err := p.authorize(ctx, method, id)
	if err != nil {
		return nil, err
	}
	if sd == nil {
		return nil, status.Errorf(codes.Unimplemented, "%s is not served in-process", method)
	}
	if sd.ClientStreams == sd.ServerStreams {
		return nil, status.Errorf(codes.Unimplemented, "%s: only calls with one request or one reply are served in-process", method)
	}
	// As for Invoke: the caller's deadline and values, not its outgoing metadata.
	actx = metadata.NewOutgoingContext(actx, nil)
	st := &inprocStream{ctx: actx, method: method, handler: sd.Handler, impl: p.services[svc].impl,
		replies: make(chan proto.Message), done: make(chan struct{})}
	if sd.ClientStreams {
		st.reqs = make(chan proto.Message)
	}
	return st, nil
}

// inprocStream is both ends of a server-streaming call on the channel: the caller's
// grpc.ClientStream and, as server, the handler's grpc.ServerStream.
type inprocStream struct {
	ctx     context.Context
	method  string
	handler grpc.StreamHandler
	impl    any

	req   proto.Message // the one request, a copy of what the caller sent
	taken bool          // the handler has read req
	// reqs, for a client-streaming call, hands each request to the handler; closed by
	// CloseSend.
	reqs    chan proto.Message
	closed  bool
	started bool
	replies chan proto.Message // unbuffered: done is closed only after every reply was taken
	done    chan struct{}
	err     error // the handler's, once done is closed
}

// start runs the handler, once the request is in.
func (s *inprocStream) start() {
	if s.started {
		return
	}
	s.started = true
	go func() {
		defer close(s.done)
		if s.req == nil && s.reqs == nil {
			s.err = status.Errorf(codes.Internal, "in-process call %s: no request was sent", s.method)
			return
		}
		s.err = s.handler(s.impl, (*inprocServer)(s))
	}()
}

func (s *inprocStream) Header() (metadata.MD, error) { return nil, nil }
func (s *inprocStream) Trailer() metadata.MD         { return nil }
func (s *inprocStream) Context() context.Context     { return s.ctx }

func (s *inprocStream) CloseSend() error {
	s.start()
	if s.reqs != nil && !s.closed {
		s.closed = true
		close(s.reqs)
	}
	return nil
}

func (s *inprocStream) SendMsg(m any) error {
	pm, ok := m.(proto.Message)
	switch {
	case !ok:
		return status.Errorf(codes.Internal, "in-process call %s: %T is not a protobuf message", s.method, m)
	case s.reqs != nil && s.closed:
		return status.Errorf(codes.Internal, "in-process call %s: a request after CloseSend", s.method)
	case s.reqs != nil:
		s.start()
		select {
		case s.reqs <- proto.Clone(pm):
			return nil
		case <-s.done: // the handler ended: RecvMsg says how
			return io.EOF
		case <-s.ctx.Done():
			return status.FromContextError(s.ctx.Err()).Err()
		}
	case s.req != nil || s.started:
		return status.Errorf(codes.Internal, "in-process call %s: one request only", s.method)
	}
	s.req = proto.Clone(pm)
	return nil
}

func (s *inprocStream) RecvMsg(m any) error {
	s.start()
	select {
	case r := <-s.replies:
		pm, ok := m.(proto.Message)
		if !ok {
			return status.Errorf(codes.Internal, "in-process call %s: %T is not a protobuf message", s.method, m)
		}
		proto.Reset(pm)
		proto.Merge(pm, r)
		return nil
	case <-s.done:
		if s.err != nil {
			return s.err
		}
		return io.EOF
	case <-s.ctx.Done():
		return status.FromContextError(s.ctx.Err()).Err()
	}
}

// inprocServer is the handler's end of an inprocStream.
type inprocServer inprocStream

func (s *inprocServer) SetHeader(metadata.MD) error  { return nil }
func (s *inprocServer) SendHeader(metadata.MD) error { return nil }
func (s *inprocServer) SetTrailer(metadata.MD)       {}
func (s *inprocServer) Context() context.Context     { return s.ctx }

// SendMsg hands a copy of m to the caller: a handler may reuse what it sent once SendMsg
// returns, as on a server, which encodes it before then.
func (s *inprocServer) SendMsg(m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "in-process call %s: reply %T is not a protobuf message", s.method, m)
	}
	select {
	case s.replies <- proto.Clone(pm):
		return nil
	case <-s.ctx.Done():
		return status.FromContextError(s.ctx.Err()).Err()
	}
}

// RecvMsg gives the handler the request, once, or each of a client-streaming call's; then
// io.EOF.
func (s *inprocServer) RecvMsg(m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "in-process call %s: %T is not a protobuf message", s.method, m)
	}
	if s.reqs != nil {
		select {
		case r, open := <-s.reqs:
			if !open {
				return io.EOF
			}
			proto.Merge(pm, r)
			return nil
		case <-s.ctx.Done():
			return status.FromContextError(s.ctx.Err()).Err()
		}
	}
	if s.taken {
		return io.EOF
	}
	s.taken = true
	proto.Merge(pm, s.req)
	return nil
}

// chainUnary runs interceptors in order around the handler.
func chainUnary(ics []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		next := h
		for i := len(ics) - 1; i >= 0; i-- {
			ic, inner := ics[i], next
			next = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, inner) }
		}
		return next(ctx, req)
	}
}

var (
	_ grpc.ClientConnInterface = (*InProcess)(nil)
	_ grpc.ServiceRegistrar    = (*InProcess)(nil)
)
