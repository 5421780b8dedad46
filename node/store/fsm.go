package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// fsm applies committed log entries to the database. Apply, Snapshot and Restore all delegate to
// db; of its own it holds only a count for the snapshot policy and the erasure callback.
type fsm struct {
	db  *db.DB
	log *slog.Logger
	// sinceSnapshot is the bytes of log entries applied since the last snapshot began, for the
	// size threshold.
	sinceSnapshot atomic.Int64
	// erased is called after an entry that deletes a record or retracts a peer's record is
	// applied: its content must then leave the data directory (see eraser).
	erased func()
	// stop ends the process when a committed entry cannot be applied (Config.Stop); nil: panic.
	stop func(msg string)
	// settled is the index of the last entry whose Apply returned, with all it does after its
	// transaction (a policy step moves db.Generation then): raft's AppliedIndex moves when an
	// entry is handed to the FSM, the database's when its transaction commits.
	settled atomic.Uint64
	// refused is the last snapshot of the leader that this replica failed to restore, while no
	// restore succeeded since (see Store.SnapshotRefused); nil otherwise.
	refused atomic.Pointer[refusal]
	// committed is the newest configuration of the group this replica knows to be committed: a
	// snapshot's, or one Raft applied since (ApplyBatch); nil before it knows one. See
	// Store.InGroup.
	committed atomic.Pointer[groupConfig]
	// snaps are the snapshots a restore reads from.
	snaps raft.SnapshotStore
}

// groupConfig is a configuration of the Raft group and the index of the log entry that made it.
type groupConfig struct {
	index   uint64
	servers []raft.Server
}

// refusal is a failed restore of a snapshot: why, and since when restores fail.
type refusal struct {
	err   error
	since time.Time
}

type applyResponse struct {
	results []db.Result
	value   any
	err     error
}

// PolicyOutcome is the answer to a policy step: the policy after the step, or the lifecycle
// rule that refused it.
type PolicyOutcome struct {
	Policy  *db.PolicyRow
	Refusal error
}

// RuleOutcome is the answer to a rule step: the rule after it, or why it was refused.
type RuleOutcome struct {
	Rule    *db.RuleRow
	Refusal error
}

// WebhookOutcome is the answer to a webhook step: the webhook after it, what a retry did with
// the dead letters, or why it was refused.
type WebhookOutcome struct {
	Webhook *db.WebhookRow
	db.RetryOutcome
	Refusal error
}

func encode(c *pb.Command) ([]byte, error) {
	b, err := proto.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("store: encode command: %w", err)
	}
	return b, nil
}

// Apply dispatches one entry. An entry that cannot be decoded, or a command this build does not
// know, stops the replica: applying it in any other way would let replicas diverge.
func (f *fsm) Apply(l *raft.Log) any {
	f.sinceSnapshot.Add(int64(len(l.Data)))
	var c pb.Command
	if err := proto.Unmarshal(l.Data, &c); err != nil {
		panic(fmt.Sprintf("store: log entry %d cannot be decoded: %v", l.Index, err))
	}
	out := f.settle(l, f.dispatch(l, &c))
	f.markSettled(l.Index)
	return out
}

// ApplyBatch applies the entries Raft committed together (raft.BatchingFSM). A run of record
// writes goes to the database as one transaction: under many writers a group commits once for
// dozens of entries instead of once an entry, which is most of what a small write costs. Every
// other command is applied on its own, in order. Entries other than commands (a configuration
// change, which becomes the committed one) have no response.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	if f.refused.Load() != nil {
		// Entries come again (a leader that holds them in its log): the replica moves on.
		f.refused.Store(nil)
	}
	out := make([]any, len(logs))
	cmds := make([]*pb.Command, len(logs))
	for i, l := range logs {
		if l.Type == raft.LogConfiguration {
			f.commitConfig(l.Index, raft.DecodeConfiguration(l.Data))
		}
		if l.Type != raft.LogCommand {
			continue
		}
		f.sinceSnapshot.Add(int64(len(l.Data)))
		cmds[i] = &pb.Command{}
		if err := proto.Unmarshal(l.Data, cmds[i]); err != nil {
			panic(fmt.Sprintf("store: log entry %d cannot be decoded: %v", l.Index, err))
		}
	}
	for i := 0; i < len(logs); {
		var run []db.WriteEntry
		tombstones := false
		j := i
		for ; j < len(logs); j++ {
			w, ok := cmds[j].GetCmd().(*pb.Command_WriteRecords)
			if !ok {
				break
			}
			run = append(run, db.WriteEntry{Index: logs[j].Index, Writes: w.WriteRecords.Records, Actors: w.WriteRecords.Actors, Bookkeeping: w.WriteRecords.PictureBookkeeping, Purges: w.WriteRecords.PurgesDeliveries})
			tombstones = tombstones || slices.ContainsFunc(w.WriteRecords.Records, (*pb.Record).GetTombstone)
		}
		if len(run) < 2 {
			if cmds[i] != nil {
				out[i] = f.settle(logs[i], f.dispatch(logs[i], cmds[i]))
			}
			i++
			continue
		}
		res, err := f.db.ApplyWrites(run)
		if err != nil {
			// One transaction for the run: its entries fail together, named as a range.
			f.settleRun(logs[i].Index, logs[j-1].Index, err)
		}
		for k := range run {
			var r []db.Result
			if err == nil {
				r = res[k]
			}
			out[i+k] = applyResponse{results: r, err: err} // err: the database was closed
		}
		if err == nil && tombstones && f.erased != nil {
			f.erased()
		}
		i = j
	}
	if len(logs) > 0 {
		f.markSettled(logs[len(logs)-1].Index)
	}
	return out
}

