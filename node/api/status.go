// Package api holds what every gRPC service of a node shares: turning errors into status codes
// (in one place) and the logging interceptors. Each service lives in a package of its own below.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/store"
	"github.com/knooppunt/knooppunt/policy"
)

// Status turns an error from the layers below into a gRPC status whose message tells the user
// what to fix. Errors it does not know become Internal, logged with the detail, and the client
// sees no more than that something failed.
func Status(log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var fe *record.FieldError
	var stale *db.StaleVersionError
	var modeChange *db.ModeChangeError
	var low *store.LowDiskError
	var older *store.OlderReplicaError
	if code, reason, ok := exerciseRefusal(err); ok {
		return status.Error(code, "exercise: "+reason)
	}
	switch {
	case errors.As(err, &modeChange):
		return FieldStatus(codes.FailedPrecondition, "record.status", fmt.Sprintf("record %q is a record of the %s mode, not %s: a record keeps its mode; delete it and write it anew", modeChange.ID, modeChange.From, modeChange.To))
	case errors.As(err, &fe):
		return FieldStatus(fe.Code, fe.Field, fe.Reason)
	case errors.As(err, &stale):
		return staleStatus(stale)
	case errors.Is(err, db.ErrNotFound):
		return status.Error(codes.NotFound, "record not found")
	case errors.Is(err, db.ErrFileNotFound):
		return status.Error(codes.NotFound, "file not found")
	case errors.Is(err, db.ErrFileRefused):
		return status.Error(codes.FailedPrecondition, strings.TrimPrefix(err.Error(), "db: "))
	case errors.Is(err, db.ErrOtherListing):
		return Invalid("page_token", "belongs to a listing with other filters: send the filters of the listing it came from, or start again without it")
	case errors.Is(err, db.ErrBadPageToken):
		return Invalid("page_token", "not a token from a previous List: start again without it")
	case errors.As(err, &low):
		return ReasonStatus(codes.ResourceExhausted, ReasonDiskLow, fmt.Sprintf("the disk of the leader's data directory has %d MiB free, under its reserve of %d MiB (limits.disk_reserve_mib): free space or add disk, and the node takes writes again; deletes and reads go on", low.Free>>20, low.Reserve>>20))
	case errors.As(err, &older):
		return ReasonStatus(codes.FailedPrecondition, ReasonOlderReplica, fmt.Sprintf("replica %s of this node runs an earlier knooppunt release, which would apply this write otherwise (apply level %d, the leader's %d): the node takes writes again once every replica runs the same release. Upgrade %s (docs/cluster.md, Upgrades), or remove it from the group with knooppunt cluster remove %s", older.Replica, older.Level, older.Want, older.Replica, older.Replica))
	case errors.Is(err, syscall.ENOSPC):
		// Before ErrNotLeader: a replica whose Raft log the full disk refuses has no leader.
		return ReasonStatus(codes.ResourceExhausted, ReasonDiskFull, "the disk of the data directory is full: free space, the node takes writes again once it can")
	case errors.Is(err, store.ErrNotLeader):
		return status.Error(codes.Unavailable, "this replica is not the leader and cannot take writes now: retry shortly")
	case errors.Is(err, store.ErrLeadsNow):
		return status.Error(codes.Unavailable, "the group changed leader while this call waited: retry")
	case errors.Is(err, store.ErrMaybeCommitted):
		// Not UNAVAILABLE, which clients take as safe to retry: the write may be stored.
		return status.Error(codes.Aborted, "the leader changed while this write was being committed, so it may have been stored: read it again, and write it again only if it is not there")
	case errors.Is(err, store.ErrClosed), errors.Is(err, db.ErrClosed):
		return status.Error(codes.Unavailable, "the node is shutting down: retry on another replica or later")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	log.Error("internal error", "err", err)
	return status.Error(codes.Internal, "internal error: the node logged the detail")
}

// WriteStatus is Status for a record write that the store refused: a write into an exercise that
// is not open is refused at the record's exercise field.
func WriteStatus(log *slog.Logger, err error) error {
	return StatusAt(log, "record.exercise", err)
}

// StatusAt is Status for a request whose field names an exercise: a refusal for an exercise
// that is not open, or that exists already, is refused at field.
func StatusAt(log *slog.Logger, field string, err error) error {
	if code, reason, ok := exerciseRefusal(err); ok {
		return FieldStatus(code, field, reason)
	}
	return Status(log, err)
}

// exerciseRefusal is the code and the reason of a refusal for an exercise that is not open, or
// that exists already; ok is false for any other error.
func exerciseRefusal(err error) (code codes.Code, reason string, ok bool) {
	what := strings.TrimPrefix(err.Error(), "db: ")
	switch {
	case errors.Is(err, db.ErrExerciseUnknown):
		return codes.FailedPrecondition, what, true
	case errors.Is(err, db.ErrExerciseClosed):
		// A write: a close of a closed exercise is answered by the exercise service itself.
		return codes.FailedPrecondition, what + ": it takes no records any more: write in an open exercise, or start another", true
	case errors.Is(err, db.ErrExerciseExists):
		return codes.AlreadyExists, what + ": choose another name", true
	}
	return 0, "", false
}

// SameDocument refuses a proposal whose source is the policy version id's, in state (see
// ReasonSameDocument), naming the field source as FieldStatus does.
func SameDocument(id, state, msg string) error {
	st := status.New(codes.AlreadyExists, "source: "+msg)
	both, err := st.WithDetails(
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "source", Description: msg}}},
		&errdetails.ErrorInfo{Reason: ReasonSameDocument, Domain: reasonDomain, Metadata: map[string]string{"policy": id, "state": state}})
	if err != nil {
		return st.Err()
	}
	return both.Err()
}

