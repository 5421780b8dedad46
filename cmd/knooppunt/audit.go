package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/witness"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read and verify the hash-chained audit log",
		Long: `The audit log is append-only and held by every replica. Every policy step, phase change,
disclosure, retraction, search and denied federation request is an entry, and so are the steps
on peers, rules, exercises, webhooks and the group's replicas, and each backup: with its time,
actor, action, subject and detail. Each entry is chained by SHA-256 over the previous entry's
hash and its own encoding. audit list reads the entries; audit verify recomputes the chain, also
against a head kept elsewhere (--anchor) or the heads the peers keep (--witnesses). For officers,
admins and the local socket. See "The audit log" in docs/officer.md.`,
	}
	cmd.AddCommand(newAuditListCmd(), newAuditVerifyCmd())
	return cmd
}

// auditFirst are the detail keys that say who got a record, and why, in the order a table gives
// them: what an officer looks for, before the rest.
var auditFirst = []string{"recipient", "reason", "version", "policies", "redacted", "count"}

// auditDetail gives an entry's detail, a JSON object, as key=value pairs, auditFirst's keys first
// and the others in order; a detail that is no object as it is. A string value is given unquoted,
// unless it holds a control character: then quoted, with it escaped, so that no entry, such as a
// purpose a partner stated with a newline in it, can write a line of the table that looks like
// another entry (review O, O3).
func auditDetail(detail string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(detail), &m); err != nil {
		return quoteControl(detail)
	}
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int {
		rank := func(k string) int {
			if i := slices.Index(auditFirst, k); i >= 0 {
				return i
			}
			return len(auditFirst)
		}
		return rank(a) - rank(b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		var v string
		if json.Unmarshal(m[k], &v) == nil {
			// A string: quoted also when it could read as another pair (a purpose that says
			// recipient=…, review Q, Q8).
			if strings.ContainsAny(v, `="`) {
				v = strconv.Quote(v)
			}
		} else {
			// A number, list or object, on one line: JSON escapes the controls in its strings.
			var b bytes.Buffer
			if json.Compact(&b, m[k]) == nil {
				v = b.String()
			} else {
				v = string(m[k])
			}
		}
		parts[i] = quoteControl(k) + "=" + quoteControl(v)
	}
	return strings.Join(parts, " ")
}

// quoteControl gives s as it is, or quoted with its characters escaped when it holds a control or
// invisible character (a newline, an escape, a bidi override, a line separator: policy.Hidden,
// review Q, Q8), so that no value breaks the table's line or reorders it on screen.
func quoteControl(s string) string {
	if strings.ContainsFunc(s, policy.Hidden) && !strings.HasPrefix(s, `"`) {
		return strconv.Quote(s)
	}
	return s
}