// settle returns an entry's response. When the database could not apply a committed entry (disk
// full, I/O error, or an entry this release cannot apply) it stops the replica: going on would
// leave it without the entry for good; stopping lets it replay on restart.
func (f *fsm) settle(l *raft.Log, resp applyResponse) applyResponse {
	if resp.err != nil {
		f.settleRun(l.Index, l.Index, resp.err)
	}
	return resp
}

// settleRun stops the replica when err kept the committed entries first to last from the
// database, unless the database was closed (the replica stops anyway): with Config.Stop, as a
// process ends, with what to do and no stack; without, with a panic.
func (f *fsm) settleRun(first, last uint64, err error) {
	if errors.Is(err, db.ErrClosed) {
		return
	}
	todo := unappliedTodo(err)
	entries := fmt.Sprintf("log entry %d", first)
	if last != first {
		entries = fmt.Sprintf("log entries %d to %d", first, last)
	}
	if f.log != nil {
		f.log.Error("store: a committed log entry could not be written to the database: "+todo, "index", first, "last", last, "err", err)
	}
	msg := fmt.Sprintf("store: %s could not be applied: %v: %s", entries, err, todo)
	if f.stop != nil {
		f.stop(msg)
	}
	panic(msg)
}

// unappliedTodo says what to do about a committed entry that err kept from the database: a fault
// of the storage is the disk's to mend; any other fails at every try, and is an entry of a newer
// release than this replica runs (a step it does not know), or of a schema the database lacks
// (review V, V3: it told the host to check the disk).
func unappliedTodo(err error) string {
	const stops = "this replica stops, and applies the entry again when it starts: nothing committed is lost. "
	if db.StorageFault(err) {
		return stops + "Check the disk of the data directory (free space, I/O errors in the kernel log), then start the node again"
	}
	return stops + "The entry fails the same way at every try: it most likely comes from a replica of a newer knooppunt release. " +
		"Run the release the leader runs on this replica too (docs/cluster.md, Upgrades), then start it again"
}

func (f *fsm) dispatch(l *raft.Log, c *pb.Command) applyResponse {
	switch cmd := c.Cmd.(type) {
	case *pb.Command_WriteRecords:
		all, err := f.db.ApplyWrites([]db.WriteEntry{{Index: l.Index, Writes: cmd.WriteRecords.Records, Actors: cmd.WriteRecords.Actors, Bookkeeping: cmd.WriteRecords.PictureBookkeeping, Purges: cmd.WriteRecords.PurgesDeliveries}})
		var res []db.Result
		if err == nil {
			res = all[0]
		}
		if err == nil && f.erased != nil && slices.ContainsFunc(cmd.WriteRecords.Records, (*pb.Record).GetTombstone) {
			f.erased()
		}
		return applyResponse{results: res, err: err}
	case *pb.Command_PolicyStep:
		row, refusal, err := f.db.ApplyPolicyStep(l.Index, cmd.PolicyStep)
		return applyResponse{value: PolicyOutcome{Policy: row, Refusal: refusal}, err: err}
	case *pb.Command_PhaseStep:
		prev, err := f.db.ApplyPhaseStep(l.Index, cmd.PhaseStep)
		return applyResponse{value: prev, err: err}
	case *pb.Command_RecordDisclosures:
		return applyResponse{err: f.db.ApplyDisclosures(l.Index, cmd.RecordDisclosures)}
	case *pb.Command_CacheForeign:
		redacting, err := f.db.ApplyCacheForeignRedacting(l.Index, cmd.CacheForeign)
		if err == nil && f.erased != nil && (len(cmd.CacheForeign.Retractions) > 0 || redacting) {
			f.erased()
		}
		return applyResponse{err: err}
	case *pb.Command_PeerStep:
		out, err := f.db.ApplyPeerStep(l.Index, cmd.PeerStep)
		return applyResponse{value: out, err: err}
	case *pb.Command_KeepHead:
		fork, err := f.db.ApplyKeepHead(l.Index, cmd.KeepHead)
		if fork != "" {
			metrics.AuditForks.WithLabelValues(label(cmd.KeepHead.Peer)).Inc()
		}
		return applyResponse{value: fork, err: err}
	case *pb.Command_KeepAuthorities:
		return applyResponse{err: f.db.ApplyKeepAuthorities(l.Index, cmd.KeepAuthorities)}
	case *pb.Command_RuleStep:
		row, refusal, err := f.db.ApplyRuleStep(l.Index, cmd.RuleStep)
		return applyResponse{value: RuleOutcome{Rule: row, Refusal: refusal}, err: err}
	case *pb.Command_WebhookStep:
		row, n, refusal, err := f.db.ApplyWebhookStep(l.Index, cmd.WebhookStep)
		return applyResponse{value: WebhookOutcome{Webhook: row, RetryOutcome: n, Refusal: refusal}, err: err}
	case *pb.Command_WebhookAcks:
		return applyResponse{err: f.db.ApplyWebhookAcks(l.Index, cmd.WebhookAcks)}
	case *pb.Command_ExerciseStep:
		out, err := f.db.ApplyExerciseStep(l.Index, cmd.ExerciseStep)
		if err == nil && f.erased != nil && out.Exercise != nil && (out.Exercise.Deleted > 0 || out.Purged > 0) && cmd.ExerciseStep.Action == "close" {
			f.erased()
		}
		return applyResponse{value: out, err: err}
	case *pb.Command_FileChunk:
		refused, err := f.db.ApplyFileChunk(l.Index, cmd.FileChunk)
		return applyResponse{value: refused, err: err}
	case *pb.Command_FileStep:
		refused, removed, err := f.db.ApplyFileStep(l.Index, cmd.FileStep)
		if err == nil && removed && f.erased != nil {
			f.erased()
		}
		return applyResponse{value: refused, err: err}
	case *pb.Command_AppendAudit:
		entries := make([]db.AuditEntry, len(cmd.AppendAudit.Entries))
		for i, e := range cmd.AppendAudit.Entries {
			entries[i] = db.AuditEntry{At: e.At.AsTime(), Actor: e.Actor, Action: e.Action, Subject: e.Subject, Detail: e.Detail}
		}
		return applyResponse{err: f.db.ApplyAudit(l.Index, entries)}
	}
	panic(fmt.Sprintf("store: log entry %d holds an unknown command %T: upgrade this replica", l.Index, c.Cmd))
}

