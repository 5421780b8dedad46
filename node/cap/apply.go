package cap

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// What Apply did with an alert.
const (
	Created   = "created"
	Updated   = "updated"
	Cancelled = "cancelled"
	// Unchanged: the node holds the alert already, or a later alert superseded it; nothing was
	// written.
	Unchanged = "unchanged"
)

// Result says what Apply did.
type Result struct {
	Action  string `json:"action"`
	ID      string `json:"id"`
	Version int64  `json:"version"`
	// Note says what the caller may want to know, such as an Update that referenced no stored
	// alert and was stored as a new one, or the alert that superseded one left unchanged.
	Note string `json:"note,omitempty"`
}

// Apply stores an alert through a node's RecordService as CAP means it: an Alert is a record of
// its own; an Update rewrites the record of the latest alert it references, keeping its id,
// crisis and region; a Cancel deletes it. An alert acts only on records of its own mode (its
// status, and for an Exercise its exercise), so a Test or Exercise message never touches an
// actual alert.
//
// Alerting systems send the same alert many times, and out of order: an alert the node holds
// already, or one a later Update superseded, is answered Unchanged and nothing is written; a
// cancelled alert is never stored again, nor is an Update of one. A reference that names a
// stored alert by another sent time than its own is refused. Every rewrite names the version it
// read, so two importers cannot overwrite each other. Nothing is written unless the whole alert
// maps to a valid record. An error from the node is returned as its gRPC status.
func Apply(ctx context.Context, c pb.RecordServiceClient, a *Alert, opts ImportOptions) (Result, error) {
	res, err := apply(ctx, c, a, opts)
	if err == nil && len(a.Foreign) > 0 {
		// An XML signature, say: the record keeps CAP's own elements only, and the importer
		// should know that what signed the alert is gone from it.
		kept := fmt.Sprintf("not kept: <%s>, which is not of CAP's own elements", strings.Join(a.Foreign, ">, <"))
		res.Note = strings.TrimPrefix(res.Note+"; "+kept, "; ")
	}
	return res, err
}

func apply(ctx context.Context, c pb.RecordServiceClient, a *Alert, opts ImportOptions) (Result, error) {
	rec, err := ToRecord(a, opts)
	if err != nil {
		return Result{}, err
	}
	switch a.MsgType {
	case "Alert":
		return storeAlert(ctx, c, a, rec, opts, "")
	case "Update", "Cancel":
	default:
		return Result{}, fieldErr("alert.msgType", "%s messages answer other alerting systems and are not stored: import Alert, Update or Cancel", a.MsgType)
	}
	refs, err := a.ReferenceList()
	if err != nil {
		return Result{}, err
	}
	if len(refs) == 0 {
		return Result{}, fieldErr("alert.references", "missing: a %s names the alerts it refers to as sender,identifier,sent", a.MsgType)
	}
	// Only an alert's own sender updates or cancels it: a gateway that takes in several
	// senders' feeds must not let one of them rewrite or withdraw another's warning.
	for i, r := range refs {
		if r.Sender != a.Sender {
			return Result{}, status.Errorf(codes.FailedPrecondition, "alert.references[%d]: refers to an alert of %s, not of this %s's sender %s: an alert is updated or cancelled by its own sender only",
				i, r.Sender, a.MsgType, a.Sender)
		}
	}
	mode := db.ModeOf(rec).Proto()
	if a.MsgType == "Cancel" {
		return cancel(ctx, c, a, rec, refs, mode)
	}
	target, i, gone, err := findReferenced(ctx, c, refs, mode)
	if err != nil {
		return Result{}, err
	}
	if target == nil && gone == "" {
		// An alert of a cancelled chain that had no record of its own: this very Update sent
		// again, or an Update applied to the first alert's record that a reference names.
		if _, again, err := cancelledChain(ctx, c, []string{rec.Id}, mode); err != nil {
			return Result{}, err
		} else if again != "" {
			return Result{}, status.Errorf(codes.FailedPrecondition, "alert.identifier: %s of %s was applied to an alert that %s, and a cancelled alert is not stored again: to publish it anew, send an Alert with an identifier of its own",
				a.Identifier, a.Sender, again)
		}
		ids := make([]string, len(refs))
		for j, r := range refs {
			ids[j] = RecordID(r.Sender, r.Identifier)
		}
		if i, gone, err = cancelledChain(ctx, c, ids, mode); err != nil {
			return Result{}, err
		}
	}
	if gone != "" {
		// Stored as a new alert, it would bring back what its sender withdrew.
		return Result{}, status.Errorf(codes.FailedPrecondition, "alert.references[%d]: %s of %s %s and an Update of a cancelled alert is not stored: to publish it anew, send an Alert with an identifier of its own",
			i, refs[i].Identifier, refs[i].Sender, gone)
	}
	if target == nil {
		// The original may still come, late: the first reference names it, so that it is then
		// known as superseded (see storeAlert).
		rec.Labels[LabelOrig] = RecordID(refs[0].Sender, refs[0].Identifier)
		return storeAlert(ctx, c, a, rec, opts, "it references no "+storedAlert(rec)+": stored as a new one")
	}
	if err := checkSent(i, refs[i], target); err != nil {
		return Result{}, err
	}
	return rewrite(ctx, c, a, rec, target, opts, false)
}

