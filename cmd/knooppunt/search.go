package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/peerserver"
	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newSearchCmd() *cobra.Command {
	var (
		f             clientFlags
		filter        pb.Filter
		labels, since string
		timeout       time.Duration
		purpose       string
		exercise      string
		origins       []string
		failOnPartial bool
		wide          bool
	)
	cmd := &cobra.Command{
		Use:   "search",
		Short: "Search the node and every peer, under a deadline",
		Long: `Search the node's own records and every peer's, in parallel, under a deadline (default 2s).
Every record shows its origin and age. A table shows each peer as answered (with count and
latency), denied (it refuses this node: the partner removed it, or has not accepted its answer
yet), unreachable or timed out; for the last three the answer is this node's copy of what the peer
sent before, with the copy's age. A partial answer says so. Searches are audited, here and at
every peer asked, with their words: do not search for names or other personal data.

--text searches the text fields of each kind (a Q&A's question and answer, a guidance's title,
summary and text): every word and "quoted phrase" must occur, ignoring case and diacritics,
anywhere in a word, so "vergunning" finds "tewerkstellingsvergunning", and a Dutch plural finds
its singular ("vergunningen" finds "vergunning"). Words of fewer than three
characters ("in", "de") cannot be looked for: they are left out, with a note on stderr; so are
the words that frame a question (wat, moet, hebben, hoeveel), unless typed in quotes or in
capitals, when other words are left, and beyond 16 words and phrases (a question pasted whole),
the shortest. Search results put the records whose title holds the words first. Each source answers with its best matches first and a snippet with the
match marked «like this»; a peer matches only on what it may share with this node. A search
that finds almost nothing because a word is misspelt gets a hint on stderr: the --text with a
word this node finds records with, in your mode; nobody is asked for it until you search again.

--origin asks only the sources named: this node's org, by trust domain or name (its short name
too, the first label of its trust domain, such as ncc), for its own records, a peer, by trust
domain or name (knooppunt peer list shows them), for what it shares; a peer not named is not
asked and discloses nothing (with no peer asked, no peer table is printed). --id finds the
records with these ids (at most 100).

SUMMARY and MATCH are cut to fit a terminal; --wide prints them whole.

--limit caps the records of each source (default 1000, at most 10000); a source that gives that
many may hold more, and a note on stderr says which.

--purpose states what you need the records for (doelbinding). Every peer writes it in the audit
entry of each record it discloses, and a peer's policy that accepts only certain purposes
(accept_purposes) gives nothing to another. Without it the node states its federation.purpose.

--fail-on-partial exits 3, after printing, when a peer did not answer (PARTIAL): a script that
exports the results can tell an answer served partly from old copies.`,
		Example: `  knooppunt search --crisis oekraine --kind shelter.capacity --purpose "spreiding en opvang vluchtelingen"
  knooppunt search --crisis oekraine --region VR19 --timeout 5s -o json
  knooppunt search --text vergunning
  knooppunt search --text '"werk vergunning" oekraine' --kind qa,guidance
  knooppunt search --crisis oekraine --exercise oefening-zeeland
  knooppunt search --origin lcvs.crisis.test --crisis oekraine
  knooppunt search --origin ncc --id sitrep-ncc-1 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.checkOutput(); err != nil {
				return err
			}
			if timeout < 0 || timeout > search.MaxTimeout {
				return fmt.Errorf("--timeout: %s: use 0 (the node's default, %s) to %s", timeout, search.DefaultTimeout, search.MaxTimeout)
			}
			var err error
			if filter.Labels, err = parseLabels(splitNonEmpty(labels)); err != nil {
				return err
			}
			if exercise != "" {
				// A network search reads actual records or one exercise's: test and draft
				// records never leave a node.
				if filter.Mode, err = (&modeFlags{exercise: exercise}).mode(); err != nil {
					return err
				}
			}
			if since != "" {
				t, err := parseSince(since)
				if err != nil {
					return fmt.Errorf("--updated-since: %w", err)
				}
				filter.UpdatedSince = timestamppb.New(t)
			}
			if filter.Text != "" {
				// As people type: words the index cannot look for ("in", "de") are left out,
				// and said to be; the node is sent the rest.
				text, ignored, err := record.ParseTextLoosely("--text", filter.Text)
				if err != nil {
					return err
				}
				if len(ignored) > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "knooppunt: not searched for %s: words of fewer than %d characters cannot be looked for\n",
						record.QuoteAll(ignored), record.MinTermRunes)
				}
				if len(text.Frame) > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "knooppunt: not searched for %s: nearly every question says them\n", record.QuoteAll(text.Frame))
				}
				if len(text.LeftOut) > 0 {
					// A pasted question: searched on its most telling words.
					fmt.Fprintf(cmd.ErrOrStderr(), "knooppunt: not searched for %s: a search takes at most %d words and phrases, and these say least\n",
						record.QuoteAll(text.LeftOut), record.MaxQueryTerms)
				}
				filter.Text = text.String()
			}
			conn, err := f.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			var trailer metadata.MD
			resp, err := pb.NewSearchServiceClient(conn).Search(cmd.Context(), &pb.SearchRequest{Filter: &filter, TimeoutMs: int32(timeout.Milliseconds()), Purpose: purpose, Origins: origins},
				grpc.Trailer(&trailer))
			if err != nil {
				return callError(&f, err)
			}
			limit := int(filter.Limit)
			if limit == 0 {
				limit = peerserver.DefaultLimit
			}
			cut := search.Cut(resp, limit)
			if err := printSearchCut(cmd.OutOrStdout(), tableFormat(f.output, wide), resp, filter.Mode, cut); err != nil {
				return err
			}
			if sug := trailer.Get(search.SuggestTrailer); len(sug) > 0 && sug[0] != filter.Text {
				// Offered, not searched: only searching with it asks the partners.
				fmt.Fprintf(cmd.ErrOrStderr(), "knooppunt: did you mean --text %s? It finds records here; search again with it to ask the partners too\n", shellQuote(sug[0]))
			}
			if len(resp.Hits) == 0 && len(filter.Kinds) > 0 {
				// A kind as people half remember it (shelter) finds nothing, as if nobody had
				// records of it. A partner may know a kind this node does not: a note, no refusal.
				if st, err := pb.NewStatusServiceClient(conn).Status(cmd.Context(), &pb.StatusRequest{}); err == nil {
					var unknown []string
					for _, k := range filter.Kinds {
						if !slices.Contains(st.Kinds, k) {
							unknown = append(unknown, k)
						}
					}
					if len(unknown) > 0 {
						fmt.Fprintf(cmd.ErrOrStderr(), "Note: this node knows no kind %s (it knows %s); a partner may, but none gave a record of it.\n", record.QuoteAll(unknown), strings.Join(st.Kinds, ", "))
					}
				}
			}
			if len(resp.Hits) == 0 && !noteUnknownExercise(cmd.Context(), cmd.ErrOrStderr(), conn, exercise) && filter.Crisis != "" {
				// A crisis as people write it (oekriane) finds nothing, as if nobody had records.
				if known, err := knownCrisis(cmd.Context(), conn, filter.Crisis, exercise); err == nil && !known {
					fmt.Fprintf(cmd.ErrOrStderr(), "Note: no record here or from a partner names crisis %q: check the spelling (`knooppunt phase show` lists the crises there are records of).\n", filter.Crisis)
				}
			}
			if len(cut) > 0 {
				cut = slices.Clone(cut)
				if cut[0] == "" {
					cut[0] = "this node"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "knooppunt: %s may hold more than it gave: a source gives at most --limit records (%d here), and its share of an answer's %d MiB; narrow the search, or raise --limit (at most %d)\n",
					strings.Join(cut, ", "), limit, search.MaxAnswerBytes>>20, peerserver.MaxLimit)
			}
			if failOnPartial && resp.Partial {
				return exitError(exitPartial)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&failOnPartial, "fail-on-partial", false, "exit 3 when a peer did not answer")
	fl.BoolVar(&wide, "wide", false, "print summaries and snippets whole, not cut to fit a terminal")
	fl.StringVar(&filter.Text, "text", "", `full text: words and "phrases", all of which must occur (words of fewer than 3 characters are left out)`)
	fl.StringSliceVar(&filter.Kinds, "kind", nil, "only these kinds (repeatable)")
	fl.StringVar(&filter.Crisis, "crisis", "", "only this crisis")
	fl.StringSliceVar(&origins, "origin", nil, "ask only these sources: trust domains, or peers' or this node's names (repeatable; default: this node and every peer)")
	fl.StringSliceVar(&filter.Ids, "id", nil, "only the records with these ids (repeatable, at most 100)")
	fl.StringVar(&filter.Region, "region", "", "only this region")
	fl.StringVarP(&labels, "label", "l", "", "labels: key=value[,key=value]")
	fl.StringVar(&since, "updated-since", "", "only records updated since (RFC 3339, or a duration such as 2h)")
	fl.Int32Var(&filter.Limit, "limit", 0, "records per source (default 1000)")
	durationFlag(fl, &timeout, "timeout", search.DefaultTimeout, "deadline for the whole search, at most 1m")
	fl.StringVar(&purpose, "purpose", "", "what you need the records for, stated to every peer (default: the node's federation.purpose)")
	fl.StringVar(&exercise, "exercise", "", "search in the mode of this exercise: only its records, here and at every peer (default: actual records only)")
	f.register(cmd, true)
	f.fill(map[string]string{"origin": "origins", "id": "filter.ids", "kind": "filter.kinds", "crisis": "filter.crisis",
		"region": "filter.region", "text": "filter.text", "label": "filter.labels", "updated-since": "filter.updated_since",
		"limit": "filter.limit", "purpose": "purpose", "exercise": "filter.mode", "timeout": "timeout_ms"})
	return cmd
}

// shellQuote quotes s for a POSIX shell, so that a hint can be pasted as it is printed.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func splitNonEmpty(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func age(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "?"
	}
	return time.Since(ts.AsTime()).Round(time.Second).String()
}

func printSearch(w io.Writer, format string, resp *pb.SearchResponse, mode *pb.Mode) error {
	return printSearchCut(w, format, resp, mode, nil)
}

// printSearchCut is printSearch of an answer in which the sources cut name may hold more than they
// gave (search.Cut, "" for this node): -o json says so in may_hold_more, by trust domain, where a
// script reads it (review I, F5).
func printSearchCut(w io.Writer, format string, resp *pb.SearchResponse, mode *pb.Mode, cut []string) error {
	if format == "json" {
		var more []string
		for _, src := range cut {
			if src == "" {
				src = "this node"
				for _, h := range resp.Hits {
					if h.Source == "" {
						src = h.Record.GetOrigin()
						break
					}
				}
			} else {
				for _, p := range resp.Peers {
					if p.Peer == src {
						src = p.TrustDomain
					}
				}
			}
			more = append(more, src)
		}
		cut = more
		type hit struct {
			Source      string   `json:"source"`
			FromCache   bool     `json:"from_cache"`
			Redacted    []string `json:"redacted"`
			Snippet     string   `json:"snippet,omitempty"`
			SnippetFile string   `json:"snippet_file,omitempty"`
			Validity    string   `json:"validity,omitempty"`
			// Policies, Purpose and ReceivedAt: the source's policies that granted the record,
			// the purpose this node stated when it came, and, from the cache, when it came: what
			// a recipient checks against the source's federation.disclose entries (review O, O8).
			Policies   []string    `json:"policies,omitempty"`
			Purpose    string      `json:"purpose,omitempty"`
			ReceivedAt *time.Time  `json:"received_at,omitempty"`
			Record     record.JSON `json:"record"`
		}
		doc := struct {
			Partial bool            `json:"partial"`
			Peers   []peerStateJSON `json:"peers"`
			Hits    []hit           `json:"hits"`
			// TextPending: writes this node's full-text index had yet to take in.
			TextPending int64 `json:"text_pending,omitempty"`
			// MayHoldMore: sources that gave as many records as --limit, or their share of
			// an answer's size: they may hold more that match.
			MayHoldMore []string `json:"may_hold_more,omitempty"`
		}{Partial: resp.Partial, Peers: peersJSON(resp.Peers), Hits: []hit{}, TextPending: resp.TextPending, MayHoldMore: cut}
		for _, h := range resp.Hits {
			src := h.Source
			if src == "" {
				src = h.Record.Origin
			}
			var received *time.Time
			if h.ReceivedAt != nil {
				at := h.ReceivedAt.AsTime().UTC()
				received = &at
			}
			doc.Hits = append(doc.Hits, hit{src, h.FromCache, nonNilStrings(h.Redacted), h.Snippet, h.SnippetFile, h.Validity,
				h.Policies, h.Purpose, received, record.ToJSON(h.Record)})
		}
		return printJSON(w, doc)
	}
	tw := newModeTable(w, mode)
	// A text search shows where each record matched; a listing shows its body.
	last := "SUMMARY"
	for _, h := range resp.Hits {
		if h.Snippet != "" {
			last = "MATCH"
		}
	}
	fmt.Fprintln(tw, "ORIGIN\tAGE\tKIND\tREGION\tID\t"+last)
	for _, h := range resp.Hits {
		origin := h.Record.Origin
		if h.FromCache {
			origin += " (cache)"
		}
		// Cut to fit a terminal, unless the table is wide (review I, F4).
		summaryWidth, snippetWidth, fileWidth := 60, 80, 40
		if format == wideTable {
			summaryWidth, snippetWidth, fileWidth = 0, 0, 0
		}
		shown := record.Summary(h.Record.Body, summaryWidth)
		if last == "MATCH" {
			shown = truncate(h.Snippet, snippetWidth)
			if h.SnippetFile != "" {
				// The words are in that file, not in the record's text.
				shown = "in " + truncate(h.SnippetFile, fileWidth) + ": " + shown
			}
		}
		id := h.Record.Id
		if h.Validity != "" {
			id += " (" + validityFlag(h.Validity) + ")"
		}
		if c := classFlag(h.Record.Classification); c != "" {
			id += " (" + c + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", origin, age(h.Record.UpdatedAt), record.OneLine(h.Record.Kind), record.OneLine(h.Record.Region), record.OneLine(id), record.OneLine(shown))
	}
	tw.Flush()
	if len(resp.Hits) == 0 {
		fmt.Fprintln(w, "No records found: no source asked holds one that matches and is shared with you.")
	}
	if resp.TextPending > 0 {
		fmt.Fprintf(w, "\nNote: this node's full-text index is still taking in %d writes (a bulk load?): the newest of its own records may be missing from these hits; search again in a moment.\n", resp.TextPending)
	}
	if len(resp.Peers) > 0 {
		printPeerStates(w, mode, resp.Peers, resp.Partial, true)
	}
	return nil
}

// peerStateJSON is a peer's answer to a search, as -o json prints it.
type peerStateJSON struct {
	Peer string `json:"peer"`
	// TrustDomain is the peer's, as records name their origin and picture entries their source.
	TrustDomain string `json:"trust_domain"`
	State       string `json:"state"`
	Count       int64  `json:"count"`
	LatencyMs   int64  `json:"latency_ms"`
	CacheAgeMs  int64  `json:"cache_age_ms,omitempty"`
	// FeedOpen: the peer did not answer, but this node's subscription to it is open: the copy
	// served in its place was current when the feed last delivered or sent a heartbeat,
	// CacheAgeMs ago.
	FeedOpen bool `json:"feed_open,omitempty"`
	// Busy: the peer refused the search as over its limits on this org's calls; it is up.
	Busy  bool   `json:"busy,omitempty"`
	Error string `json:"error,omitempty"`
	// CatchingUpSince: this node's copy of the peer's records, the picture's, is being brought
	// up to date since then.
	CatchingUpSince *time.Time `json:"catching_up_since,omitempty"`
}

func peersJSON(peers []*pb.PeerStatus) []peerStateJSON {
	out := []peerStateJSON{}
	for _, p := range peers {
		out = append(out, peerStateJSON{p.Peer, p.TrustDomain, p.State, p.Count, p.LatencyMs, p.CacheAgeMs, p.FeedOpen, p.Busy, p.Error, optionalTime(p.CatchingUpSince)})
	}
	return out
}

// printPeerStates prints how each peer answered, and PARTIAL when one did not; count adds how
// many records each gave.
// standIn is what stands in for the answer of a peer that did not answer: its copy, of this
// age, or none (copied false) when the peer never sent this node anything. An open feed has a
// copy, as of its last change or heartbeat: a peer that hangs keeps its feed open until the
// idle timeout.
func standIn(p *pb.PeerStatus) (age time.Duration, copied bool) {
	return (time.Duration(p.CacheAgeMs) * time.Millisecond).Round(time.Second), p.FeedOpen || p.CacheAgeMs != 0 || p.Count != 0
}

func printPeerStates(w io.Writer, mode *pb.Mode, peers []*pb.PeerStatus, partial, count bool) {
	fmt.Fprintln(w)
	tw := newModeTable(w, mode)
	if count {
		fmt.Fprintln(tw, "PEER\tSTATE\tCOUNT\tLATENCY\tNOTE")
	} else {
		fmt.Fprintln(tw, "PEER\tSTATE\tLATENCY\tNOTE")
	}
	var behind, unanswered []string
	for _, p := range peers {
		if search.Unanswered(p) {
			unanswered = append(unanswered, p.Peer)
		}
		note := p.Error
		if search.Unanswered(p) {
			switch age, copied := standIn(p); {
			case p.FeedOpen:
				note = fmt.Sprintf("served from cache as of its feed's last message, %s ago (the feed is still open); %s", age, p.Error)
			case !copied:
				note = "no copy: it never sent this node anything; " + p.Error
			default:
				note = fmt.Sprintf("served from cache, %s old; %s", age, p.Error)
			}
		}
		if p.CatchingUpSince != nil && !count {
			// The picture is made of this node's copy, which has not caught up with the peer.
			note = "catching up since " + stamp(p.CatchingUpSince.AsTime()) + ": the picture lacks part of what it shares"
			behind = append(behind, p.Peer)
		}
		if count {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%dms\t%s\n", p.Peer, p.State, p.Count, p.LatencyMs, truncate(note, 120))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%dms\t%s\n", p.Peer, p.State, p.LatencyMs, truncate(note, 120))
		}
	}
	tw.Flush()
	if partial {
		fmt.Fprintf(w, "\nPARTIAL: %s did not answer: what is shown of theirs is what they sent before (see the table above; peer show NAME says why).\n", strings.Join(unanswered, ", "))
	}
	if len(behind) > 0 {
		fmt.Fprintf(w, "\nBEHIND: this node is still taking in what %s shares: the picture is not complete until it has (peer show NAME says how far).\n", strings.Join(behind, ", "))
	}
}

// exitPartial is the exit code of a search or picture with --fail-on-partial whose answer is not
// complete.
const exitPartial = 3

func newPictureCmd() *cobra.Command {
	var (
		f             clientFlags
		crisis        string
		stale         time.Duration
		mf            modeFlags
		failOnPartial bool
		wide          bool
	)
	cmd := &cobra.Command{
		Use:   "picture",
		Short: "Show the merged picture of a crisis",
		Long: `Show the merged picture of a crisis: the node's own records and those received from peers.
For each kind, region and key (the body's municipality, or else the record id), the latest record
with its source and age; sums of the fields a kind declares aggregable, per region and nationally;
DISAGREES with the other sources whose latest record for the same key reports other figures
(for a kind that sums fields, another value in one of them; for one that sums none, any
difference), and under that row a line for each with its figures (lcvs.crisis.test says:
beds_free 1 · beds_total 40 (shelter-goes, v3, 2h0m ago); -o json: entries[].disagreeing);
DIFFERS, with the fields, where they report the same figures and differ elsewhere, such as in
notes or a field withheld from this node (DIFFERS:lcvs.crisis.test:beds_total,notes);
NOT-COUNTED naming a source's other records under the same key; STALE on a latest record older
than its kind's stale_after (a day unless the node's config says otherwise; never for documents
such as qa and guidance in the demo), or than --stale-after for every kind; and CACHED on the
last copy of a source that does not answer now. docs/api.md defines each exactly. A row's
summary leads with the figures its kind's sums add up (beds_free 3 · beds_total 150). WHAT and
SUMMARY are cut to fit a terminal; --wide prints them whole.

The picture is made of what the peers sent before. With it the node asks them whether they answer
now (a search of one record, 2 s at most), and a table after it says which do; a peer that does
not, or refuses this node, is in the picture with its last copy, marked CACHED, whose age the
table gives (for a peer whose feed is still open, as one that hangs keeps it for a while: since
its feed last delivered or sent a heartbeat), and PARTIAL says so (-o json: partial, peers, each
with its trust_domain, the entries' source, and its count of entries, and entries[].cached; the
REST picture gives the same). A peer whose shared records this node is still taking in (after an
outage, say) is marked catching up, and BEHIND says the picture is not complete until it has (-o
json: peers[].catching_up_since). A crisis that no record here or from a partner names gets a
note on stderr, with -o json too.

--fail-on-partial exits 3, after printing, when the picture is not complete now: a peer did not
answer (PARTIAL), this node is catching up with one (BEHIND), the replica asked has no leader (NO
LEADER), or the peers could not be asked; and when no record here or from a partner names the
crisis (a misspelt --crisis or --exercise). A script that exports the sums can tell.`,
		Example: `  knooppunt picture --crisis oekraine
  knooppunt picture --crisis oekraine -o json | jq '.aggregates'
  knooppunt picture --crisis oekraine --exercise oefening-zeeland`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mode, err := mf.mode()
			if err != nil {
				return err
			}
			// 0s given is not left out: it would silently mean each kind's own limit.
			if (stale != 0 || cmd.Flags().Changed("stale-after")) && (stale < time.Second || stale > math.MaxInt32*time.Second) {
				return fmt.Errorf("--stale-after: %s: use 1s or more (such as 12h), or leave it out for each kind's own stale_after", stale)
			}
			return f.call(func(conn *grpc.ClientConn) error {
				if crisis == "" {
					return crisisMissing(cmd.Context(), conn, mode.GetExercise())
				}
				// The picture says which peers answer now (partial, peers), so that one served
				// from an old copy says so.
				resp, err := pb.NewSearchServiceClient(conn).Picture(cmd.Context(), &pb.PictureRequest{Crisis: crisis, StaleAfterS: int32(stale.Seconds()), Mode: mode})
				if err != nil {
					return err
				}
				if err := printPicture(cmd.OutOrStdout(), tableFormat(f.output, wide), resp, mode); err != nil {
					return err
				}

				// A misspelt crisis (or exercise) shows no records and sums of 0, as if there
				// were none: said on stderr, whatever the output, and --fail-on-partial fails.
				// The alerts of every crisis are in each crisis's picture: only a record of the
				// crisis itself names it (review J, F1).
				named := len(resp.Sources) > 0
				if !named && noteUnknownExercise(cmd.Context(), cmd.ErrOrStderr(), conn, mode.GetExercise()) {
					named = false
				} else if !named {
					named = true
					known, err := knownCrisis(cmd.Context(), conn, crisis, mode.GetExercise())
					if err == nil && !known {
						named = false
						fmt.Fprintf(cmd.ErrOrStderr(), "Note: no record here or from a partner names crisis %q now: check the spelling (`knooppunt phase show` lists the crises there are records of), or partners withdrew what they shared of it, or their policies grant it only for a purpose this node does not state (federation.purpose).\n", crisis)
					}
				}
				if failOnPartial && (resp.Partial || resp.NoLeader || len(search.Behind(resp.Peers)) > 0 || !named) {
					return exitError(exitPartial)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&crisis, "crisis", "", "the crisis (required; without it, the crises known here are listed)")
	durationFlag(cmd.Flags(), &stale, "stale-after", 0, "flag records of every kind older than this (default each kind's stale_after)")
	cmd.Flags().BoolVar(&failOnPartial, "fail-on-partial", false, "exit 3 when the picture is not complete now (PARTIAL, BEHIND, NO LEADER), or no record here or from a partner names the crisis")
	cmd.Flags().BoolVar(&wide, "wide", false, "print ids and summaries whole, not cut to fit a terminal")
	mf.register(cmd)
	f.register(cmd, true)
	f.fill(map[string]string{"crisis": "crisis", "stale-after": "stale_after_s", "exercise": "mode.exercise", "status": "mode.status"})
	return cmd
}

// crisisMissing refuses a command without --crisis, naming the crises known here.
func crisisMissing(ctx context.Context, conn *grpc.ClientConn, exercise string) error {
	phases, err := knownCrises(ctx, conn, exercise)
	if err != nil || len(phases) == 0 {
		return errors.New("--crisis: name the crisis, such as --crisis oekraine (no crisis is known here yet)")
	}
	var known []string
	for _, p := range phases {
		known = append(known, p.Crisis+" ("+p.Phase+")")
	}
	return fmt.Errorf("--crisis: name the crisis; known here: %s", strings.Join(known, ", "))
}

// printPicture prints the picture as format asks: json, wideTable (ids and summaries whole) or a
// table, with the peers' answers now that the node gave with it (resp.partial, resp.peers).
func printPicture(w io.Writer, format string, resp *pb.PictureResponse, mode *pb.Mode) error {
	// The sources that did not answer just now: their entries are their last copy.
	unanswered := map[string]bool{}
	for _, p := range resp.Peers {
		if search.Unanswered(p) {
			unanswered[p.TrustDomain] = true
		}
	}
	if format == "json" {
		type entry struct {
			Kind   string `json:"kind"`
			Region string `json:"region"`
			Key    string `json:"key"`
			Source string `json:"source"`
			AgeS   int64  `json:"age_s"`
			Stale  bool   `json:"stale"`
			// Cached: the source does not answer now; this is its last copy here.
			Cached   bool     `json:"cached,omitempty"`
			Conflict []string `json:"conflict"`
			// ConflictFields: the body fields the sources in Conflict differ in; FiguresDisagree:
			// in a field the kind sums (or, for a kind that sums none, at all).
			ConflictFields  []string    `json:"conflict_fields,omitempty"`
			FiguresDisagree bool        `json:"figures_disagree,omitempty"`
			LeftOut         []string    `json:"left_out,omitempty"`
			Validity        string      `json:"validity,omitempty"`
			Record          record.JSON `json:"record"`
			// FieldsLeftOut: the body fields the answer left out to stay within its bound.
			FieldsLeftOut []string `json:"fields_left_out,omitempty"`
			// Disagreeing: for each source in Conflict, in its order, its latest record of the
			// slot, with the figures it reports instead.
			Disagreeing []record.JSON `json:"disagreeing,omitempty"`
		}
		type agg struct {
			Kind    string  `json:"kind"`
			Field   string  `json:"field"`
			Region  string  `json:"region"`
			Sum     float64 `json:"sum"`
			Records int64   `json:"records"`
			// Entries: the picture's entries of the kind in the region; records below it says
			// that the sum lacks the others, which lack the field.
			Entries int64 `json:"entries"`
		}
		doc := struct {
			Crisis     string   `json:"crisis"`
			Phase      string   `json:"phase"`
			Sources    []string `json:"sources"`
			Entries    []entry  `json:"entries"`
			Aggregates []agg    `json:"aggregates"`
			// Partial and Peers say which peers answered just now: a peer that did not is in
			// the picture with what it sent before. Partial without Peers: they could not be
			// asked.
			Partial bool            `json:"partial"`
			Peers   []peerStateJSON `json:"peers,omitempty"`
			// NoLeader: the replica asked is cut off from its group; the picture does not change.
			NoLeader bool `json:"no_leader,omitempty"`
			// Exercise names the exercise whose picture this is, so that a dashboard fed by
			// the JSON never shows its sums as the actual crisis's.
			Exercise string `json:"exercise,omitempty"`
		}{Crisis: resp.Crisis, Phase: resp.Phase, Sources: nonNilStrings(resp.Sources), Entries: []entry{}, Aggregates: []agg{}, NoLeader: resp.NoLeader, Exercise: mode.GetExercise(),
			Partial: resp.Partial}
		if len(resp.Peers) > 0 {
			doc.Peers = peersJSON(resp.Peers)
		}
		for _, e := range resp.Entries {
			var others []record.JSON
			for _, r := range e.Disagreeing {
				others = append(others, record.ToJSON(r))
			}
			doc.Entries = append(doc.Entries, entry{e.Kind, e.Region, e.Key, e.Source, e.AgeS, e.Stale, unanswered[e.Source], nonNilStrings(e.Conflict), e.ConflictFields, e.FiguresDisagree, e.LeftOut, e.Validity, record.ToJSON(e.Record), e.FieldsLeftOut, others})
		}
		for _, a := range resp.Aggregates {
			doc.Aggregates = append(doc.Aggregates, agg{a.Kind, a.Field, a.Region, a.Sum, a.Records, a.Entries})
		}
		return printJSON(w, doc)
	}
	if resp.NoLeader {
		fmt.Fprintln(w, "NO LEADER: the replica asked reaches no majority of its group: this picture does not change until it does; ask another replica (cluster status).")
		fmt.Fprintln(w)
	}
	sources := strings.Join(resp.Sources, ", ")
	if sources == "" {
		sources = "none: no record of this crisis here or from a partner"
	}
	fmt.Fprintf(w, "Crisis %s, phase %s; sources: %s\n\n", resp.Crisis, resp.Phase, sources)
	// The kinds the sums add up: a cached entry of another kind is in no sum.
	summed := map[string]bool{}
	for _, a := range resp.Aggregates {
		summed[a.Kind] = true
	}
	cached, shortened := 0, 0
	cells := newPictureCells(format, resp.Aggregates)
	// The rows go through a table of their own, so that the lines under a row that say what
	// disagreeing sources report do not break its columns; each row is one line.
	if b := modeBanner(mode); b != "" {
		fmt.Fprintln(w, b)
	}
	var rows bytes.Buffer
	tw := newTable(&rows)
	fmt.Fprintln(tw, "KIND\tREGION\tWHAT\tSOURCE\tAGE\tFLAGS\tSUMMARY")
	for _, e := range resp.Entries {
		var flags []string
		if unanswered[e.Source] {
			flags = append(flags, "CACHED")
			if summed[e.Kind] {
				cached++
			}
		}
		if e.Stale {
			flags = append(flags, "STALE")
		}
		switch {
		case len(e.Conflict) > 0 && e.FiguresDisagree:
			flags = append(flags, "DISAGREES:"+strings.Join(e.Conflict, ","))
		case len(e.Conflict) > 0:
			// The same figures: a note, or a field withheld from this node.
			flags = append(flags, "DIFFERS:"+strings.Join(e.Conflict, ",")+":"+strings.Join(e.ConflictFields, ","))
		}
		if len(e.LeftOut) > 0 {
			// The source's other records under this key: neither shown nor counted.
			flags = append(flags, "NOT-COUNTED:"+strings.Join(e.LeftOut, ","))
		}
		if e.Validity != "" {
			flags = append(flags, validityFlag(e.Validity))
		}
		if c := classFlag(e.Record.Classification); c != "" {
			flags = append(flags, c)
		}
		if len(e.FieldsLeftOut) > 0 {
			flags = append(flags, "SHORTENED:"+strings.Join(e.FieldsLeftOut, ","))
			shortened++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", record.OneLine(e.Kind), record.OneLine(e.Region), cells.what(e), e.Source, (time.Duration(e.AgeS) * time.Second).String(), record.OneLine(strings.Join(flags, " ")), cells.summary(e))
	}
	tw.Flush()
	lines := strings.SplitAfter(rows.String(), "\n")
	io.WriteString(w, lines[0])
	now := time.Now()
	for i, e := range resp.Entries {
		io.WriteString(w, lines[i+1])
		for _, line := range cells.disagreeing(e, now) {
			fmt.Fprintln(terminalSafe{w}, "    "+line)
		}
	}
	cells.noteCut(w)
	if shortened > 0 {
		fmt.Fprintf(w, "\n%d entries are SHORTENED: the picture left out their long fields to stay within %d MiB; the sums count them whole, and `knooppunt search --id ID --origin SOURCE` shows them whole.\n", shortened, search.MaxAnswerBytes>>20)
	}
	if len(resp.Aggregates) > 0 {
		fmt.Fprintln(w)
		tw = newModeTable(w, mode)
		fmt.Fprintln(tw, "KIND\tFIELD\tREGION\tSUM\tRECORDS")
		for _, a := range resp.Aggregates {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", record.OneLine(a.Kind), record.OneLine(a.Field), record.OneLine(a.Region), sumCell(a), recordsCell(a))
		}
		tw.Flush()
		noteLacking(w, resp.Aggregates)
		if cached > 0 {
			fmt.Fprintf(w, "\nThe sums count %d entries marked CACHED: the last copy of a source that does not answer now.\n", cached)
		}
	}
	printIncomplete(w, mode, resp)
	return nil
}

// printIncomplete says of a picture which peers did not answer (PARTIAL) and which this node is
// still catching up with (BEHIND): what it shows of theirs is an old copy. picture and
// assessment publish print it alike.
func printIncomplete(w io.Writer, mode *pb.Mode, p *pb.PictureResponse) {
	if len(p.Peers) > 0 {
		printPeerStates(w, mode, p.Peers, p.Partial, false)
	} else if p.Partial {
		fmt.Fprintln(w, "\nPARTIAL: the node could not ask its peers whether they answer now (its log says why): what is shown of theirs is what they sent before.")
	}
}

// classFlag marks a confidential or secret record in a table, so that it does not look like
// the others until someone opens it; "" for the rest.
func classFlag(c pb.Classification) string {
	if c >= pb.Classification_CONFIDENTIAL {
		return strings.ToUpper(record.ClassificationName(c))
	}
	return ""
}

// validityFlag is how a table marks a document that is not in force: SUPERSEDED, EXPIRED or
// NOT_YET_VALID.
func validityFlag(v string) string {
	return strings.ToUpper(v)
}
