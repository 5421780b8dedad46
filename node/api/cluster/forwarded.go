package cluster

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/witness"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// checkForwarded checks a command a follower forwarded (store.Forwardable) against the shape the
// node's own code gives it, where it builds one on a follower: an audit entry of the kinds a
// follower appends (forwardedAudit), a file's chunk and step (node/attach), a witnessed head
// (federation/peerserver Witness) and what a stream disclosed (federation/peerserver). A replica
// is trusted, but a follower with a bug, or of another release, put audit entries of invalid
// UTF-8 (REST /v1/audit answered 500 from then on), of 1970 and of an officer's approval into
// the tamper-evident log (review AF, AF3). Commands go into the log for good: what the node
// never sends is refused, with INVALID_ARGUMENT naming the field.
func checkForwarded(c *pb.Command) error {
	if err := checkUTF8(c.ProtoReflect(), "command"); err != nil {
		return err
	}
	switch cmd := c.Cmd.(type) {
	case *pb.Command_AppendAudit:
		return checkAppendAudit(cmd.AppendAudit)
	case *pb.Command_FileChunk:
		return checkFileChunk(cmd.FileChunk)
	case *pb.Command_FileStep:
		return checkFileStep(cmd.FileStep)
	case *pb.Command_KeepHead:
		return checkKeepHead(cmd.KeepHead)
	case *pb.Command_RecordDisclosures:
		return checkRecordDisclosures(cmd.RecordDisclosures)
	}
	return api.Invalid("command", "only audit entries, disclosures, witnessed heads and file chunks and steps are forwarded")
}

// checkUTF8 checks that every string in m, at any depth, is UTF-8: the commands' proto file
// leaves that to the code (utf8_validation NONE), and a reader that encodes the stored text as
// protobuf or JSON fails on it. A map's key is not named in the path: it is a value.
func checkUTF8(m protoreflect.Message, path string) error {
	var err error
	str := func(fd protoreflect.FieldDescriptor, v protoreflect.Value, at string) error {
		switch {
		case fd.Kind() == protoreflect.StringKind && !utf8.ValidString(v.String()):
			return api.Invalid(at, "invalid UTF-8")
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			return checkUTF8(v.Message(), at)
		}
		return nil
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		at := path + "." + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = str(fd, l.Get(i), fmt.Sprintf("%s[%d]", at, i))
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				if !utf8.ValidString(k.String()) {
					err = api.Invalid(at, "a key is invalid UTF-8")
				} else {
					err = str(fd.MapValue(), v, at)
				}
				return err == nil
			})
		default:
			err = str(fd, v, at)
		}
		return err == nil
	})
	return err
}

// forwardedAudit are the actions of the audit entries a follower appends itself, through its
// leader, each with the form of its actor; every other action is written by the FSM, as part of
// the step it records, or by the leader alone.
var forwardedAudit = map[string]func(actor string) bool{
	db.AuditBackup:            callerActor, // ClusterService Backup, on any replica
	db.AuditClusterJoin:       callerActor, // on the leader, which may lose the lead meanwhile
	db.AuditClusterRemove:     callerActor,
	db.AuditAccessDenied:      callerActor, // a person's call refused on the web interface
	db.AuditFederationDenied:  callerActor, // counted per caller, or under "(other callers)"
	db.AuditFederationNothing: callerActor,
	db.AuditSearch:            callerActor,
	db.AuditRecordRead:        callerActor, // a read of confidential records, on any replica
	db.AuditFileDisclosure:    callerActor,
	db.AuditHandshakeRefused:  claimedActor,
	db.AuditConfigReload:      configActor,
	db.AuditDisputed:          trustDomainActor, // the peer that disputed the node's head
}

// callerActor: a SPIFFE ID, the local socket, or the callers counted together (node/refused.go).
func callerActor(a string) bool {
	return isSPIFFEID(a) || a == "local socket" || a == "(other callers)"
}

// claimedActor is the SPIFFE ID a refused handshake claimed, cut to 256 bytes, or what stands
// for one it did not claim (federation/identity claimedID, node/refused.go).
func claimedActor(a string) bool {
	switch a {
	case "(no certificate)", "(unparseable certificate)", "(no SPIFFE ID)", "(other claimed IDs)":
		return true
	}
	if cut, ok := strings.CutSuffix(a, "…"); ok {
		return strings.HasPrefix(cut, "spiffe://") && len(cut) <= 256
	}
	return isSPIFFEID(a)
}

