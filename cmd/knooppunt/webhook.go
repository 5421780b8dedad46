package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newWebhookCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Outbound webhooks to your own systems: add, list, remove, failures, retry, rotate",
		Long: `A webhook pushes every change of the records it selects (own records, and records peers
shared with this node) to one of your organisation's own systems, as a signed HTTPS POST after
the Standard Webhooks convention (headers webhook-id, webhook-timestamp, webhook-signature).

Delivery is at least once and in order; webhook-id is the idempotency key, the same on every
attempt. A delivery that does not succeed within webhooks.retry_for becomes a failure, which
"webhook failures" lists and "webhook retry" sends again; one the receiver refuses (a 4xx but 408,
409, 425 and 429, or a redirect) becomes a failure at once, with the start of its answer as the
last error. Records of other organisations are never sent to a host of another organisation. See
"Webhooks" in docs/integration.md and docs/operator.md.`,
	}
	cmd.AddCommand(newWebhookAddCmd(), newWebhookListCmd(), newWebhookRemoveCmd(), newWebhookFailuresCmd(), newWebhookRetryCmd(), newWebhookRotateCmd())
	return cmd
}

type webhookJSON struct {
	ID              string     `json:"id"`
	URL             string     `json:"url"`
	Kinds           []string   `json:"kinds"`
	Crises          []string   `json:"crises"`
	Regions         []string   `json:"regions"`
	Exercise        string     `json:"exercise,omitempty"`
	MaxClass        string     `json:"max_classification,omitempty"`
	CreatedBy       string     `json:"created_by"`
	CreatedAt       time.Time  `json:"created_at"`
	Queued          int64      `json:"queued"`
	Failed          int64      `json:"failed"`
	Delivered       int64      `json:"delivered"`
	LastDeliveredAt *time.Time `json:"last_delivered_at,omitempty"`
	FailingSince    *time.Time `json:"failing_since,omitempty"`
	LastError       string     `json:"last_error,omitempty"`
	OldSecretUntil  *time.Time `json:"old_secret_until,omitempty"`
	Secret          string     `json:"secret,omitempty"`
}

func toWebhookJSON(w *pb.Webhook) webhookJSON {
	j := webhookJSON{ID: w.Id, URL: w.Url, Kinds: orEmpty(w.Kinds), Crises: orEmpty(w.Crises), Regions: orEmpty(w.Regions), Exercise: w.Exercise,
		CreatedBy: w.CreatedBy, CreatedAt: w.CreatedAt.AsTime(), Queued: w.Queued, Failed: w.Failed, Delivered: w.Delivered}
	j.LastDeliveredAt, j.FailingSince, j.LastError = optionalTime(w.LastDeliveredAt), optionalTime(w.FailingSince), w.LastError
	j.OldSecretUntil = optionalTime(w.OldSecretUntil)
	if w.MaxClassification != pb.Classification_CLASSIFICATION_UNSPECIFIED {
		j.MaxClass = record.ClassificationName(w.MaxClassification)
	}
	return j
}