func newAuditListCmd() *cobra.Command {
	var (
		f     clientFlags
		req   pb.ListAuditRequest
		since string
		wide  bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit entries",
		Long: `List audit entries in order. --action filters on one action, or on every action under a
prefix ending in a dot, such as "policy.". --purpose keeps the entries that state a purpose
(a request's stated_purpose) or name it as a granting policy's purpose (purposes).
--recipient keeps what went to one partner, all its replicas and users together: give the
peer's name or its trust domain, and for a peer that was removed, its trust domain. --crisis
keeps the disclosures and retractions of a crisis's records, which name its crisis, kind and
classification as they went out.

The table gives each entry's detail as key=value, what answers "who got it, and why" first
(recipient, reason, version, policies, redacted, count), cut at 80 characters; --wide gives it
whole. Times are in this machine's zone, which they name.`,
		Example: `  knooppunt audit list --last --limit 20
  knooppunt audit list --action policy. --since 24h
  knooppunt audit list --actor spiffe://lcvs.crisis.test/user/officer-a -o json
  knooppunt audit list --action federation. --purpose "spreiding en opvang vluchtelingen"
  knooppunt audit list --action federation. --subject sitrep-vr09-1 --wide
  knooppunt audit list --action federation.disclose --recipient ggdghor --crisis oekraine -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.checkOutput(); err != nil {
				return err
			}
			if since != "" {
				t, err := parseSince(since)
				if err != nil {
					return fmt.Errorf("--since: %w", err)
				}
				req.Since = timestamppb.New(t)
			}
			conn, err := f.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			resp, err := pb.NewAuditServiceClient(conn).List(cmd.Context(), &req)
			if err != nil {
				return callError(&f, err)
			}
			if f.output == "json" {
				type entry struct {
					Seq     int64           `json:"seq"`
					At      time.Time       `json:"at"`
					Actor   string          `json:"actor"`
					Action  string          `json:"action"`
					Subject string          `json:"subject"`
					Detail  json.RawMessage `json:"detail"`
					Hash    string          `json:"hash"`
				}
				out := make([]entry, len(resp.Entries))
				for i, e := range resp.Entries {
					out[i] = entry{e.Seq, e.At.AsTime(), e.Actor, e.Action, e.Subject, json.RawMessage(e.Detail), hex.EncodeToString(e.Hash)}
				}
				return printJSON(cmd.OutOrStdout(), out)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "SEQ\tAT\tACTOR\tACTION\tSUBJECT\tDETAIL")
			for _, e := range resp.Entries {
				detail := auditDetail(e.Detail)
				if !wide {
					detail = truncate(detail, 80)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, stamp(e.At.AsTime()), e.Actor, e.Action, e.Subject, detail)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			limit := req.Limit
			if limit == 0 {
				limit = 100 // the node's default
			}
			if n := len(resp.Entries); n > 0 && int32(n) == limit && req.Newest {
				fmt.Fprintf(cmd.ErrOrStderr(), "Note: these are the last %d entries that match, and there may be more before them: --limit shows more.\n", n)
			} else if n > 0 && int32(n) == limit {
				// The oldest first: what follows the last line may matter most.
				fmt.Fprintf(cmd.ErrOrStderr(), "Note: these are the first %d entries that match, and there may be more: --after %d shows the next ones; --since narrows the time.\n", n, resp.Entries[n-1].Seq)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&req.Action, "action", "", "only this action, or a prefix ending in a dot")
	fl.StringVar(&req.Actor, "actor", "", "only this actor's SPIFFE ID")
	fl.StringVar(&req.Subject, "subject", "", "only this subject (policy id, crisis, record id)")
	fl.StringVar(&req.Purpose, "purpose", "", "only entries with this stated purpose or granting policy's purpose")
	fl.StringVar(&req.Recipient, "recipient", "", "only what went to this peer (its name or trust domain), every replica and user of it")
	fl.StringVar(&req.Crisis, "crisis", "", "only disclosures and retractions of this crisis's records")
	fl.StringVar(&since, "since", "", "only entries since (RFC 3339, or a duration such as 24h)")
	fl.Int64Var(&req.AfterSeq, "after", 0, "only entries after this seq")
	fl.Int32Var(&req.Limit, "limit", 100, "entries to show (at most 10000)")
	fl.BoolVar(&wide, "wide", false, "give each entry's detail whole, not cut at 80 characters")
	fl.BoolVar(&req.Newest, "last", false, "the last --limit entries that match (what happened lately), instead of the first")
	f.register(cmd, true)
	f.fill(map[string]string{"action": "action", "actor": "actor", "subject": "subject", "purpose": "purpose", "recipient": "recipient", "crisis": "crisis", "since": "since", "limit": "limit"})
	return cmd
}

func newAuditVerifyCmd() *cobra.Command {
	var (
		f         clientFlags
		anchor    string
		witnesses bool
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Verify the audit log's hash chain",
		Long: `Recompute the audit log's hash chain and report the first entry that does not verify:
one that was changed, deleted or moved. The exit code is 1 when the chain is broken, and 4 when
verify could not run (the node cannot be reached, a flag it cannot read): a monitor that pages on
1 does not page for an outage.

A chain that someone with write access to the database rewrote from its first entry, with every
hash recomputed, verifies on its own. To catch that, keep the head that verify prints (SEQ:HASH)
outside the node, in an officer's log or with a partner, and pass it later with --anchor: the
chain must still hold that entry with that hash.

--witnesses does that with the peers: the node hands each peer its signed head every few minutes
and after every policy and peer step, and verify asks every peer for the heads it keeps and checks that
the chain holds each one. A chain rewritten whole fails, naming the witness and the entry. A
peer that cannot be reached is reported and does not fail the check. When no witness vouches for
the chain (none can be reached, none holds a head yet, or the node has no peers), verify says so
and exits 2.`,
		Example: `  knooppunt audit verify
  knooppunt audit verify --anchor 1834:9f2c5e0b7a41d3c68e25f90a4b1c7d3e6f8a2b5c9d0e1f4a7b3c6d9e2f5a8b1c   # the head an earlier verify printed
  knooppunt audit verify --witnesses             # against the heads the peers keep; exit 2 when none vouched`,
		Annotations: map[string]string{errorExitAnnotation: "4"},
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &pb.VerifyAuditRequest{Witnesses: witnesses, AcceptNoWitnesses: witnesses}
			if anchor != "" {
				a, err := parseAnchor(anchor)
				if err != nil {
					return fmt.Errorf("--anchor: %w", err)
				}
				req.Anchor = a
			}
			return f.call(func(conn *grpc.ClientConn) error {
				resp, err := pb.NewAuditServiceClient(conn).Verify(cmd.Context(), req)
				if err != nil {
					return err
				}
				head := ""
				if resp.Head != nil {
					head = fmt.Sprintf("%d:%x", resp.Head.Seq, resp.Head.Hash)
				}
				type witnessRow struct {
					Peer        string `json:"peer"`
					TrustDomain string `json:"trust_domain"`
					State       string `json:"state"`
					Heads       int64  `json:"heads"`
					Seq         int64  `json:"seq,omitempty"`
					Problem     string `json:"problem,omitempty"`
					// NewestSeq and NewestAt: the newest head it keeps that the chain holds.
					NewestSeq int64      `json:"newest_seq,omitempty"`
					NewestAt  *time.Time `json:"newest_at,omitempty"`
				}
				ws := make([]witnessRow, len(resp.Witnesses))
				var newest *pb.WitnessReport
				for i, w := range resp.Witnesses {
					ws[i] = witnessRow{Peer: w.Peer, TrustDomain: w.TrustDomain, State: w.State, Heads: w.Heads, Seq: w.Seq, Problem: w.Problem, NewestSeq: w.NewestSeq}
					if w.NewestAt != nil {
						at := w.NewestAt.AsTime().UTC()
						ws[i].NewestAt = &at
					}
					if w.State == witness.OK && w.NewestSeq > newest.GetNewestSeq() {
						newest = w
					}
				}
				switch {
				case f.output == "json":
					out := map[string]any{"ok": resp.Ok, "entries": resp.Entries, "first_broken": resp.FirstBroken, "problem": resp.Problem, "head": head}
					if req.Anchor != nil {
						out["anchor_holds"] = resp.Ok
					}
					if witnesses {
						out["witnesses"] = ws
					}
					if err := printJSON(cmd.OutOrStdout(), out); err != nil {
						return err
					}
				case resp.Ok:
					fmt.Fprintf(cmd.OutOrStdout(), "ok: %d entries verify\n", resp.Entries)
					if req.Anchor != nil {
						fmt.Fprintf(cmd.OutOrStdout(), "anchor %d holds: the chain still has that entry with that hash\n", req.Anchor.Seq)
					}
					if head != "" {
						fmt.Fprintf(cmd.OutOrStdout(), "head: %s\n", head)
					}
				case resp.FirstBroken > resp.Entries:
					// A witness's head past the end of the log: entries were taken from its end,
					// as a restore of an older backup does. "BROKEN at entry 5 of 2" was no entry.
					end := fmt.Sprintf("the log ends at entry %d", resp.Entries)
					if resp.Entries == 0 {
						end = "the log holds no entry"
					}
					// The head past the end is the anchor's when one was given, else a witness's;
					// the node's problem says the end again (review Z, Z12).
					who := "a witness holds"
					if anchor != "" {
						who = "the anchor names"
					}
					if strings.HasPrefix(resp.Problem, end) {
						fmt.Fprintf(cmd.OutOrStdout(), "BROKEN: %s a head for entry %d: %s\n", who, resp.FirstBroken, resp.Problem)
					} else {
						fmt.Fprintf(cmd.OutOrStdout(), "BROKEN: %s a head for entry %d, and %s: %s\n", who, resp.FirstBroken, end, resp.Problem)
					}
				default:
					fmt.Fprintf(cmd.OutOrStdout(), "BROKEN at entry %d of %d: %s\n", resp.FirstBroken, resp.Entries, resp.Problem)
				}
				if witnesses && f.output != "json" {
					tw := newTable(cmd.OutOrStdout())
					fmt.Fprintln(tw, "WITNESS\tTRUST DOMAIN\tSTATE\tHEADS\tPROBLEM")
					for _, w := range ws {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", w.Peer, w.TrustDomain, w.State, w.Heads, w.Problem)
					}
					if err := tw.Flush(); err != nil {
						return err
					}
					if newest != nil {
						// What the witnesses vouch for ends at their newest head: later entries
						// are the node's word alone until the next hand-over. Every witness that
						// holds it is named: one name read as if no other did.
						var holders []string
						for _, w := range resp.Witnesses {
							if w.State == witness.OK && w.NewestSeq == newest.NewestSeq {
								holders = append(holders, w.Peer)
							}
						}
						who := holders[0] + " holds it"
						if len(holders) > 1 {
							who = fmt.Sprintf("%d witnesses hold it: %s", len(holders), strings.Join(holders, ", "))
						}
						fmt.Fprintf(cmd.OutOrStdout(), "Witnessed up to entry %d (of %d), signed at %s; %s.\n",
							newest.NewestSeq, resp.Entries, stamp(newest.NewestAt.AsTime()), who)
					}
				}
				if !resp.Ok {
					return exitError(1)
				}
				if note := unvouched(resp.Witnesses); witnesses && note != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "Note: %s.\n", note)
					return exitError(2)
				}
				return nil
			})
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&anchor, "anchor", "", "a head printed by an earlier verify, SEQ:HASH, that the chain must still hold")
	cmd.Flags().BoolVar(&witnesses, "witnesses", false, "also check the chain against the signed heads every peer keeps of it")
	f.fill(map[string]string{"anchor": "anchor"})
	return cmd
}