// configActor is the config file of a replica, read at a reload or at a start (node/identity.go,
// node/configseen.go).
func configActor(a string) bool {
	id, ok := strings.CutPrefix(a, "config file of replica ")
	if !ok {
		return false
	}
	id = strings.TrimSuffix(id, ", edited while it was stopped")
	return config.CheckReplicaID("", id) == nil
}

func trustDomainActor(a string) bool {
	_, err := spiffeid.TrustDomainFromString(a)
	return err == nil && !strings.Contains(a, "/")
}

func isSPIFFEID(s string) bool {
	_, err := spiffeid.FromString(s)
	return err == nil
}

func checkAppendAudit(a *pb.AppendAudit) error {
	if len(a.Entries) == 0 {
		return api.Invalid("command.append_audit.entries", "missing: the entries to append")
	}
	for i, e := range a.Entries {
		at := fmt.Sprintf("command.append_audit.entries[%d]", i)
		if e == nil {
			return api.Invalid(at, "missing")
		}
		actor, ok := forwardedAudit[e.Action]
		switch {
		case !ok:
			return api.Invalid(at+".action", "%s is not an action a follower audits: its leader appends only %s", policy.Quote(e.Action), forwardedActions())
		case !actor(e.Actor):
			return api.Invalid(at+".actor", "%s is not who takes %s: use the caller's SPIFFE ID or the word the node writes for it", policy.Quote(e.Actor), e.Action)
		case e.Seq != 0 || len(e.PrevHash) != 0 || len(e.Hash) != 0:
			return api.Invalid(at+".seq", "set: the audit log gives an entry its seq and hashes, not the replica that appends it")
		}
		if err := checkTime(at+".at", e.At); err != nil {
			return err
		}
		if strings.ContainsRune(e.Subject, 0) {
			return api.Invalid(at+".subject", "holds a NUL character")
		}
		var detail map[string]any
		if err := json.Unmarshal([]byte(e.Detail), &detail); err != nil || detail == nil {
			return api.Invalid(at+".detail", "not a JSON object")
		}
	}
	return nil
}

// forwardedActions lists forwardedAudit's actions, sorted, for a message.
func forwardedActions() string {
	return strings.Join(slices.Sorted(maps.Keys(forwardedAudit)), ", ")
}

// checkTime checks a time the node's code sets (timestamppb.Now): present, and one the node can
// hold. The Unix epoch is a time no command of the node carries: it is the time left unset.
func checkTime(field string, ts *timestamppb.Timestamp) error {
	if ts == nil || ts.Seconds == 0 && ts.Nanos == 0 {
		return api.Invalid(field, "missing: the time the replica took the step")
	}
	if record.CheckTime(field, ts) != nil {
		return api.Invalid(field, "not a time a node can hold: use one between 1678 and 2262")
	}
	return nil
}

// checkUploadID checks an upload's id, a UUID in its canonical form (attach.NewWriter).
func checkUploadID(field, id string) error {
	if u, err := uuid.Parse(id); err != nil || u.String() != id {
		return api.Invalid(field, "%s is not an upload id: the writer of a file gives it a UUID, such as 0b6e4c1e-8f5a-4d0c-9a43-2f1e7b9c5d21", policy.Quote(id))
	}
	return nil
}

func checkFileChunk(c *pb.FileChunk) error {
	if err := checkUploadID("command.file_chunk.upload_id", c.UploadId); err != nil {
		return err
	}
	if c.Seq < 0 {
		return api.Invalid("command.file_chunk.seq", "%d is negative: an upload's chunks count from 0", c.Seq)
	}
	if len(c.Data) == 0 || len(c.Data) > attach.ChunkBytes {
		return api.Invalid("command.file_chunk.data", "%d bytes: a chunk holds 1 to %d", len(c.Data), attach.ChunkBytes)
	}
	return checkTime("command.file_chunk.at", c.At)
}