// cancel deletes every live alert of mode that a Cancel references, each once: the record of
// each referenced alert, or of the latest Update of it. It is NOT_FOUND when none is live, and
// deletes nothing when a reference names a stored alert with another sent time.
func cancel(ctx context.Context, c pb.RecordServiceClient, a *Alert, rec *pb.Record, refs []Reference, mode *pb.Mode) (Result, error) {
	var targets []*pb.Record
	done := map[string]bool{}
	for i := range refs {
		target, _, _, err := findReferenced(ctx, c, refs[i:i+1], mode)
		if err != nil {
			return Result{}, err
		}
		if target == nil {
			continue
		}
		if err := checkSent(i, refs[i], target); err != nil {
			return Result{}, err
		}
		if !done[target.Id] {
			done[target.Id] = true
			targets = append(targets, target)
		}
	}
	var out Result
	var also []string
	for _, target := range targets {
		res, err := c.Delete(ctx, &pb.DeleteRequest{Id: target.Id, Version: target.Version, Mode: cmp.Or(mode, &pb.Mode{})})
		if err != nil && out.ID != "" {
			// Some are cancelled already: say which, and what is left; the same Cancel again
			// finds only those left.
			out.Note = strings.Join(append(also, out.ID), ", ") + " cancelled; NOT cancelled: " + target.Id + " (" + status.Convert(err).Message() + "): import the Cancel again"
			return out, nil
		}
		if err != nil {
			return Result{}, err
		}
		if out.ID != "" {
			also = append(also, fmt.Sprintf("%s (version %d)", out.ID, out.Version))
		}
		out = Result{Action: Cancelled, ID: target.Id, Version: res.Version}
	}
	if out.ID == "" {
		return Result{}, status.Errorf(codes.NotFound, "alert.references: no %s matches %s: nothing to cancel%s", storedAlert(rec), a.References, otherModes(rec))
	}
	if len(also) > 0 {
		out.Note = "also cancelled " + strings.Join(also, ", ")
	}
	return out, nil
}

