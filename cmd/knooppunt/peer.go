package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/knooppunt/knooppunt/federation/invite"
	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/api/peers"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newPeerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "peer",
		Short: "Other organisations' nodes: invite, accept, list, show, remove",
		Long: `Two organisations' nodes come to trust each other with one invitation each way, and no
central operator. One side writes an invitation (peer invite) and hands the file over by any
channel; the other side accepts it (peer accept) after comparing its fingerprint over the phone,
and hands back the answer that accept writes; the first side accepts the answer. Peers accepted
this way live in the node's Raft log, so every replica has them without editing files. Peers of
the config file still work; peer list shows where each came from. See docs/onboarding.md.`,
	}
	cmd.AddCommand(newPeerInviteCmd(), newPeerAcceptCmd(), newPeerListCmd(), newPeerShowCmd(), newPeerRemoveCmd())
	return cmd
}

func newPeerInviteCmd() *cobra.Command {
	var (
		f      clientFlags
		groups []string
		ttl    time.Duration
		out    string
	)
	cmd := &cobra.Command{
		Use:   "invite [-o FILE]",
		Short: "Write an invitation to this node, signed with its SVID key",
		Long: `Write an invitation for a partner: this organisation's name, trust domain, addresses,
bundle endpoint and SPIFFE ID, its current trust bundle and an expiry, signed with the node's
SVID key. Hand the file over by any channel (mail, a chat, a USB stick): it holds nothing secret.
Then call the partner and read them the fingerprint printed here: they compare it with the one
their peer accept shows. --groups proposes the peer groups the partner places this node in; the
partner shows them, and decides.`,
		Example: `  knooppunt peer invite -o invitation.json
  knooppunt peer invite --groups veiligheidsregios --ttl 48h -o vrbn.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "json" || out == "table" {
				// Elsewhere -o is a listing's format; here it names the file, and a file called
				// json is surely not what was meant.
				return fmt.Errorf("-o: here -o names the invitation's file, which is JSON already: give a file name such as invitation.json, or - for standard output")
			}
			return f.call(func(conn *grpc.ClientConn) error {
				resp, err := pb.NewPeerServiceClient(conn).Invite(cmd.Context(), &pb.InviteRequest{Groups: groups, TtlSeconds: int64(ttl / time.Second)})
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if out == "" || out == "-" {
					if _, err := w.Write(resp.Invitation); err != nil {
						return err
					}
					w = cmd.ErrOrStderr()
				} else if err := os.WriteFile(out, resp.Invitation, 0o644); err != nil {
					return fmt.Errorf("-o: %w", err)
				} else {
					fmt.Fprintf(w, "Invitation written to %s, valid until %s.\n", out, stamp(resp.ExpiresAt.AsTime()))
				}
				fmt.Fprintf(w, "Fingerprint: %s\n", resp.Fingerprint)
				fmt.Fprintln(w, "Hand the file to your partner, then call them and read the fingerprint aloud: their `knooppunt peer accept` shows it.")
				if !invitationNamesBundleEndpoint(resp.Invitation) {
					fmt.Fprintf(cmd.ErrOrStderr(), "\nWarning: this invitation names no bundle endpoint (bundle_endpoint.url in the node's config, or a bundle_endpoint.listen on a host partners can dial). %s.\n", peers.NoBundleEndpointMeans)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringSliceVar(&groups, "groups", nil, "peer groups to propose for this node on the partner's side, such as veiligheidsregios")
	durationFlag(cmd.Flags(), &ttl, "ttl", invite.DefaultTTL, "how long the invitation is valid (at most 720h)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the invitation to FILE (default: standard output)")
	f.register(cmd, false)
	f.fill(map[string]string{"ttl": "ttl_seconds", "groups": "groups"})
	return cmd
}

// invitationNamesBundleEndpoint reports whether an invitation file the node just wrote names its
// bundle endpoint. The file is the node's own answer, so it is read, not checked; a file that
// does not read counts as naming one, so that the warning is never a false alarm.
func invitationNamesBundleEndpoint(file []byte) bool {
	var env struct {
		Invitation []byte `json:"invitation"`
	}
	var inv invite.Invitation
	if json.Unmarshal(file, &env) != nil || json.Unmarshal(env.Invitation, &inv) != nil || inv.SpiffeID == "" {
		return true
	}
	return inv.BundleEndpoint != ""
}

func newPeerAcceptCmd() *cobra.Command {
	var (
		f            clientFlags
		groups       []string
		name, answer string
		yes, replace bool
		noGroups     bool
	)
	cmd := &cobra.Command{
		Use:   "accept FILE",
		Short: "Check a partner's invitation, confirm its fingerprint, and add the peer",
		Long: `Check a partner's invitation: its signature, that its own bundle certifies the key that
signed it, and its expiry. Show who it is from and its fingerprint, and ask whether the partner
read you the same fingerprint over the phone (--yes skips the question, for scripts that checked
it otherwise). Then add the peer through Raft: every replica trusts it, subscribes to it and
shows it in peer list, with no file to edit and no restart.

Unless the invitation was itself an answer to yours, accept writes your answer (--answer FILE)
for the partner to accept in turn. Accepting the same invitation again changes nothing, and says
so. An invitation from a trust domain that is already a peer with another bundle is refused,
unless --replace.

A peer accepted before keeps its name and groups when a new invitation of it is accepted (new
addresses, a new bundle), unless --name or --groups give new ones. To change only a peer's
groups, accept its invitation again with --groups; --no-groups takes it out of every group.`,
		Example: `  knooppunt peer accept ncc.json --groups rijk
  knooppunt peer accept vrbn.json --groups veiligheidsregios --answer answer-for-vrbn.json
  knooppunt peer accept their-answer.json --yes
  knooppunt peer accept ncc.json --groups rijk,landelijk --yes   # NCC's groups, changed`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.checkOutput(); err != nil {
				return err
			}
			file, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			// Checked here first, so that the person confirms the fingerprint of an invitation
			// that is whole; the node checks it again before it adds anything.
			inv, fp, err := peers.Open(file, time.Now())
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], callError(&f, err))
			}
			// This node's own invitation is refused before anyone is asked to confirm its
			// fingerprint (the node refuses it too). A node that does not answer is said by the
			// accept itself.
			if conn, err := f.dial(); err == nil {
				st, err := pb.NewStatusServiceClient(conn).Status(cmd.Context(), &pb.StatusRequest{})
				conn.Close()
				if err == nil && st.Org == inv.TrustDomain {
					// As the node refuses it (INVALID_ARGUMENT at invitation), for -o json.
					return callError(&f, api.Invalid("invitation", "it is this node's own (%s): accept the invitation your partner sent; nothing was added", inv.TrustDomain))
				}
			}
			info := cmd.ErrOrStderr()
			if f.output != "json" {
				info = cmd.OutOrStdout()
			}
			// Every field is the partner's own writing: shown through terminalSafe, none can move
			// the cursor over the fingerprint. The question says the fingerprint again, last.
			info = terminalSafe{info}
			showInvitation(info, inv, fp)
			if !yes {
				ok, err := confirm(cmd.InOrStdin(), info, "Did "+inv.Name+" read you exactly this fingerprint, "+fp+"? [y/N] ", errNoAnswer)
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("not confirmed: nothing was added. Call %s on a number you know and compare the fingerprint again", inv.Name)
				}
			}
			// The answer's file is made before the node adds anything, so that a place it cannot be
			// written fails first; its name waits for the peer's. An invitation that answers
			// this node's own gets no answer, and needs no place to write one.
			var out *besideFile
			if inv.AnswerTo == "" {
				if out, err = createBeside(cmp.Or(answer, "answer.json")); err != nil {
					return fmt.Errorf("--answer: %w: nothing was added; give a place this program can write to", err)
				}
				defer out.discard()
			}
			return f.call(func(conn *grpc.ClientConn) error {
				resp, err := pb.NewPeerServiceClient(conn).Accept(cmd.Context(), &pb.AcceptRequest{
					Invitation: file, Groups: groups, Name: name, Fingerprint: fp, Replace: replace, NoGroups: noGroups,
				})
				if err != nil {
					return err
				}
				replaced, wrote := false, len(resp.Answer) > 0 && out != nil
				if wrote {
					if answer == "" {
						answer = "answer-for-" + resp.Peer.Name + ".json"
					}
					_, err := os.Stat(answer)
					replaced = err == nil
					out.target = answer
					_, err = out.Write(resp.Answer)
					if err := errors.Join(err, out.Chmod(0o644), out.commit()); err != nil {
						return fmt.Errorf("--answer: %w: the peer WAS added; write its answer again with: knooppunt peer accept %s --answer PATH", err, args[0])
					}
				}
				if f.output == "json" {
					j := acceptJSON{Outcome: resp.Outcome, Peer: toPeerJSON(resp.Peer), Granting: nonNilStrings(resp.Granting)}
					if wrote {
						j.AnswerFile, j.AnswerFingerprint = answer, resp.AnswerFingerprint
					}
					return printJSON(cmd.OutOrStdout(), j)
				}
				w := cmd.OutOrStdout()
				p := resp.Peer
				switch resp.Outcome {
				case "unchanged":
					fmt.Fprintf(w, "%s (%s) is a peer with this invitation, name and groups [%s] already: nothing changed.\n", p.Name, p.TrustDomain, strings.Join(p.Groups, " "))
				default:
					fmt.Fprintf(w, "Peer %s (%s) %s, groups [%s]. Every replica trusts it and subscribes to it now.\n", p.Name, p.TrustDomain, resp.Outcome, strings.Join(p.Groups, " "))
				}
				if !p.Active {
					fmt.Fprintf(w, "Note: the config file also lists %s or its name; the config file's peer is the one in effect.\n", p.TrustDomain)
				}
				// A typo in the partner's address shows only later, as a subscription that stays
				// down: over the local socket this machine is the node's, so try it now.
				if strings.HasPrefix(f.node, "unix://") {
					if err := reachable(p.Addresses, 3*time.Second); err != nil {
						fmt.Fprintf(w, "Note: from this machine, %v: check the address with %s, and the firewall; `knooppunt peer show %s` says whether the subscription opens.\n", err, inv.Name, p.Name)
					}
				}
				if len(resp.Granting) > 0 {
					// Placing a peer in a group is not an officer's step, yet it widens what they approved.
					fmt.Fprintf(w, "Note: approved policies that name its groups grant it records from now on: %s. Tell your security officers.\n", strings.Join(resp.Granting, ", "))
				}
				if wrote {
					fmt.Fprintf(w, "Your answer for %s: %s (fingerprint %s).\n", inv.Name, answer, resp.AnswerFingerprint)
					if replaced {
						fmt.Fprintf(w, "It replaced the earlier %s: hand them this one.\n", filepath.Base(answer))
					}
					fmt.Fprintf(w, "Hand it to them; they accept it with `knooppunt peer accept %s` (the file, wherever it is on their side).\n", filepath.Base(answer))
				} else {
					// This node keeps no list of the invitations it wrote: answer_to is the file's
					// claim, which only the partner's node letting this one in bears out.
					fmt.Fprintf(w, "The file says it answers your invitation %s, so no answer was written: if so, %s has you as a peer already. `knooppunt peer show %s` shows its subscription open once its node lets yours in; if it stays down, refused, send %s an invitation of yours (`knooppunt peer invite`).\n",
						inv.AnswerTo, inv.Name, p.Name, inv.Name)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringSliceVar(&groups, "groups", nil, "peer groups to place the peer in, which policies name (the groups an invitation proposes are never applied by themselves)")
	cmd.Flags().StringVar(&name, "name", "", "what this node calls the peer (default: the first label of its trust domain)")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask: the fingerprint was checked otherwise (scripts)")
	cmd.Flags().BoolVar(&replace, "replace", false, "replace a peer of the same trust domain that has another bundle")
	cmd.Flags().BoolVar(&noGroups, "no-groups", false, "take a peer accepted before out of every group (without --groups it keeps its groups)")
	cmd.MarkFlagsMutuallyExclusive("groups", "no-groups")
	cmd.Flags().StringVar(&answer, "answer", "", "where to write your answer invitation (default answer-for-NAME.json)")
	f.register(cmd, true)
	f.fill(map[string]string{"name": "name", "groups": "groups", "no-groups": "no_groups"})
	return cmd
}

// reachable reports whether any of a peer's addresses answers a TCP connection within timeout,
// and if none does, why the first did not.
func reachable(addrs []string, timeout time.Duration) error {
	if len(addrs) == 0 {
		return nil
	}
	errs := make(chan error, len(addrs))
	for _, a := range addrs {
		go func() {
			c, err := net.DialTimeout("tcp", a, timeout)
			if err == nil {
				c.Close()
			}
			errs <- err
		}()
	}
	var first error
	for range addrs {
		if err := <-errs; err == nil {
			return nil
		} else if first == nil {
			first = err
		}
	}
	return fmt.Errorf("nothing answers at %s (%v)", strings.Join(addrs, " or "), first)
}

type acceptJSON struct {
	Outcome           string   `json:"outcome"`
	Peer              peerJSON `json:"peer"`
	Granting          []string `json:"granting"`
	AnswerFile        string   `json:"answer_file,omitempty"`
	AnswerFingerprint string   `json:"answer_fingerprint,omitempty"`
}

func showInvitation(w io.Writer, inv *invite.Invitation, fp string) {
	fmt.Fprintf(w, "Invitation from %s\n", inv.Name)
	tw := newTable(w)
	fmt.Fprintf(tw, "  trust domain\t%s\n", inv.TrustDomain)
	fmt.Fprintf(tw, "  signed by\t%s\n", inv.SpiffeID)
	fmt.Fprintf(tw, "  addresses\t%s\n", strings.Join(inv.Addresses, " "))
	if inv.BundleEndpoint != "" {
		fmt.Fprintf(tw, "  bundle endpoint\t%s\n", inv.BundleEndpoint)
	}
	if len(inv.Groups) > 0 {
		fmt.Fprintf(tw, "  proposed groups\t%s (applied only if you give them with --groups)\n", strings.Join(inv.Groups, " "))
	}
	if inv.AnswerTo != "" {
		fmt.Fprintf(tw, "  answers\tyour invitation %s, it says\n", inv.AnswerTo)
	}
	fmt.Fprintf(tw, "  expires\t%s\n", stamp(inv.ExpiresAt))
	tw.Flush()
	fmt.Fprintf(w, "\nFingerprint: %s\n", fp)
}

// errNoAnswer is the end of standard input before an answer: a script, or a pipe.
var errNoAnswer = errors.New("no answer: standard input ended before one was given (a script or a pipe): nothing was added. Answer at a terminal, or give --yes if you compared the fingerprint otherwise")

// confirm asks a yes/no question on in; anything but y or yes is no. The end of in before an
// answer is noAnswer.
func confirm(in io.Reader, out io.Writer, question string, noAnswer error) (bool, error) {
	fmt.Fprint(out, question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		if err == io.EOF {
			fmt.Fprintln(out)
			return false, noAnswer
		}
		return false, err
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes", "j", "ja":
		return true, nil
	}
	return false, nil
}

type peerJSON struct {
	Name           string   `json:"name"`
	TrustDomain    string   `json:"trust_domain"`
	OrgName        string   `json:"org_name,omitempty"`
	Source         string   `json:"source"`
	Active         bool     `json:"active"`
	Addresses      []string `json:"addresses"`
	Groups         []string `json:"groups"`
	BundleEndpoint string   `json:"bundle_endpoint,omitempty"`
	EndpointID     string   `json:"endpoint_id,omitempty"`
	Fingerprint    string   `json:"fingerprint,omitempty"`
	// FingerprintInForce: of the CAs this node trusts for the peer now, when its bundle
	// endpoint changed them since Fingerprint.
	FingerprintInForce string     `json:"fingerprint_in_force,omitempty"`
	Invitation         string     `json:"invitation,omitempty"`
	AddedBy            string     `json:"added_by,omitempty"`
	AddedAt            *time.Time `json:"added_at,omitempty"`
	LeavingSince       *time.Time `json:"leaving_since,omitempty"`
	// Cursor and LastDelivery: where this node's subscription to the peer resumes, and when the
	// peer last delivered.
	Cursor       int64      `json:"cursor"`
	LastDelivery *time.Time `json:"last_delivery,omitempty"`
	// Subscription is open, connecting or down on the replica that answered, or empty when it
	// runs none (a follower: only the leader subscribes).
	Subscription      string     `json:"subscription,omitempty"`
	SubscriptionSince *time.Time `json:"subscription_since,omitempty"`
	SubscriptionError string     `json:"subscription_error,omitempty"`
	// BundleRefreshedAt is this replica's last good fetch of the peer's trust bundle; BundleError
	// why the latest fail, since BundleFailingSince. BundleLastAttempt is when it last tried,
	// BundleNextAttempt when it tries next.
	BundleRefreshedAt  *time.Time `json:"bundle_refreshed_at,omitempty"`
	BundleError        string     `json:"bundle_error,omitempty"`
	BundleFailingSince *time.Time `json:"bundle_failing_since,omitempty"`
	BundleLastAttempt  *time.Time `json:"bundle_last_attempt,omitempty"`
	BundleNextAttempt  *time.Time `json:"bundle_next_attempt,omitempty"`
	// Version is the peer's release as its node said it to the leader's subscription: "" from a
	// node of an earlier release, and until it said it (DescribedAt, then, is absent).
	Version     string     `json:"version"`
	DescribedAt *time.Time `json:"described_at,omitempty"`
}

// bundleText says how this replica's refresh of the peer's trust bundle fares: when it last
// succeeded, or since when it fails, why, and when it tries again (soon after a failure: one
// failure at start, before the partner's endpoint listened, is no outage). Empty when it fetches
// none.
func bundleText(p *pb.PeerInfo) string {
	last := "never"
	if p.BundleRefreshedAt != nil {
		last = age(p.BundleRefreshedAt) + " ago"
	}
	switch {
	case p.BundleError != "":
		attempt := p.BundleError
		if p.BundleLastAttempt != nil {
			attempt = "last attempt " + age(p.BundleLastAttempt) + " ago: " + attempt
		}
		if p.BundleNextAttempt != nil {
			if next := time.Until(p.BundleNextAttempt.AsTime()).Round(time.Second); next > 0 {
				attempt += "; next in " + next.String()
			} else {
				attempt += "; next now"
			}
		}
		return fmt.Sprintf("refresh failing for %s (%s; last good fetch %s; the last good bundle stays in use until the partner's CA rotates)", age(p.BundleFailingSince), attempt, last)
	case p.BundleRefreshedAt != nil:
		return "fetched " + last
	}
	return ""
}

// subscriptionText says how the subscription to a peer fares, with its last error when long.
func subscriptionText(p *pb.PeerInfo, long bool) string {
	if p.Subscription == "" {
		return "-"
	}
	s := p.Subscription
	if p.SubscriptionSince != nil && p.Subscription != "connecting" {
		s += " " + age(p.SubscriptionSince)
	}
	if long && p.SubscriptionError != "" {
		s += ": " + p.SubscriptionError
		if strings.Contains(p.SubscriptionError, "bad certificate") {
			// The partner's node refused this node's certificate at the handshake: it does not
			// trust this node, or no longer (it removed it), which nothing else here can tell.
			s += " (the partner's node refuses this node's certificate: this node's own SVID may have expired (status shows its expiry), or the partner has not accepted your answer yet, or removed this node; ask them to run peer list)"
		} else if strings.HasSuffix(p.SubscriptionError, "(PermissionDenied)") {
			// Past the handshake, a partner refuses only a node that is not its peer.
			s += " (the partner's node refuses this node: " + search.DeniedBecause + ")"
		}
	}
	return s
}

// versionText says the peer's release, as its node said it; "-" until it did, with why when long.
func versionText(p *pb.PeerInfo, long bool) string {
	switch {
	case p.DescribedAt == nil && long:
		return "- (the leader asks the peer once its subscription to it has caught up)"
	case p.DescribedAt == nil:
		return "-"
	case p.Version == "":
		return "unknown (earlier release)"
	case long:
		return p.Version + " (said " + age(p.DescribedAt) + " ago)"
	}
	return p.Version
}

// fingerprintCell is the fingerprint of the CAs in force, marked when the peer's bundle endpoint
// changed them since it was added (peer show gives both).
func fingerprintCell(p *pb.PeerInfo) string {
	if p.FingerprintInForce != "" {
		return p.FingerprintInForce + " (changed)"
	}
	return p.Fingerprint
}

func toPeerJSON(p *pb.PeerInfo) peerJSON {
	j := peerJSON{Name: p.Name, TrustDomain: p.TrustDomain, OrgName: p.OrgName, Source: p.Source, Active: p.Active,
		Addresses: p.Addresses, Groups: p.Groups, BundleEndpoint: p.BundleEndpoint, EndpointID: p.EndpointId,
		Fingerprint: p.Fingerprint, FingerprintInForce: p.FingerprintInForce, Invitation: p.Invitation, AddedBy: p.AddedBy}
	if j.Addresses == nil {
		j.Addresses = []string{}
	}
	if j.Groups == nil {
		j.Groups = []string{}
	}
	if p.AddedAt != nil {
		t := p.AddedAt.AsTime()
		j.AddedAt = &t
	}
	if p.LeavingSince != nil {
		t := p.LeavingSince.AsTime()
		j.LeavingSince = &t
	}
	j.Cursor, j.LastDelivery = p.Cursor, optionalTime(p.ReceivedAt)
	j.Subscription, j.SubscriptionSince, j.SubscriptionError = p.Subscription, optionalTime(p.SubscriptionSince), p.SubscriptionError
	j.BundleRefreshedAt, j.BundleError, j.BundleFailingSince = optionalTime(p.BundleRefreshedAt), p.BundleError, optionalTime(p.BundleFailingSince)
	j.BundleLastAttempt, j.BundleNextAttempt = optionalTime(p.BundleLastAttempt), optionalTime(p.BundleNextAttempt)
	j.Version, j.DescribedAt = p.Version, optionalTime(p.DescribedAt)
	return j
}

func newPeerListCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the peers: from the config file and accepted through Raft",
		Long: `List the peers: NAME, TRUST DOMAIN, SOURCE (config: the config file's; raft: accepted with peer
accept, on every replica), ACTIVE (no for an accepted peer that the config file names too, whose
entry is in effect; leaving after peer remove), SUBSCRIPTION (open, connecting or down, and for
how long), VERSION (the release its node says it runs), GROUPS, ADDRESSES and FINGERPRINT, of the
CAs trusted for it now, marked (changed) when its bundle endpoint changed them since it was
added. Only the leader subscribes: a follower asks it, and shows - when it cannot reach it. For
readers, editors, officers, admins and the local socket; -o json gives each peer as peer show
-o json does.`,
		Example: `  knooppunt peer list -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				resp, err := pb.NewPeerServiceClient(conn).List(cmd.Context(), &pb.ListPeersRequest{})
				if err != nil {
					return err
				}
				if f.output == "json" {
					out := make([]peerJSON, len(resp.Peers))
					for i, p := range resp.Peers {
						out[i] = toPeerJSON(p)
					}
					return printJSON(cmd.OutOrStdout(), out)
				}
				tw := newTable(cmd.OutOrStdout())
				fmt.Fprintln(tw, "NAME\tTRUST DOMAIN\tSOURCE\tACTIVE\tSUBSCRIPTION\tVERSION\tGROUPS\tADDRESSES\tFINGERPRINT")
				follower := false
				for _, p := range resp.Peers {
					active := yesNo(p.Active)
					if p.LeavingSince != nil {
						active = "leaving"
					}
					follower = follower || (p.Active && p.Subscription == "")
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.TrustDomain, p.Source, active, subscriptionText(p, false),
						versionText(p, false), strings.Join(p.Groups, ","), strings.Join(p.Addresses, ","), fingerprintCell(p))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if follower {
					fmt.Fprintln(cmd.OutOrStdout(), "SUBSCRIPTION -: this replica does not lead and could not reach the leader, which alone subscribes to peers: ask the leader (knooppunt cluster status)")
				}
				return nil
			})
		},
	}
	f.register(cmd, true)
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newPeerShowCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one peer, by name or trust domain",
		Long: `Show one peer, by name or trust domain: its source, whether it is active or leaving; for an
active peer this node's subscription to it (open, connecting or down, for how long, and its last
error with what it likely means), its version (the release its node said it runs, and how long
ago; "-" until the leader asked it, once its subscription caught up), its last delivery and the
cursor where the subscription resumes; then its addresses, groups, bundle endpoint, how the
refresh of its trust bundle fares, its fingerprint (and the one in force when its bundle endpoint
changed the CAs since: compare that one with the partner), and who added it and when. For
readers, editors, officers, admins and the local socket; -o json gives the same fields.`,
		Example: `  knooppunt peer show ncc`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				p, err := pb.NewPeerServiceClient(conn).Get(cmd.Context(), &pb.GetPeerRequest{Name: args[0]})
				if err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), toPeerJSON(p))
				}
				printPeer(cmd.OutOrStdout(), p)
				return nil
			})
		},
	}
	f.register(cmd, true)
	f.fillArg("NAME", "name")
	return cmd
}

func printPeer(w io.Writer, p *pb.PeerInfo) {
	tw := newTable(w)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("name", p.Name)
	row("trust domain", p.TrustDomain)
	row("org name", p.OrgName)
	row("source", p.Source)
	row("active", yesNo(p.Active))
	if p.LeavingSince != nil {
		row("leaving since", stamp(p.LeavingSince.AsTime()))
	}
	if p.Active {
		sub := subscriptionText(p, true)
		if sub == "-" {
			sub = "- (this replica does not lead; only the leader subscribes: ask it)"
		}
		row("subscription", sub)
		row("version", versionText(p, true))
		delivered := "none yet"
		if p.ReceivedAt != nil {
			delivered = stamp(p.ReceivedAt.AsTime()) + " (" + age(p.ReceivedAt) + " ago, change feed at " + strconv.FormatInt(p.Cursor, 10) + ")"
		}
		row("last delivery", delivered)
	}
	row("addresses", strings.Join(p.Addresses, " "))
	row("groups", strings.Join(p.Groups, " "))
	row("bundle endpoint", p.BundleEndpoint)
	row("endpoint id", p.EndpointId)
	if b := bundleText(p); b != "" {
		row("bundle", b)
	}
	row("fingerprint", p.Fingerprint)
	if p.FingerprintInForce != "" {
		row("fingerprint in force", p.FingerprintInForce+" (its bundle endpoint changed the CAs since: compare this one with the partner)")
	}
	row("invitation", p.Invitation)
	row("added by", p.AddedBy)
	if p.AddedAt != nil {
		row("added at", stamp(p.AddedAt.AsTime()))
	}
	tw.Flush()
}

func newPeerRemoveCmd() *cobra.Command {
	var (
		f      clientFlags
		reason string
		now    bool
	)
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a peer that was accepted: it drops what it holds from this node, then is refused",
		Long: `Remove a peer that was accepted with peer accept, on every replica, in two steps.

First the peer leaves: this node grants it nothing from then on, so its node's subscription
retracts every record it holds from this node. Once its node holds nothing, or after
federation.leave_timeout (default 1h), it is refused: its subscription stops and its calls are
refused, also on connections already open. Both steps are audited (peer.leave, peer.remove).
peer list shows a peer that is leaving.

--now, or a second remove of a peer that is leaving, refuses it at once, whatever it holds.
--reason is required, as for a revocation. A peer of the config file is removed from the config
file instead.`,
		Example: `  knooppunt peer remove vr-brabant-noord --reason "left the federation"
  knooppunt peer remove vr-brabant-noord --now --reason "key compromised"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				p, err := pb.NewPeerServiceClient(conn).Remove(cmd.Context(), &pb.RemovePeerRequest{Name: args[0], Reason: reason, Now: now})
				if err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), toPeerJSON(p))
				}
				if p.LeavingSince != nil {
					// A partner that no longer subscribes (one that removed this node) stays
					// leaving until the timeout: say so, and how not to wait (review AE, AE8).
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "peer %s (%s) is leaving: it is granted nothing, its subscription retracts what it holds, and it is refused once it holds nothing, or after federation.leave_timeout (default 1h) if it does not subscribe: `knooppunt peer remove %s --now` refuses it at once\n", p.Name, p.TrustDomain, p.Name)
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "removed peer %s (%s)\n", p.Name, p.TrustDomain)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log (required)")
	cmd.Flags().BoolVar(&now, "now", false, "refuse the peer at once, without waiting for it to drop what it holds")
	f.register(cmd, true)
	cmd.MarkFlagRequired("reason")
	f.fill(map[string]string{"reason": "reason"})
	f.fillArg("NAME", "name")
	return cmd
}