func checkFileStep(s *pb.FileStep) error {
	const f = "command.file_step."
	switch s.Action {
	case "commit":
		if err := checkUploadID(f+"upload_id", s.UploadId); err != nil {
			return err
		}
		if record.CheckSHA256("", s.Sha256) != nil {
			return api.Invalid(f+"sha256", "%s is not a SHA-256: use 64 lowercase hex digits", policy.Quote(s.Sha256))
		}
		if s.Size <= 0 {
			return api.Invalid(f+"size", "%d: a file committed holds 1 byte or more", s.Size)
		}
		if s.MediaType == "" || len(s.MediaType) > 128 || strings.ContainsFunc(s.MediaType, policy.Hidden) {
			return api.Invalid(f+"media_type", "%s is not a media type", policy.Quote(s.MediaType))
		}
		if s.Origin != "" && !trustDomainActor(s.Origin) {
			return api.Invalid(f+"origin", "%s is not a trust domain: leave it empty for a file uploaded to this node", policy.Quote(s.Origin))
		}
	case "abort":
		if err := checkUploadID(f+"upload_id", s.UploadId); err != nil {
			return err
		}
	case "sweep":
		if s.UploadId != "" {
			return api.Invalid(f+"upload_id", "set: a sweep names no upload")
		}
		if err := checkTime(f+"stale_before", s.StaleBefore); err != nil {
			return err
		}
	default:
		return api.Invalid(f+"action", "%s is not a file step: use commit, abort or sweep", policy.Quote(s.Action))
	}
	if s.Action != "sweep" && s.StaleBefore != nil {
		return api.Invalid(f+"stale_before", "set: only a sweep takes it")
	}
	if s.Action != "commit" && (s.Sha256 != "" || s.Size != 0 || s.MediaType != "" || s.Origin != "") {
		return api.Invalid(f+"action", "%s takes no sha256, size, media_type or origin: only a commit does", s.Action)
	}
	return checkTime(f+"at", s.At)
}

// checkKeepHead checks a head the follower verified against the peer's bundle (witness.Verify):
// the leader, which has no call from the peer to go by, checks that it is whole and that its
// signature verifies with the key of the certificate it came with, of the signer it names.
func checkKeepHead(k *pb.KeepHead) error {
	const f = "command.keep_head."
	if !trustDomainActor(k.Peer) {
		return api.Invalid(f+"peer", "%s is not a trust domain", policy.Quote(k.Peer))
	}
	h := k.Head
	switch {
	case h == nil:
		return api.Invalid(f+"head", "missing: the head the peer signed")
	case h.Org != k.Peer:
		return api.Invalid(f+"head.org", "%s is not the peer, %s", policy.Quote(h.Org), k.Peer)
	case h.Seq < 1:
		return api.Invalid(f+"head.seq", "%d: a head's seq is 1 or more", h.Seq)
	case len(h.Hash) != sha256.Size:
		return api.Invalid(f+"head.hash", "%d bytes: a head's hash is a SHA-256 of %d", len(h.Hash), sha256.Size)
	case len(h.Signature) == 0:
		return api.Invalid(f+"head.signature", "missing")
	case len(h.Chain) == 0 || len(h.Chain) > 8:
		return api.Invalid(f+"head.chain", "%d certificates: a head comes with its signer's chain of 1 to 8", len(h.Chain))
	}
	if err := checkTime(f+"head.at", h.At); err != nil {
		return err
	}
	if err := checkTime(f+"received_at", k.ReceivedAt); err != nil {
		return err
	}
	size := 0
	for _, der := range h.Chain {
		size += len(der)
	}
	if size > witness.MaxChainBytes {
		return api.Invalid(f+"head.chain", "%d bytes is over the %d a head may carry", size, witness.MaxChainBytes)
	}
	signer, err := spiffeid.FromString(k.Signer)
	if err != nil || signer.TrustDomain().Name() != k.Peer || !strings.HasPrefix(signer.Path(), "/node/") {
		return api.Invalid(f+"signer", "%s is not a replica of %s", policy.Quote(k.Signer), k.Peer)
	}
	leaf, err := x509.ParseCertificate(h.Chain[0])
	if err != nil {
		return api.Invalid(f+"head.chain[0]", "not a certificate")
	}
	if id, err := x509svid.IDFromCert(leaf); err != nil || id != signer {
		return api.Invalid(f+"head.chain[0]", "not the certificate of the signer, %s", k.Signer)
	}
	if identity.CheckPayload(leaf, witness.Payload(h), h.Signature) != nil {
		return api.Invalid(f+"head.signature", "does not verify with the key of the signer's certificate")
	}
	return nil
}