// storeAlert stores an alert under its own record id: an Alert, or an Update that references no
// alert the node holds. A new alert is created, with note; one the node holds already is
// rewritten only if it changed and no later alert superseded it; a cancelled one is refused.
func storeAlert(ctx context.Context, c pb.RecordServiceClient, a *Alert, rec *pb.Record, opts ImportOptions, note string) (Result, error) {
	mode := db.ModeOf(rec).Proto()
	cur, err := c.Get(ctx, &pb.GetRequest{Id: rec.Id, Consistency: "strong", Mode: mode})
	switch status.Code(err) {
	case codes.OK:
		return rewrite(ctx, c, a, rec, cur, opts, true)
	case codes.NotFound:
	default:
		return Result{}, err
	}
	if what, err := cancelled(ctx, c, rec.Id, mode); err != nil {
		return Result{}, err
	} else if what != "" {
		return Result{}, status.Errorf(codes.FailedPrecondition, "alert.identifier: %s of %s %s and a cancelled alert is not stored again: to publish it anew, send a new alert with an identifier of its own", a.Identifier, a.Sender, what)
	}
	// A Test or Exercise alert under the identifier of a stored actual alert is refused, as the
	// Put below would refuse it, also when an Update of its own mode that references the actual
	// alert was stored first and would answer it as superseded: the importer is told to give it
	// an identifier of its own, not that it was taken (review M, M3).
	if actual, err := actualHolds(ctx, c, rec); err != nil {
		return Result{}, err
	} else if actual {
		return Result{}, clash(a, "that is actual")
	}
	// An Update of this alert may have come first and been stored as an alert of its own.
	if later, err := c.List(ctx, &pb.ListRequest{Kind: Kind, LabelSelector: LabelOrig + "=" + rec.Id, Consistency: "strong", PageSize: 10, Mode: mode}); err != nil {
		return Result{}, err
	} else if r := sameSender(later.Records, a.Sender); r != nil {
		return Result{Action: Unchanged, ID: r.Id, Version: r.Version, Note: "superseded by " + identifierOf(r) + ", which the node holds already: nothing written"}, nil
	}
	res, err := c.Put(ctx, &pb.PutRequest{Record: rec})
	if err != nil {
		return Result{}, modeClash(ctx, c, a, rec, err)
	}
	return Result{Action: Created, ID: res.Id, Version: res.Version, Note: note}, nil
}

// rewrite applies an alert to the record cur of its mode: the record of the alert itself (own),
// or of the alert an Update references. It writes nothing when cur holds the same alert, or a
// later one than this.
func rewrite(ctx context.Context, c pb.RecordServiceClient, a *Alert, rec, cur *pb.Record, opts ImportOptions, own bool) (Result, error) {
	if cur.Kind != Kind {
		return Result{}, status.Errorf(codes.FailedPrecondition, "alert.identifier: record %s is a %s record, not an alert: an alert is never written over another kind; delete that record first if it is stale", cur.Id, cur.Kind)
	}
	// An alert stays where it was filed: a poller whose --crisis changed must not move it away
	// from the crisis its readers follow.
	for _, f := range []struct{ flag, asked, stored string }{{"crisis", opts.Crisis, cur.Crisis}, {"region", opts.Region, cur.Region}} {
		if f.asked != "" && f.asked != f.stored {
			return Result{}, status.Errorf(codes.FailedPrecondition, "%s: alert %s of %s applies to record %s, in %s %q, not %q: an alert keeps its %s; import it with --%s %s, or without --%s",
				f.flag, a.Identifier, a.Sender, cur.Id, f.flag, f.stored, f.asked, f.flag, f.flag, f.stored, f.flag)
		}
	}
	var stored Alert
	if err := json.Unmarshal(cur.Body, &stored); err != nil {
		return Result{}, fmt.Errorf("cap: record %s: body: %w", cur.Id, err)
	}
	// self: the record holds this very alert (the same sender and identifier), applied before.
	self := cur.Labels[LabelRef] == rec.Labels[LabelRef]
	unchanged := Result{Action: Unchanged, ID: cur.Id, Version: cur.Version}
	switch {
	case !self && (own || later(stored.Sent, a.Sent)):
		// A record under the alert's own id that holds another alert holds an Update of it.
		unchanged.Note = "superseded by " + identifierOf(cur) + ", which the node holds already: nothing written"
		return unchanged, nil
	case self && later(stored.Sent, a.Sent):
		unchanged.Note = "the node holds a later copy of this alert, sent " + stored.Sent + ": nothing written"
		return unchanged, nil
	case self && sameAlert(&stored, a) && (opts.Classification == pb.Classification_CLASSIFICATION_UNSPECIFIED || opts.Classification == cur.Classification):
		unchanged.Note = "the node holds this alert already: nothing written"
		return unchanged, nil
	}
	note := ""
	if self {
		// CAP never reuses an identifier, but a sender may correct an alert under the same one.
		note = "the node held this alert with other content: replaced"
	}
	rec.Id, rec.Version, rec.Crisis, rec.Region = cur.Id, cur.Version, cur.Crisis, cur.Region
	if orig := cur.Labels[LabelOrig]; orig != "" {
		rec.Labels[LabelOrig] = orig
	}
	chainOn(rec, cur)
	res, err := c.Put(ctx, &pb.PutRequest{Record: rec})
	if err != nil {
		return Result{}, err
	}
	return Result{Action: Updated, ID: res.Id, Version: res.Version, Note: note}, nil
}

