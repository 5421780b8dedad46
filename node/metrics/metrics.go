// Package metrics holds the node's Prometheus collectors and the registry that /metrics serves.
// Every queue, stream and decision of the node has a collector here, so that operators find all
// of them, with stable names, in one place.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry is what /metrics serves.
var Registry = prometheus.NewRegistry()

var (
	// RecordWrites counts record writes by outcome: ok, refused (by the FSM: a stale version, a
	// closed exercise), failed, or disk_low (refused by the leader for its disk's reserve).
	RecordWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "record_writes_total",
		Help: "Record writes through the Raft log, by outcome: ok, refused, failed, or disk_low (refused by the leader: its disk is under the reserve).",
	}, []string{"outcome"})
	// BatchSize observes how many record writes went into one Raft entry (group commit).
	BatchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "knooppunt", Name: "raft_batch_records",
		Help:    "Record writes coalesced into one Raft log entry.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12),
	})
	// ReplicaReachable is, on the leader, 0 for each replica of the group it fails to reach (a
	// failed heartbeat), and 1 once that replica answers again. A new leader starts with none.
	ReplicaReachable = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "knooppunt", Name: "raft_replica_reachable",
		Help: "On the Raft leader: 0 for a replica of the group it cannot reach, 1 once it answers again.",
	}, []string{"replica"})
	// ConfigBroken is 1 while the config file on disk does not load (a reload failed): the node
	// runs on, but would not start with the file as it is.
	ConfigBroken = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "knooppunt", Name: "config_file_broken",
		Help: "1 while the config file on disk does not load: the running config stays, and a restart would fail.",
	})
	// ConfigRestartPending is 1 when the config file changed keys that apply only after a
	// restart (see config.RestartKeys).
	ConfigRestartPending = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "knooppunt", Name: "config_restart_pending",
		Help: "1 when the config file changed keys that apply only after a restart.",
	})
	// ApplyLatency observes the time from proposing a Raft entry to it being applied.
	ApplyLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "knooppunt", Name: "raft_apply_seconds",
		Help:    "Time from proposing a Raft entry until the FSM applied it.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	// WriteQueue is the number of record writes waiting for the next group commit.
	WriteQueue = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "knooppunt", Name: "write_queue_records",
		Help: "Record writes waiting for the next group commit.",
	})
	// SnapshotsBySize counts snapshots taken because the log grew past raft.snapshot_size.
	SnapshotsBySize = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "raft_snapshots_by_size_total",
		Help: "Raft snapshots taken because the log since the last one grew past raft.snapshot_size.",
	})
	// Erasures counts the runs that erase deleted and retracted records from the data directory
	// (a snapshot, the Raft log cut behind it, the SQLite WAL checkpointed), by outcome.
	Erasures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "erasures_total",
		Help: "Runs that erased deleted and retracted records from the data directory, by outcome (ok, error); an error is retried a tenth of erasure.within later.",
	}, []string{"outcome"})
	// AuditForks counts the heads of a peer's audit chain kept as evidence of a fork: a second
	// head for one seq, or a head below one held.
	AuditForks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "audit_forks_total",
		Help: "Signed audit heads of a peer kept as evidence that its chain forked or was rewritten: a second head for one entry, or a head below one held (audited as audit.fork).",
	}, []string{"peer"})
	// AuditDisputed counts the heads of this node's own audit chain a peer kept as evidence of a
	// fork, as the peer answered when handed them.
	AuditDisputed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "audit_disputed_total",
		Help: "Heads of this node's audit chain that a peer, its witness, kept as evidence that the chain forked or was rewritten (audited as audit.disputed): run knooppunt audit verify --witnesses.",
	}, []string{"peer"})
	// Resyncs counts the times a subscription re-checked everything it disclosed, by why.
	Resyncs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "federation_resyncs_total",
		Help: "Times a peer's subscription re-decided every record it may hold: start, change (a policy or phase), time (a window opened or closed, or a condition reads now).",
	}, []string{"reason"})
	// ResyncsSkipped counts the policy steps and phase changes after which a subscription did
	// not re-decide its records, because nothing that can grant its peer anything changed.
	ResyncsSkipped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "federation_resyncs_skipped_total",
		Help: "Policy steps and phase changes after which a peer's subscription kept its decisions: no approved policy naming the peer, and no phase, changed.",
	})
	// Throttled counts FederationService calls refused because a peer was over its limits.
	Throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "federation_throttled_total",
		Help: "FederationService calls refused with RESOURCE_EXHAUSTED because the peer was over federation.peer_requests_per_second or federation.peer_calls.",
	}, []string{"peer"})
	// FilesDisclosed counts files sent to peers (FetchFile), by peer.
	FilesDisclosed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "federation_files_disclosed_total",
		Help: "Files sent to peers through FetchFile, each audited as federation.disclose.file.",
	}, []string{"peer"})
	// FilesFetched counts the bytes of files fetched from peers, by peer.
	FilesFetched = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "federation_file_bytes_fetched_total",
		Help: "Bytes of files fetched from peers and stored through Raft.",
	}, []string{"peer"})
	// FilesRefused counts the files of peers' records that this node does not fetch, by peer:
	// over attachments.max_bytes, of a media type it does not accept, or named as a program.
	// Each is counted once (and again only after the limits change).
	FilesRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "federation_files_refused_total",
		Help: "Files named by peers' records that this node does not fetch: too large, a type it does not accept, or named as a program.",
	}, []string{"peer"})
	// RuleFiring is 1 for each rule and region where an early-warning rule fires, on the leader,
	// which decides firing; a follower exports none.
	RuleFiring = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "knooppunt", Name: "rule_firing",
		Help: "1 where an early-warning rule fires in a region, on the Raft leader that decides it.",
	}, []string{"rule", "region"})
	// RuleEvaluationErrors counts the evaluations of an early-warning rule that failed, on the
	// leader: a ratio over 0, a condition over its cost budget; with region "", the rule as a
	// whole, which no longer lints against the node's kinds. Such an evaluation neither fires
	// nor resolves, so knooppunt_rule_firing alone would read as healthy.
	RuleEvaluationErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "rule_evaluation_errors_total",
		Help: "Evaluations of an early-warning rule in a region that failed (neither firing nor resolving), on the Raft leader; region \"\": the rule no longer lints against the node's kinds.",
	}, []string{"rule", "region"})
	// Backups counts this replica's backups (ClusterService.Backup) by outcome: ok once the
	// client said it kept the whole file (BackupKept), error when the copy failed or the stream
	// broke off. A backup streamed whole that the client then failed to keep counts as neither.
	Backups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "backups_total",
		Help: "Backups of this replica (knooppunt backup), by outcome: ok (the client checked and kept the file), error (the copy or its stream failed).",
	}, []string{"outcome"})
	// BackupLast is when this replica made the copy of its last backup that a client kept.
	BackupLast = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "knooppunt", Name: "backup_last_success_timestamp_seconds",
		Help: "Unix time at which this replica made its last backup that the client checked and kept; 0 if none.",
	})
	// WatchStreams is the number of open Watch streams.
	WatchStreams = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "knooppunt", Name: "watch_streams",
		Help: "Open RecordService.Watch streams.",
	})
)