// Snapshot copies the database while Apply is paused (Raft never runs the two at once), so the
// copy is exactly the state at the last applied index.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.sinceSnapshot.Store(0)
	path, err := CopyPath(f.db)
	if err != nil {
		return nil, fmt.Errorf("store: snapshot: %w", err)
	}
	if err := f.db.Backup(path); err != nil {
		// A copy cut short (a full disk) may hold deleted content: it goes now, not at the next
		// start.
		os.Remove(path)
		return nil, fmt.Errorf("store: snapshot: %w", err)
	}
	return &snapshot{path: path}, nil
}

// CopyPath is a new path beside the database, not yet a file (VACUUM INTO wants to create it),
// for a copy of it: a snapshot's or a backup's. Its name is a snapshot copy's, so that one a
// crash left behind goes at the next start (see Open).
func CopyPath(d *db.DB) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(d.Path()), "snapshot-*.db.tmp")
	if err != nil {
		return "", err
	}
	path := tmp.Name()
	tmp.Close()
	os.Remove(path)
	return path, nil
}

// Restore swaps in the database from a snapshot.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.db.Restore(rc); err != nil {
		since := time.Now()
		if last := f.refused.Load(); last != nil {
			since = last.since
		}
		f.refused.Store(&refusal{err: err, since: since})
		return err
	}
	f.refused.Store(nil)
	f.settleAtDB()
	// Raft restores the newest snapshot, whether a leader sent it or a backup is restored, and
	// takes its configuration as committed.
	if list, err := f.snaps.List(); err == nil && len(list) > 0 {
		f.commitConfig(list[0].ConfigurationIndex, list[0].Configuration)
	}
	return nil
}

// commitConfig takes c, made at index, as the committed configuration, unless a newer one is.
func (f *fsm) commitConfig(index uint64, c raft.Configuration) {
	next := &groupConfig{index: index, servers: c.Servers}
	for {
		old := f.committed.Load()
		if old != nil && old.index > index || f.committed.CompareAndSwap(old, next) {
			return
		}
	}
}

// markSettled moves settled to index, never back: a replica that starts again has raft replay entries
// the database already holds (it skips them), and settled stays where the database is.
func (f *fsm) markSettled(index uint64) {
	for {
		old := f.settled.Load()
		if index <= old || f.settled.CompareAndSwap(old, index) {
			return
		}
	}
}

// settleAtDB takes the database's applied index as settled: what a database holds, whether
// opened or restored, was applied whole.
func (f *fsm) settleAtDB() {
	if a, err := f.db.AppliedIndex(); err == nil {
		f.settled.Store(a)
	}
}

type snapshot struct{ path string }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	file, err := os.Open(s.path)
	if err != nil {
		sink.Cancel()
		return err
	}
	defer file.Close()
	if _, err := io.Copy(sink, file); err != nil {
		sink.Cancel()
		return fmt.Errorf("store: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() { os.Remove(s.path) }