// findReferenced is the stored alert record of the latest reference that has one in mode, and
// that reference's index: the record the referenced alert created, the one a later Update of it
// rewrote (LabelRef), or an Update of it stored before it came (LabelOrig). It is nil when no
// reference has a record in mode: a Test or Exercise message never finds an actual alert, and
// the other way round. Then gone says how the latest reference whose record was deleted, at
// index i, went ("was cancelled …"), or is "" when none was.
func findReferenced(ctx context.Context, c pb.RecordServiceClient, refs []Reference, mode *pb.Mode) (*pb.Record, int, string, error) {
	gone, goneAt := "", -1
	for i := len(refs) - 1; i >= 0; i-- {
		id := RecordID(refs[i].Sender, refs[i].Identifier)
		r, err := c.Get(ctx, &pb.GetRequest{Id: id, Consistency: "strong", Mode: mode})
		code := status.Code(err)
		switch code {
		case codes.OK:
			if r.Kind == Kind && !r.Tombstone && db.ModeFrom(mode).Holds(r) {
				return r, i, "", nil
			}
		case codes.NotFound:
		default:
			return nil, 0, "", err
		}
		// The record an Update of it rewrote, or an Update of it that came first and was stored
		// as an alert of its own.
		for _, label := range []string{LabelRef, LabelOrig} {
			resp, err := c.List(ctx, &pb.ListRequest{Kind: Kind, LabelSelector: label + "=" + id, Consistency: "strong", PageSize: 10, Mode: mode})
			if err != nil {
				return nil, 0, "", err
			}
			if r := sameSender(resp.Records, refs[i].Sender); r != nil {
				return r, i, "", nil
			}
		}
		if code == codes.NotFound && gone == "" {
			if gone, err = cancelled(ctx, c, id, mode); err != nil {
				return nil, 0, "", err
			}
			goneAt = i
		}
	}
	if gone == "" {
		goneAt = -1
	}
	return nil, goneAt, gone, nil
}

// cancelled says how the alert record id, which Get does not find in mode, went: "was cancelled
// (record …, deleted at version N)", in an exercise that or the exercise's close; "" when the
// node never held it. Get holds no deleted record; Versions answers for one in its mode, for as
// long as the node keeps its tombstone, which it does for good (an exercise's until it is
// closed), and names the version of the delete while it lies within the history's retention
// (history.retention): after that it says "was cancelled" alone, alike on every replica.
func cancelled(ctx context.Context, c pb.RecordServiceClient, id string, mode *pb.Mode) (string, error) {
	vs, err := c.Versions(ctx, &pb.VersionsRequest{Id: id, Mode: mode})
	switch status.Code(err) {
	case codes.OK:
	case codes.NotFound:
		return "", nil
	default:
		return "", err
	}
	if v := vs.GetVersions(); len(v) > 0 && v[0].Deleted {
		return wentHow(mode, id, v[0].Version), nil
	}
	return wentHow(mode, "", 0), nil
}