// printWebhookSecret prints a webhook with the secret an Add or Rotate shows once, as JSON.
func printWebhookSecret(cmd *cobra.Command, resp *pb.AddWebhookResponse) error {
	j := toWebhookJSON(resp.Webhook)
	j.Secret = resp.Secret
	return printJSON(cmd.OutOrStdout(), j)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// classesUpTo says which classifications a webhook delivers.
func classesUpTo(c pb.Classification) string {
	if c == pb.Classification_CLASSIFICATION_UNSPECIFIED {
		return "records of every classification (--max-classification limits it)"
	}
	return "records up to " + record.ClassificationName(c)
}

func orAll(s []string) string {
	if len(s) == 0 {
		return "*"
	}
	return strings.Join(s, ",")
}

func newWebhookAddCmd() *cobra.Command {
	var (
		f                       clientFlags
		url, exercise, maxClass string
		kinds, crises, regions  []string
	)
	cmd := &cobra.Command{
		Use:   "add --url URL [--kinds K,…] [--crisis C,…] [--region R,…] [--exercise NAME] [--max-classification LEVEL]",
		Short: "Add a webhook and print its signing secret, once (admins)",
		Long: `Add a webhook. The URL must be HTTPS (plain HTTP only to loopback), must not name a host of a
peer, and may reach a private address only if webhooks.allow_private is set in the config.
Without --kinds, --crisis or --region every kind, crisis or region is delivered. With --crisis the
alerts of crisis all (a CAP alert imported without a crisis, an early-warning rule's) go too, as
every crisis's picture shows them. Without --exercise only actual records are; with it, only the records of that exercise. Without --max-classification every
classification is delivered: set it for a receiver that may not hold confidential or secret
records. A record that rises above it, or leaves the kinds, crises or regions, goes to the
receiver as record.retracted, without its body.

The signing secret (whsec_…) is printed once: give it to the receiver, which verifies each
delivery with it. It cannot be shown again; "webhook rotate" gives the webhook a new one.`,
		Example: `  knooppunt webhook add --url https://lcms.vr-utrecht.nl/knooppunt --kinds shelter.capacity,sitrep --crisis oekraine
  knooppunt webhook add --url https://dashboard.gemeente-utrecht.nl/hook --kinds sitrep --region VR09 --max-classification internal
  knooppunt webhook add --url http://127.0.0.1:9000/hook --exercise oefening-2026-12-vr09 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if url == "" {
				return fmt.Errorf("--url: give the receiver's URL, such as https://hooks.example.nl/knooppunt")
			}
			cl, err := record.ParseClassification(maxClass)
			if err != nil {
				return fmt.Errorf("--max-%v", err)
			}
			return f.call(func(conn *grpc.ClientConn) error {
				resp, err := pb.NewWebhookServiceClient(conn).Add(cmd.Context(), &pb.AddWebhookRequest{Url: url, Kinds: kinds, Crises: crises, Regions: regions, Exercise: exercise, MaxClassification: cl})
				if err != nil {
					return err
				}
				if f.output == "json" {
					return printWebhookSecret(cmd, resp)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "webhook %s added for %s, delivering %s\nsigning secret (shown once, give it to the receiver): %s\n",
					resp.Webhook.Id, resp.Webhook.Url, classesUpTo(resp.Webhook.MaxClassification), resp.Secret)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "the receiver's URL (https; http only to loopback)")
	cmd.Flags().StringSliceVar(&kinds, "kinds", nil, "deliver only these kinds (comma-separated; default every kind)")
	// --kind, as every other command names kinds (review Z, Z7).
	cmd.Flags().StringSliceVar(&kinds, "kind", nil, "the same as --kinds")
	cmd.Flags().MarkHidden("kind")
	cmd.Flags().StringSliceVar(&crises, "crisis", nil, "deliver only these crises, and the alerts of crisis all (comma-separated; default every crisis)")
	cmd.Flags().StringSliceVar(&regions, "region", nil, "deliver only these regions, VR01 to VR25 or NL (comma-separated; default every region)")
	cmd.Flags().StringVar(&exercise, "exercise", "", "deliver the records of this exercise instead of actual records")
	cmd.Flags().StringVar(&maxClass, "max-classification", "", "deliver no record above this level: public, internal, confidential or secret (default every level)")
	f.register(cmd, true)
	f.fill(map[string]string{"url": "url", "kinds": "kinds", "crisis": "crises", "region": "regions", "exercise": "exercise", "max-classification": "max_classification"})
	return cmd
}

func newWebhookListCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the webhooks with their queues and failures",
		Long: `List the webhooks: ID, URL (without its query, shown as ?…), KINDS, CRISES and REGIONS (*: every
one), UP TO (the highest classification delivered; *: every one), MODE (actual, or exercise
NAME), and the counts QUEUED, FAILED (see webhook failures) and DELIVERED. Under the table it
names a webhook whose next delivery keeps failing, since when and what the receiver answered,
and one whose deliveries are still signed with the secret from before its last rotation, until
when. The signing secret is never shown. For officers, admins and the local socket. -o json
gives each field, with created_by, created_at, last_delivered_at, failing_since, last_error and
old_secret_until.`,
		Example: `  knooppunt webhook list -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				resp, err := pb.NewWebhookServiceClient(conn).List(cmd.Context(), &pb.ListWebhooksRequest{})
				if err != nil {
					return err
				}
				if f.output == "json" {
					out := []webhookJSON{}
					for _, w := range resp.Webhooks {
						out = append(out, toWebhookJSON(w))
					}
					return printJSON(cmd.OutOrStdout(), out)
				}
				tw := newTable(cmd.OutOrStdout())
				fmt.Fprintln(tw, "ID\tURL\tKINDS\tCRISES\tREGIONS\tUP TO\tMODE\tQUEUED\tFAILED\tDELIVERED")
				for _, w := range resp.Webhooks {
					mode := "actual"
					if w.Exercise != "" {
						mode = "exercise " + w.Exercise
					}
					upTo := "*"
					if w.MaxClassification != pb.Classification_CLASSIFICATION_UNSPECIFIED {
						upTo = record.ClassificationName(w.MaxClassification)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", w.Id, w.Url, orAll(w.Kinds), orAll(w.Crises), orAll(w.Regions), upTo, mode, w.Queued, w.Failed, w.Delivered)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				// A queue whose head keeps failing holds back what comes after it: said under
				// the table, with since when and what the receiver answered.
				for _, w := range resp.Webhooks {
					if w.OldSecretUntil != nil {
						fmt.Fprintf(cmd.OutOrStdout(), "\n%s: signed with the secret before the last rotation too, until %s\n", w.Id, stamp(w.OldSecretUntil.AsTime()))
					}
					if w.FailingSince != nil {
						since := w.FailingSince.AsTime()
						fmt.Fprintf(cmd.OutOrStdout(), "\n%s: failing since %s (%s ago): %s\n", w.Id, stamp(since),
							time.Since(since).Round(time.Second), w.LastError)
					}
				}
				return nil
			})
		},
	}
	f.register(cmd, true)
	return cmd
}

func newWebhookRemoveCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a webhook, with its queue and failures (admins)",
		Long: `Remove a webhook on every replica, through Raft. Nothing more is queued for it, and the
deliveries still queued and its failures are deleted with it, unsent. There is no way to change
a webhook's kinds, crises, regions or classification: remove it and add another, which has a new
id and a new signing secret. For admins and the local socket; audited as webhook.remove. It
prints the id and URL of the webhook removed; -o json gives it as webhook list -o json does.`,
		Example: `  knooppunt webhook remove wh_3f2a9c0d1e4b5a6c`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				w, err := pb.NewWebhookServiceClient(conn).Remove(cmd.Context(), &pb.RemoveWebhookRequest{Id: args[0]})
				if err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), toWebhookJSON(w))
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "webhook %s removed (%s)\n", w.Id, w.Url)
				return err
			})
		},
	}
	f.register(cmd, true)
	f.fillArg("ID", "id")
	return cmd
}

type webhookFailureJSON struct {
	Webhook        string    `json:"webhook"`
	MessageID      string    `json:"message_id"`
	Event          string    `json:"event"`
	Origin         string    `json:"origin"`
	RecordID       string    `json:"record_id"`
	Version        int64     `json:"version"`
	Attempts       int32     `json:"attempts"`
	LastError      string    `json:"last_error"`
	FirstAttemptAt time.Time `json:"first_attempt_at"`
	FailedAt       time.Time `json:"failed_at"`
}