// unvouched says why no witness vouched for the chain, or "" when one did. Then the check the
// caller asked for did not happen, which must not read as a pass: not when witnesses could not
// be asked, nor when none holds a head yet, nor when the node has no peers to ask (it answers
// with no witness: a chain whose witnesses were removed read as a clean pass, review O, O2).
func unvouched(ws []*pb.WitnessReport) string {
	if len(ws) == 0 {
		return "this node has no peers: nobody witnessed the chain. Keep the head outside the node, and verify with --anchor"
	}
	by := map[string]int{}
	for _, w := range ws {
		if w.State == witness.OK {
			return ""
		}
		by[w.State]++
	}
	var why []string
	for _, s := range []struct{ state, says string }{
		{witness.Unreachable, "unreachable"},
		{witness.None, "hold no head of it yet (the node hands each peer its head every few minutes and after every policy and peer step)"},
		{witness.Invalid, "hold heads that do not verify"},
	} {
		if n := by[s.state]; n > 0 {
			why = append(why, fmt.Sprintf("%d of %d %s", n, len(ws), s.says))
		}
	}
	if len(why) == 0 {
		return ""
	}
	return "no witness could vouch for the chain: " + strings.Join(why, "; ") + ". Check again later"
}

// parseAnchor parses SEQ:HASH as audit verify prints a head.
func parseAnchor(s string) (*pb.AuditAnchor, error) {
	seqText, hashText, ok := strings.Cut(s, ":")
	seq, err := strconv.ParseInt(seqText, 10, 64)
	if !ok || err != nil || seq <= 0 {
		return nil, fmt.Errorf("%q: want SEQ:HASH as audit verify prints the head, such as 1834:9f2c…", s)
	}
	hash, err := hex.DecodeString(hashText)
	if err != nil || len(hash) != sha256.Size {
		return nil, fmt.Errorf("%q: the hash must be %d hexadecimal digits", hashText, 2*sha256.Size)
	}
	return &pb.AuditAnchor{Seq: seq, Hash: hash}, nil
}
