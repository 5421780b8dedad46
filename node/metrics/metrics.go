// Package metrics holds the node's Prometheus collectors and the registry that /metrics serves.
// Every queue, stream and decision of the node has a collector here, so that operators find all
// of them, with stable names, in one place.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry is what /metrics serves.
var Registry = prometheus.NewRegistry()

var (
	// RecordWrites counts record writes by outcome (ok, or the gRPC code name).
	RecordWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "record_writes_total",
		Help: "Record writes through the Raft log, by outcome.",
	}, []string{"outcome"})
	// BatchSize observes how many record writes went into one Raft entry (group commit).
	BatchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "knooppunt", Name: "raft_batch_records",
		Help:    "Record writes coalesced into one Raft log entry.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12),
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
	// RuleFiring is 1 for each rule and region where an early-warning rule fires, on the leader,
	// which decides firing; a follower exports none.
	RuleFiring = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "knooppunt", Name: "rule_firing",
		Help: "1 where an early-warning rule fires in a region, on the Raft leader that decides it.",
	}, []string{"rule", "region"})
	// Backups counts the backups this replica streamed (ClusterService.Backup), by outcome: ok,
	// or error (the copy failed, or the client went before the end).
	Backups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "backups_total",
		Help: "Backups this replica streamed (knooppunt backup), by outcome (ok, error).",
	}, []string{"outcome"})
	// BackupLast is when this replica last streamed a whole backup.
	BackupLast = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "knooppunt", Name: "backup_last_success_timestamp_seconds",
		Help: "Unix time at which this replica last streamed a whole backup; 0 since the start if none.",
	})
	// WatchStreams is the number of open Watch streams.
	WatchStreams = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "knooppunt", Name: "watch_streams",
		Help: "Open RecordService.Watch streams.",
	})
)

func init() {
	Registry.MustRegister(Backups, BackupLast, WebhookAttempts, WebhookDelivery, FilesDisclosed, FilesFetched, RuleFiring, RecordWrites, BatchSize, ApplyLatency, WriteQueue, WatchStreams, SnapshotsBySize, Erasures, AuditForks, Resyncs, ResyncsSkipped, Throttled,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

var (
	// WebhookAttempts counts webhook delivery attempts by outcome: delivered, failed (to be
	// retried), dead (given up) or refused (the URL or address is not allowed).
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