// wentHow says how a deleted alert record of mode went: cancelled, or in an exercise that or the
// exercise's close; with the record and the version it was deleted at, when known.
func wentHow(mode *pb.Mode, id string, version int64) string {
	what := "was cancelled"
	if mode.GetStatus() == pb.Status_EXERCISE {
		what = fmt.Sprintf("was cancelled, or exercise %q closed,", mode.GetExercise())
	}
	if id != "" {
		what += fmt.Sprintf(" (record %s, deleted at version %d)", id, version)
	}
	return what
}

// chainOn gives rec, the next version of cur, cur's chain labels (LabelChain) and its own after
// them, the latest MaxChain: the oldest go first, so that the Updates a sender is likeliest to
// send again are the ones still known.
func chainOn(rec, cur *pb.Record) {
	type link struct {
		key string
		n   int
	}
	var chain []link
	last := 0
	for k, v := range cur.Labels {
		if strings.HasPrefix(k, LabelChain) {
			n, _ := strconv.Atoi(v)
			chain = append(chain, link{k, n})
			last = max(last, n)
		}
	}
	own := chainLabel(rec.Labels[LabelRef]) // the alert's own record id: rec.Id is cur's now
	for k := range rec.Labels {
		if strings.HasPrefix(k, LabelChain) {
			delete(rec.Labels, k)
		}
	}
	if _, applied := cur.Labels[own]; !applied {
		chain = append(chain, link{own, last + 1})
	}
	// Newest first; keys apart alike numbers (records of before, all 1) the same way everywhere.
	slices.SortFunc(chain, func(a, b link) int { return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.key, b.key)) })
	for _, l := range chain[:min(len(chain), MaxChain)] {
		rec.Labels[l.key] = strconv.Itoa(l.n)
	}
}

// cancelledChain finds, of the alerts whose record ids are ids, the first that was applied to a
// record of mode that is deleted now (see LabelChain): its index, and how it went ("was
// cancelled (record …, deleted at version N)"); "" when none was.
func cancelledChain(ctx context.Context, c pb.RecordServiceClient, ids []string, mode *pb.Mode) (int, string, error) {
	for i, id := range ids {
		// The label's index leads: a kind would walk every alert.
		resp, err := c.List(ctx, &pb.ListRequest{LabelSelector: chainLabel(id), IncludeDeleted: true, Consistency: "strong", PageSize: 10, Mode: mode})
		if err != nil {
			return 0, "", err
		}
		for _, r := range resp.Records {
			if r.Kind != Kind || !r.Tombstone {
				continue
			}
			return i, wentHow(mode, r.Id, r.Version), nil
		}
	}
	return 0, "", nil
}

// checkSent refuses reference i when the node knows the alert it names as sent at another
// time: target holds that alert, or an Update whose references name it. A reference is
// sender,identifier,sent; one that names another time is no reference to what the node holds.
func checkSent(i int, r Reference, target *pb.Record) error {
	var stored Alert
	if json.Unmarshal(target.Body, &stored) != nil {
		return nil
	}
	known := ""
	if stored.Sender == r.Sender && stored.Identifier == r.Identifier {
		known = stored.Sent
	} else if refs, err := stored.ReferenceList(); err == nil {
		for _, s := range refs {
			if s.Sender == r.Sender && s.Identifier == r.Identifier {
				known = s.Sent
			}
		}
	}
	if known == "" || sameTime(known, r.Sent) {
		return nil
	}
	return status.Errorf(codes.FailedPrecondition, "alert.references[%d]: names %s of %s as sent %s, but the node holds it as sent %s: a reference is sender,identifier,sent of the alert it names; correct the sent time",
		i, r.Identifier, r.Sender, r.Sent, known)
}

// sameSender is the first live one of the alert records whose alert came from sender.
func sameSender(recs []*pb.Record, sender string) *pb.Record {
	for _, r := range recs {
		var h struct{ Sender string }
		if !r.Tombstone && json.Unmarshal(r.Body, &h) == nil && h.Sender == sender {
			return r
		}
	}
	return nil
}