// SameDocumentOf is the policy version and its state that a SameDocument refusal names; ok is
// false for another error.
func SameDocumentOf(err error) (id, state string, ok bool) {
	info := reasonInfo(err)
	if info == nil || info.Reason != ReasonSameDocument {
		return "", "", false
	}
	return info.Metadata["policy"], info.Metadata["state"], true
}

// Invalid is an InvalidArgument status naming field (see FieldStatus).
func Invalid(field, format string, args ...any) error {
	return FieldStatus(codes.InvalidArgument, field, fmt.Sprintf(format, args...))
}

// FieldStatus is a status that refuses the request field (a path such as filter.ids[2] or
// record.body.beds_free) for reason. The message says "field: reason", for a person; a
// google.rpc.BadRequest detail holds the field and the reason apart, for a program: the CLI
// says the flag that filled the field, the web pages put the reason at their own field, and a
// REST caller finds it under "details" in the JSON of the error.
//
// A field and a reason are cut to MaxFieldBytes and MaxMessageBytes: a path that holds a label's
// key, or a reason that quotes a value, of a megabyte would not fit the trailers that carry them
// (review AF, AF4).
func FieldStatus(code codes.Code, field, reason string) error {
	field, reason = cut(field, MaxFieldBytes), cut(reason, MaxMessageBytes)
	st := status.New(code, field+": "+reason)
	withField, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: reason}}})
	if err != nil {
		// Only a detail that cannot be marshalled fails; the message still names the field.
		return st.Err()
	}
	return withField.Err()
}

// MaxReason is the longest reason a step keeps in the audit log, in bytes: every list of steps
// (phases, policies, the audit log) carries it back, and a reason of megabytes would make them
// too large for a client to take.
const MaxReason = 2000

// CheckReason checks a step's reason, the request field reason: at most MaxReason bytes, UTF-8
// text with no control or invisible character but line breaks and tabs (review AF, AF2: such a
// reason was kept, and the REST listing of policies answered 500 from then on), and, when why is
// not "", not empty nor spaces only (why says what the reason is for).
func CheckReason(reason, why string) error {
	if len(reason) > MaxReason {
		return Invalid("reason", "%d bytes is over the limit of %d: say it shorter", len(reason), MaxReason)
	}
	if !utf8.ValidString(reason) {
		return Invalid("reason", "not valid UTF-8: write it as plain text")
	}
	if hidden := record.HiddenAt(reason, hiddenInReason); hidden != "" {
		return Invalid("reason", "%s: write it as plain text", hidden)
	}
	if why != "" && strings.TrimSpace(reason) == "" {
		return Invalid("reason", "missing: %s", why)
	}
	return nil
}

// hiddenInReason names what a reason may not hold: what policy.Hidden names, but for line breaks
// and tabs, which a reason of some lines has.
func hiddenInReason(c rune) bool { return c != '\n' && c != '\r' && c != '\t' && policy.Hidden(c) }