// ForgetPeer deletes the series of a peer that is no longer one, by its name and trust domain
// (the vectors label it by one or the other), so that a removed partner's counters and gauges do
// not stay until the next restart, and alerts on them do not fire for good (review AI, AI1).
func ForgetPeer(name, trustDomain string) {
	for _, vec := range []*prometheus.CounterVec{AuditForks, AuditDisputed, Throttled, FilesDisclosed, FilesFetched, FilesRefused} {
		for _, v := range []string{name, trustDomain} {
			if v != "" {
				vec.DeleteLabelValues(v)
			}
		}
	}
}

func init() {
	Registry.MustRegister(ReplicaReachable, ConfigBroken, ConfigRestartPending, Backups, BackupLast, WebhookAttempts, WebhookDelivery, WebhookQueues, FilesDisclosed, FilesFetched, FilesRefused, RuleFiring, RuleEvaluationErrors, RecordWrites, BatchSize, ApplyLatency, WriteQueue, WatchStreams, SnapshotsBySize, Erasures, AuditForks, AuditDisputed, Resyncs, ResyncsSkipped, Throttled,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Counters of a fixed set of outcomes start at 0, so that an alert on increase() sees a
	// series from the start rather than no data until the first event.
	for vec, outcomes := range map[*prometheus.CounterVec][]string{
		Backups: {"ok", "error"}, Erasures: {"ok", "error"}, RecordWrites: {"ok", "refused", "failed", "disk_low"},
		WebhookAttempts: {"delivered", "failed", "refused", "dead"},
	} {
		for _, o := range outcomes {
			vec.WithLabelValues(o)
		}
	}
}

var (
	// WebhookAttempts counts webhook delivery attempts by outcome: delivered, failed (to be
	// retried), dead (given up after webhooks.retry_for) or refused (a failure at once: the
	// receiver answered a 4xx that is not worth retrying or a redirect, or the address or a
	// re-share is not allowed).
	WebhookAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "webhook_attempts_total",
		Help: "Webhook delivery attempts, by outcome.",
	}, []string{"outcome"})
	// WebhookDelivery observes the time from a change's commit to its webhook's acknowledgement.
	WebhookDelivery = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "knooppunt", Name: "webhook_delivery_seconds",
		Help:    "Time from a change's commit to the receiver's acknowledgement of its webhook delivery.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 12),
	})
)