// modeClash turns the node's refusal to move a record to another mode into what the importer
// can do about it: the alert's identifier is taken by an alert of another mode, which it must
// never change. Any other error is returned as it is.
func modeClash(ctx context.Context, c pb.RecordServiceClient, a *Alert, rec *pb.Record, err error) error {
	if field, _ := api.Field(err); status.Code(err) != codes.FailedPrecondition || field != "record.status" {
		return err
	}
	other := "of another mode"
	if actual, _ := actualHolds(ctx, c, rec); actual {
		other = "that is actual"
	}
	return clash(a, other)
}

// clash refuses alert a, whose identifier is that of a stored alert of another mode (other says
// which), which an alert of a's status never changes.
func clash(a *Alert, other string) error {
	article := "a"
	if strings.ContainsRune("AEIOU", rune(a.Status[0])) {
		article = "an" // an Exercise alert, an Actual alert
	}
	return status.Errorf(codes.FailedPrecondition, "alert.identifier: %s of %s is the identifier of a stored alert %s, and %s %s alert never changes it: give the %s alert an identifier of its own",
		a.Identifier, a.Sender, other, article, a.Status, strings.ToLower(a.Status))
}

// actualHolds reports whether a stored actual record holds the id of rec, an alert that is not
// actual: a record of another mode than the read's is not found, so an actual rec finds none.
func actualHolds(ctx context.Context, c pb.RecordServiceClient, rec *pb.Record) (bool, error) {
	if rec.Status == pb.Status_ACTUAL {
		return false, nil
	}
	_, err := c.Get(ctx, &pb.GetRequest{Id: rec.Id, Consistency: "strong"})
	switch status.Code(err) {
	case codes.OK:
		return true, nil
	case codes.NotFound:
		return false, nil
	}
	return false, err
}

// storedAlert names the stored alerts of a record's mode for a person: a stored alert, a
// stored test (or draft) alert, or a stored exercise "NAME" alert.
func storedAlert(r *pb.Record) string {
	switch r.Status {
	case pb.Status_ACTUAL:
		return "stored alert"
	case pb.Status_EXERCISE:
		return fmt.Sprintf("stored exercise %q alert", r.Exercise)
	}
	return "stored " + strings.ToLower(r.Status.String()) + " alert"
}

// otherModes says, for a message that is not actual, why an actual alert it names is not found.
func otherModes(r *pb.Record) string {
	if r.Status == pb.Status_ACTUAL {
		return ""
	}
	return "; an actual alert is never changed by a Test or Exercise message"
}

// identifierOf is the CAP identifier of the alert an alert record holds, or its id.
func identifierOf(r *pb.Record) string {
	var h struct{ Identifier, Sent string }
	if json.Unmarshal(r.Body, &h) != nil || h.Identifier == "" {
		return r.Id
	}
	if h.Sent != "" {
		return h.Identifier + " (sent " + h.Sent + ")"
	}
	return h.Identifier
}

// sameTime reports whether CAP times a and b are the same moment, or, when either is
// unreadable, the same text.
func sameTime(a, b string) bool {
	ta, err1 := time.Parse(TimeLayout, a)
	tb, err2 := time.Parse(TimeLayout, b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return ta.Equal(tb)
}

// later reports whether CAP time a is later than b: false when either is unreadable.
func later(a, b string) bool {
	ta, err1 := time.Parse(TimeLayout, a)
	tb, err2 := time.Parse(TimeLayout, b)
	return err1 == nil && err2 == nil && ta.After(tb)
}

// sameAlert reports whether two alerts hold the same fields, as the record's body holds them.
func sameAlert(a, b *Alert) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// Describe is a one-line account of a result, for people.
func (r Result) Describe() string {
	s := fmt.Sprintf("%s %s (version %d)", r.Action, r.ID, r.Version)
	if r.Note != "" {
		s += ": " + strings.TrimSpace(r.Note)
	}
	return s
}