func newWebhookFailuresCmd() *cobra.Command {
	var (
		f       clientFlags
		webhook string
	)
	cmd := &cobra.Command{
		Use:   "failures [--webhook ID]",
		Short: "List the deliveries that did not succeed within the retry time",
		Long: `List the failures (dead letters): the deliveries still failing after webhooks.retry_for
(default 24h), and those that failed at once (such as a 4xx other than 408, 409, 425 and 429, or
a redirect). They are listed by webhook, in queue order: WEBHOOK, MESSAGE (the webhook-id),
EVENT, RECORD (ORIGIN/ID for a partner's record) with its version, ATTEMPTS, FAILED AT and LAST
ERROR. "webhook retry ID" sends them again, all or the messages named, each with its first
webhook-id; one whose record has changed since is dropped instead. --webhook lists one webhook's.
For officers, admins and the local socket; -o json gives each, with first_attempt_at too.`,
		Example: `  knooppunt webhook failures
  knooppunt webhook failures --webhook wh_3f2a9c0d1e4b5a6c -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				resp, err := pb.NewWebhookServiceClient(conn).Failures(cmd.Context(), &pb.WebhookFailuresRequest{Webhook: webhook})
				if err != nil {
					return err
				}
				if f.output == "json" {
					out := []webhookFailureJSON{}
					for _, x := range resp.Failures {
						out = append(out, webhookFailureJSON{Webhook: x.Webhook, MessageID: x.MessageId, Event: x.Event, Origin: x.Origin,
							RecordID: x.RecordId, Version: x.Version, Attempts: x.Attempts, LastError: x.LastError,
							FirstAttemptAt: x.FirstAttemptAt.AsTime(), FailedAt: x.FailedAt.AsTime()})
					}
					return printJSON(cmd.OutOrStdout(), out)
				}
				tw := newTable(cmd.OutOrStdout())
				fmt.Fprintln(tw, "WEBHOOK\tMESSAGE\tEVENT\tRECORD\tATTEMPTS\tFAILED AT\tLAST ERROR")
				for _, x := range resp.Failures {
					rec := x.RecordId
					if x.Origin != "" {
						rec = x.Origin + "/" + rec
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s v%d\t%d\t%s\t%s\n", x.Webhook, x.MessageId, x.Event, rec, x.Version, x.Attempts,
						stamp(x.FailedAt.AsTime()), x.LastError)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(resp.Failures) == 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "No failures: every delivery so far was taken, or is still being tried (knooppunt webhook list shows the queue).")
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&webhook, "webhook", "", "only this webhook's failures")
	f.register(cmd, true)
	f.fill(map[string]string{"webhook": "webhook"})
	return cmd
}

func newWebhookRetryCmd() *cobra.Command {
	var (
		f        clientFlags
		messages []string
	)
	cmd := &cobra.Command{
		Use:   "retry ID [--message MSG,…]",
		Short: "Send a webhook's failures again, behind what is queued (admins)",
		Long: `Queue a webhook's failures again, all of them or the messages named, behind the deliveries
already queued. Each keeps its webhook-id, so a receiver that saw it before can drop it.

Each carries its record as it was when the change was made. A failure of a record that has
changed since is not sent again but dropped (superseded): the receiver got, or gets, the newer
version, and never an older one after it.`,
		Example: `  knooppunt webhook retry wh_3f2a9c0d1e4b5a6c
  knooppunt webhook retry wh_3f2a9c0d1e4b5a6c --message msg_wh_3f2a9c0d1e4b5a6c_17_9e1f0a44c2d83b57`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				resp, err := pb.NewWebhookServiceClient(conn).Retry(cmd.Context(), &pb.RetryWebhookRequest{Webhook: args[0], MessageIds: messages})
				if err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), map[string]int64{"queued": resp.Queued, "superseded": resp.Superseded})
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%d failures of %s queued again\n", resp.Queued, args[0])
				if err == nil && resp.Superseded > 0 {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "%d dropped: their records have changed since, and the receiver gets the newer version\n", resp.Superseded)
				}
				return err
			})
		},
	}
	cmd.Flags().StringSliceVar(&messages, "message", nil, "only these message ids (see webhook failures)")
	f.register(cmd, true)
	f.fill(map[string]string{"message": "message_ids"})
	f.fillArg("ID", "webhook")
	return cmd
}

func newWebhookRotateCmd() *cobra.Command {
	var (
		f       clientFlags
		overlap time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rotate ID [--overlap 24h]",
		Short: "Give a webhook a new signing secret and print it, once (admins)",
		Long: `Give a webhook a new signing secret, printed once: give it to the receiver. Until the overlap
ends, every delivery is signed with the old secret as well (two signatures in
webhook-signature), so that the receiver can switch to the new one without refusing a delivery.
The webhook keeps its id, its queue and its failures.

A secret that leaked: --overlap 0 stops the old one at once; the receiver refuses deliveries
until it has the new one, and those become failures that "webhook retry" sends again.`,
		Example: `  knooppunt webhook rotate wh_3f2a9c0d1e4b5a6c
  knooppunt webhook rotate wh_3f2a9c0d1e4b5a6c --overlap 72h
  knooppunt webhook rotate wh_3f2a9c0d1e4b5a6c --overlap 0 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &pb.RotateWebhookRequest{Id: args[0]}
			if cmd.Flags().Changed("overlap") {
				req.Overlap = durationpb.New(overlap)
			}
			return f.call(func(conn *grpc.ClientConn) error {
				resp, err := pb.NewWebhookServiceClient(conn).Rotate(cmd.Context(), req)
				if err != nil {
					return err
				}
				if f.output == "json" {
					return printWebhookSecret(cmd, resp)
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "webhook %s (%s) has a new signing secret (shown once, give it to the receiver): %s\n", resp.Webhook.Id, resp.Webhook.Url, resp.Secret)
				if resp.Webhook.OldSecretUntil != nil {
					_, err = fmt.Fprintf(w, "Deliveries are signed with the old secret too until %s.\n", stamp(resp.Webhook.OldSecretUntil.AsTime()))
				} else {
					_, err = fmt.Fprintln(w, "The old secret no longer signs: the receiver refuses deliveries until it has the new one (see webhook failures, then webhook retry).")
				}
				return err
			})
		},
	}
	durationFlag(cmd.Flags(), &overlap, "overlap", 24*time.Hour, "how long deliveries are signed with the old secret too: 0 to 720h (0: a secret that leaked)")
	f.register(cmd, true)
	f.fillArg("ID", "id")
	f.fill(map[string]string{"overlap": "overlap"})
	return cmd
}