// WebhookQueues are the webhooks' queues as the leader, which delivers them, last read them:
// knooppunt_webhook_queued{webhook} and knooppunt_webhook_oldest_queued_seconds{webhook}, the
// age of the delivery at the head of the queue, which grows while the receiver does not take it.
// One series per webhook; a follower exports none.
var WebhookQueues = &webhookQueues{
	queued: prometheus.NewDesc("knooppunt_webhook_queued",
		"Deliveries waiting in a webhook's queue (failures not counted), on the Raft leader that delivers them.", []string{"webhook"}, nil),
	oldest: prometheus.NewDesc("knooppunt_webhook_oldest_queued_seconds",
		"Seconds since the change at the head of a webhook's queue was committed; 0 when the queue is empty. On the Raft leader.", []string{"webhook"}, nil),
}

// WebhookQueue is one webhook's queue: how many deliveries wait, and when the change at its head
// was committed (zero when none waits).
type WebhookQueue struct {
	Queued int64
	Head   time.Time
}

type webhookQueues struct {
	queued, oldest *prometheus.Desc
	mu             sync.Mutex
	by             map[string]WebhookQueue
}

// Set replaces the queues, by webhook id; nil clears them, as when this replica stops leading.
func (q *webhookQueues) Set(by map[string]WebhookQueue) {
	q.mu.Lock()
	q.by = by
	q.mu.Unlock()
}

func (q *webhookQueues) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.queued
	ch <- q.oldest
}

// Collect computes the ages when scraped, so that a stuck queue ages between reads.
func (q *webhookQueues) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	for id, w := range q.by {
		age := 0.0
		if !w.Head.IsZero() && w.Queued > 0 {
			age = max(0, now.Sub(w.Head).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(q.queued, prometheus.GaugeValue, float64(w.Queued), id)
		ch <- prometheus.MustNewConstMetric(q.oldest, prometheus.GaugeValue, age, id)
	}
}

// Handler serves the registry in the Prometheus text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry})
}

// GaugeFunc registers a gauge of one node whose value is read when scraped, such as the store
// size. It returns a function that unregisters it, for when the node stops.
func GaugeFunc(node, name, help string, f func() float64) (unregister func(), err error) {
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "knooppunt", Name: name, Help: help,
		ConstLabels: prometheus.Labels{"node": node},
	}, f)
	if err := Registry.Register(g); err != nil {
		return nil, err
	}
	return func() { Registry.Unregister(g) }, nil
}

// Value reads a counter or gauge of the Registry: the series of name whose labels include
// labels. ok is false when there is none. For tests and diagnostics, which read what a scrape
// would.
func Value(name string, labels map[string]string) (v float64, ok bool) {
	each(name, labels, func(x float64) bool { v, ok = x, true; return false })
	return v, ok
}

// Series counts the series of name whose labels include labels.
func Series(name string, labels map[string]string) (n int) {
	each(name, labels, func(float64) bool { n++; return true })
	return n
}

// each calls fn with the value of each series of name in the Registry whose labels include
// labels, a counter's or a gauge's, until fn returns false.
func each(name string, labels map[string]string, fn func(v float64) bool) {
	families, err := Registry.Gather()
	if err != nil {
		return
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, want := range labels {
				if have[k] != want {
					continue series
				}
			}
			v := m.GetGauge().GetValue()
			if c := m.GetCounter(); c != nil {
				v = c.GetValue()
			}
			if !fn(v) {
				return
			}
		}
	}
}
