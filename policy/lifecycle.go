package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Lifecycle refusals.
var (
	ErrSelfApproval    = errors.New("policy: the author cannot approve their own policy (four eyes)")
	ErrAlreadyApproved = errors.New("policy: this officer has approved it already")
	ErrNotProposed     = errors.New("policy: only a proposed policy can be approved or rejected")
	ErrNotActive       = errors.New("policy: only an approved policy can be revoked")
	ErrExpired         = errors.New("policy: its validity window has ended")
)

// DefaultApprovals is how many officers other than the author must approve.
const DefaultApprovals = 1

// Approve records officer's approval of p at now. The policy becomes approved once required
// officers other than the author have approved. It reports whether p became approved.
func Approve(p *Policy, doc *Document, officer string, now time.Time, required int) (bool, error) {
	if required < 1 {
		required = DefaultApprovals
	}
	switch {
	case p.State != StateProposed:
		return false, fmt.Errorf("%w: %s is %s", ErrNotProposed, p.ID, p.State)
	case officer == p.Author:
		return false, ErrSelfApproval
	case slices.Contains(p.Approvers, officer):
		return false, ErrAlreadyApproved
	case doc.ValidUntil != nil && !now.Before(*doc.ValidUntil):
		return false, fmt.Errorf("%w at %s: propose a new version", ErrExpired, doc.ValidUntil.Format(time.RFC3339))
	}
	p.Approvers = append(p.Approvers, officer)
	if len(p.Approvers) < required {
		return false, nil
	}
	p.State = StateApproved
	p.DecidedAt = now
	p.DecidedBy = officer
	return true, nil
}

// Reject records officer's rejection of a proposed policy, with a reason.
func Reject(p *Policy, officer, reason string, now time.Time) error {
	if p.State != StateProposed {
		return fmt.Errorf("%w: %s is %s", ErrNotProposed, p.ID, p.State)
	}
	if reason == "" {
		return errors.New("policy: a rejection needs a reason")
	}
	p.State, p.DecidedAt, p.DecidedBy, p.Reason = StateRejected, now, officer, reason
	return nil
}

// Revoke ends an approved policy.
func Revoke(p *Policy, officer, reason string, now time.Time) error {
	if p.State == StateProposed {
		return fmt.Errorf("%w: %s is proposed: reject it instead (policy reject %s --reason …)", ErrNotActive, p.ID, p.ID)
	}
	if p.State != StateApproved {
		return fmt.Errorf("%w: %s is %s", ErrNotActive, p.ID, p.State)
	}
	if reason == "" {
		return errors.New("policy: a revocation needs a reason")
	}
	p.State, p.DecidedAt, p.DecidedBy, p.Reason = StateRevoked, now, officer, reason
	return nil
}

// supersededBy starts the reason of a superseded policy, before the id that superseded it.
const supersededBy = "superseded by "

// SupersededBy is, of a policy in state with reason, the id of the version that superseded it,
// and whether one did.
func SupersededBy(state, reason string) (string, bool) {
	if state != StateSuperseded {
		return "", false
	}
	return strings.CutPrefix(reason, supersededBy)
}

// Supersede marks an older version of a policy superseded by the version that was just
// approved. Proposed older versions are superseded too: approving them later makes no sense.
func Supersede(old *Policy, by string, now time.Time) bool {
	if old.State != StateApproved && old.State != StateProposed {
		return false
	}
	old.State, old.DecidedAt, old.Reason = StateSuperseded, now, supersededBy+by
	return true
}

// PolicyID names a version of a policy.
func PolicyID(name string, version int) string { return fmt.Sprintf("%s@%d", name, version) }

// ParseID reads the id of a policy version, NAME@VERSION: a policy's name and a version from 1,
// as PolicyID writes them.
func ParseID(id string) (name string, version int, ok bool) {
	name, v, ok := strings.Cut(id, "@")
	version, err := strconv.Atoi(v)
	if !ok || err != nil || version < 1 || !nameRe.MatchString(name) || PolicyID(name, version) != id {
		return "", 0, false
	}
	return name, version, true
}

// IsName reports whether s is a policy's name: 1 to 63 of a-z 0-9 -, starting with a letter or
// digit.
func IsName(s string) bool { return nameRe.MatchString(s) }