// Reasons a refusal carries in a google.rpc.ErrorInfo detail (see ReasonStatus), for a program
// to tell it apart without reading its message, which is for a person and may change.
const (
	// ReasonRoleDenied: the caller's roles do not reach the method: it has no role on this node,
	// it is a peer calling a local method or a trust domain that is not a peer, or its role is
	// not one the method takes.
	ReasonRoleDenied = "ROLE_DENIED"
	// ReasonFourEyes: the author of a policy cannot approve it; another officer must.
	ReasonFourEyes = "FOUR_EYES"
	// ReasonNewerProposal: a newer version of the policy waits for approval; approve or reject
	// that one first.
	ReasonNewerProposal = "NEWER_PROPOSAL"
	// ReasonSameDocument (ALREADY_EXISTS): a proposal is byte for byte a version of the policy
	// that waits for approval or is approved; its ErrorInfo metadata names it ("policy") and its
	// state ("state").
	ReasonSameDocument = "SAME_DOCUMENT"
	// ReasonPolicyLint: the proposal does not lint with this release; propose a new version.
	ReasonPolicyLint = "POLICY_LINT"
	// ReasonPolicyExpired: the policy's validity window has ended.
	ReasonPolicyExpired = "POLICY_EXPIRED"
	// ReasonPolicyState: the policy is not in the state the step needs (approve and reject a
	// proposal, revoke an approved policy).
	ReasonPolicyState = "POLICY_STATE"
	// ReasonNotCurrent (UNAVAILABLE): the replica a peer asked is not current with its group
	// (behind it, cut off from it, removed from it, or without a leader) and decides nothing for
	// a peer: ask another replica of the node.
	ReasonNotCurrent = "REPLICA_NOT_CURRENT"
	// ReasonStaleVersion (ABORTED): the write named a version of the record that is not the
	// one the node holds; the ErrorInfo's metadata current_version is the one it holds (0: it
	// never held the record; a deleted record's is the version of its deletion).
	ReasonStaleVersion = "STALE_VERSION"
	// ReasonDiskLow (RESOURCE_EXHAUSTED): the leader's disk has less free than its reserve
	// (limits.disk_reserve_mib) and takes no writes that add data until there is room; deletes
	// go on. Retry later, not at once (over REST: 503 with Retry-After).
	ReasonDiskLow = "DISK_LOW"
	// ReasonDiskFull (RESOURCE_EXHAUSTED): the disk of the data directory is full, past the
	// reserve: nothing is written, deletes neither, until there is room. Retry later (over REST:
	// 503 with Retry-After).
	ReasonDiskFull = "DISK_FULL"
	// ReasonAuditFork (FAILED_PRECONDITION, from FederationService Witness): the witness kept
	// the head as evidence that the caller's audit chain forked or was rewritten (a second head
	// for one entry, or one below a head it holds).
	ReasonAuditFork = "AUDIT_FORK"
	// ReasonOlderReplica (FAILED_PRECONDITION): a replica of the node's group runs an earlier
	// release, which applies log entries otherwise; the leader takes no writes until every
	// replica runs its release (docs/cluster.md, Upgrades). Retry once the group is upgraded.
	ReasonOlderReplica = "OLDER_REPLICA"
	// ReasonNotLeaderEither (UNAVAILABLE): a replica that another forwarded a call to, taking it
	// for the leader, is not the leader either; it did nothing. The forwarding replica waits for
	// the group's leader and sends the call there.
	ReasonNotLeaderEither = "NOT_LEADER_EITHER"
)

// staleStatus refuses a write that named a version the node does not hold, with the version it
// holds in the reason's metadata, for a program that must tell "never held" from "changed since".
func staleStatus(stale *db.StaleVersionError) error {
	return reasonStatus(codes.Aborted, ReasonStaleVersion,
		fmt.Sprintf("record %q is at version %d, not %d: read it again and retry with version %d", stale.ID, stale.Current, stale.Expected, stale.Current),
		map[string]string{"current_version": strconv.FormatInt(stale.Current, 10)})
}

// CurrentVersion is the version a STALE_VERSION refusal says the node holds (staleStatus); ok is
// false for any other error.
func CurrentVersion(err error) (v int64, ok bool) {
	info := reasonInfo(err)
	if info == nil || info.Reason != ReasonStaleVersion {
		return 0, false
	}
	v, perr := strconv.ParseInt(info.Metadata["current_version"], 10, 64)
	return v, perr == nil
}