func checkRecordDisclosures(d *pb.RecordDisclosures) error {
	const f = "command.record_disclosures."
	if !trustDomainActor(d.Recipient) {
		return api.Invalid(f+"recipient", "%s is not a trust domain", policy.Quote(d.Recipient))
	}
	id, err := spiffeid.FromString(d.RecipientId)
	if err != nil || id.TrustDomain().Name() != d.Recipient {
		return api.Invalid(f+"recipient_id", "%s is not a SPIFFE ID of %s", policy.Quote(d.RecipientId), d.Recipient)
	}
	if d.Holder != "" && d.Holder != d.RecipientId && d.Holder != "spiffe://"+d.Recipient+"/node/*" {
		return api.Invalid(f+"holder", "%s is neither the recipient_id nor all replicas of its node", policy.Quote(d.Holder))
	}
	if d.Via != "Query" && d.Via != "Subscribe" {
		return api.Invalid(f+"via", "%s: use Query or Subscribe", policy.Quote(d.Via))
	}
	if err := checkTime(f+"at", d.At); err != nil {
		return err
	}
	if len(d.StatedPurpose) > policy.MaxPurposeBytes || strings.ContainsFunc(d.StatedPurpose, policy.Hidden) {
		return api.Invalid(f+"stated_purpose", "not a purpose: at most %d bytes of text on one line", policy.MaxPurposeBytes)
	}
	if d.ConfirmedThrough < 0 {
		return api.Invalid(f+"confirmed_through", "%d is negative", d.ConfirmedThrough)
	}
	for i, x := range d.Disclosed {
		at := fmt.Sprintf(f+"disclosed[%d]", i)
		if err := checkDisclosure(at, x); err != nil {
			return err
		}
		switch {
		case x.Version < 1:
			return api.Invalid(at+".version", "%d: a record disclosed has version 1 or more", x.Version)
		case len(x.Policies) == 0:
			return api.Invalid(at+".policies", "missing: the policies that granted the record")
		case x.Seq != 0 || x.Reason != "":
			return api.Invalid(at+".reason", "set: only a retraction has a reason and a seq")
		}
	}
	for i, x := range d.Retracted {
		at := fmt.Sprintf(f+"retracted[%d]", i)
		if err := checkDisclosure(at, x); err != nil {
			return err
		}
		switch {
		case x.Reason == "":
			return api.Invalid(at+".reason", "missing: why the record was retracted")
		case x.Seq < 0:
			return api.Invalid(at+".seq", "%d is negative", x.Seq)
		}
	}
	for i, r := range d.Refused {
		at := fmt.Sprintf(f+"refused[%d]", i)
		switch {
		case r == nil || r.Policy == "":
			return api.Invalid(at+".policy", "missing")
		case r.Records < 0 || r.GrantedOtherwise < 0:
			return api.Invalid(at+".records", "negative")
		}
	}
	for id := range d.PolicyPurposes {
		if id == "" {
			return api.Invalid(f+"policy_purposes", "a policy without its id")
		}
	}
	return nil
}

// checkDisclosure checks what a disclosure and a retraction have alike: the record's id, and its
// crisis, kind and classification when given (a retraction of a record gone has none).
func checkDisclosure(at string, x *pb.Disclosure) error {
	switch {
	case x == nil:
		return api.Invalid(at, "missing")
	case record.CheckID("", x.RecordId) != nil:
		return api.Invalid(at+".record_id", "%s is not a record id", policy.Quote(x.RecordId))
	case x.Crisis != "" && record.CheckCrisis("", x.Crisis) != nil:
		return api.Invalid(at+".crisis", "%s is not a crisis name", policy.Quote(x.Crisis))
	case x.Kind != "" && record.CheckKindName("", x.Kind) != nil:
		return api.Invalid(at+".kind", "%s is not a kind's name", policy.Quote(x.Kind))
	}
	if _, ok := pb.Classification_name[int32(x.Classification)]; !ok {
		return api.Invalid(at+".classification", "%d is not a classification", x.Classification)
	}
	for i, p := range x.Policies {
		if p == "" {
			return api.Invalid(fmt.Sprintf("%s.policies[%d]", at, i), "empty: a policy's id")
		}
	}
	return nil
}