// roleDenied refuses a caller whose roles do not reach a method that needs one of roles, with
// the roles in the reason's metadata (needs, comma-separated), for a page to say in its own
// language what the person lacks.
func roleDenied(msg string, roles []string) error {
	return reasonStatus(codes.PermissionDenied, ReasonRoleDenied, msg, map[string]string{"needs": strings.Join(roles, ",")})
}

// NeededRoles are the roles a ROLE_DENIED refusal says the method needs (roleDenied); nil for a
// refusal that names none (no role on this node at all, a peer) and for any other error.
func NeededRoles(err error) []string {
	info := reasonInfo(err)
	if info == nil || info.Reason != ReasonRoleDenied || info.Metadata["needs"] == "" {
		return nil
	}
	return strings.Split(info.Metadata["needs"], ",")
}

// reasonDomain is the ErrorInfo domain of this node's reasons.
const reasonDomain = "knooppunt"

// ReasonStatus is a status with code and msg that carries reason in an ErrorInfo detail.
func ReasonStatus(code codes.Code, reason, msg string) error {
	return reasonStatus(code, reason, msg, nil)
}

// reasonStatus is ReasonStatus with metadata in the ErrorInfo.
func reasonStatus(code codes.Code, reason, msg string, metadata map[string]string) error {
	st := status.New(code, msg)
	withReason, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: reasonDomain, Metadata: metadata})
	if err != nil {
		return st.Err()
	}
	return withReason.Err()
}

// Reason is the reason a refusal carries (see ReasonStatus); "" for one that carries none.
func Reason(err error) string {
	if info := reasonInfo(err); info != nil {
		return info.Reason
	}
	return ""
}

// reasonInfo is the ErrorInfo of this node's domain that err carries, or nil.
func reasonInfo(err error) *errdetails.ErrorInfo {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return nil
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == reasonDomain {
			return info
		}
	}
	return nil
}

// Field is the request field a refusal names and what it says of it (see FieldStatus); "" for an
// error that names none, such as one that is no status or one from a node of a release before
// the detail.
func Field(err error) (field, reason string) {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return "", ""
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 {
			return br.FieldViolations[0].Field, br.FieldViolations[0].Description
		}
	}
	return "", ""
}

// Repeated refuses a list field whose value at i was named before, at j; what names one value
// ("kind") for the message.
func Repeated(field string, vals []string, what string) error {
	for i, v := range vals {
		if j := slices.Index(vals, v); j < i {
			return Invalid(fmt.Sprintf("%s[%d]", field, i), "%q is named already, at %s[%d]: name each %s once", v, field, j, what)
		}
	}
	return nil
}

// MaxFieldBytes and MaxMessageBytes bound a refusal's field path and its message: gRPC carries
// them in trailers, which proxies and clients take up to some kilobytes.
const (
	MaxFieldBytes   = 256
	MaxMessageBytes = 2048
)

// cut is s cut to at most n bytes, the ellipsis where it was cut included (policy.Cut).
func cut(s string, n int) string { return policy.Cut(s, n-len("…")) }

// cutStatus is err with its status's message cut to MaxMessageBytes, its details kept.
func cutStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok || len(st.Message()) <= MaxMessageBytes {
		return err
	}
	p := st.Proto()
	p.Message = cut(p.Message, MaxMessageBytes)
	return status.FromProto(p).Err()
}

// CutUnary and CutStream cut the message of each refusal to MaxMessageBytes, whichever code
// made it (see FieldStatus), before it is logged and sent.
func CutUnary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		return resp, cutStatus(err)
	}
}

func CutStream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return cutStatus(h(srv, ss))
	}
}

// LogUnary logs each failed unary call at warn level with its method and code; one that its
// caller ended (cancelled: a follower that stopped waiting for a leader it lost) at debug.
func LogUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if err != nil {
			switch st := status.Convert(err); st.Code() {
			case codes.NotFound:
			case codes.Canceled:
				log.Debug("call cancelled by its caller", "method", info.FullMethod, "msg", st.Message())
			default:
				log.Warn("call refused", "method", info.FullMethod, "code", st.Code().String(), "msg", st.Message())
			}
		}
		return resp, err
	}
}

// RetryAfter is the delay the RetryInfo detail of err's status gives, if it has one: a refusal
// over a rate limit that says when to try again, which REST answers as 429 with Retry-After.
func RetryAfter(err error) (time.Duration, bool) {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}
