package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Exercise states.
const (
	ExerciseOpen   = "open"
	ExerciseClosed = "closed"
)

// A peer's part in an exercise (pb.ExercisePartner.state, pb.Heartbeat.exercise_state) is its
// state of it, ExerciseOpen or ExerciseClosed, or one of these.
const (
	// ExerciseNone: the peer never started the exercise.
	ExerciseNone = "none"
	// ExerciseUnknown: the peer did not say (its node is down, runs a release that does not
	// say, or its policies grant this node none of the exercise's records).
	ExerciseUnknown = "unknown"
)

// TakesNoPart reports whether a peer's part in an exercise is none: it never started it, or
// closed it, so that it shares nothing of it and receives nothing of it.
func TakesNoPart(state string) bool { return state == ExerciseNone || state == ExerciseClosed }

// Refusals of an exercise step, decided from the database alone so that every replica decides
// alike.
var (
	ErrExerciseExists  = errors.New("db: the exercise exists already")
	ErrExerciseUnknown = errors.New("db: no such exercise")
	ErrExerciseClosed  = errors.New("db: the exercise is closed")
)

// ExerciseRow is an exercise as the store keeps it.
type ExerciseRow struct {
	Name, State         string
	StartedBy, ClosedBy string
	StartedAt, ClosedAt time.Time
	// Records counts its live records; Deleted, the records its close deleted.
	Records, Deleted int64
}

// ExerciseOutcome is the answer to an exercise step: the exercise after the step, or the
// refusal.
type ExerciseOutcome struct {
	Exercise *ExerciseRow
	Refusal  error
	// Purged counts, for a close, the cached copies of peers' records of the exercise dropped.
	Purged int
}

// ApplyExerciseStep starts or closes an exercise for the Raft entry at index, and audits it. A
// close writes, in the same transaction, a tombstone for every live record of the exercise:
// each is a change in the feed, so every peer that holds a copy gets a retraction, and the audit
// entries of the exercise stay. A start of an existing exercise, or a close of one that is not
// open, is refused and changes nothing.
func (d *DB) ApplyExerciseStep(index uint64, s *pb.ExerciseStep) (ExerciseOutcome, error) {
	var out ExerciseOutcome
	at := s.At.AsTime()
	err := d.applyTx(index, func(tx *writeTx, seq *int64) error {
		cur, err := exerciseRow(tx.QueryRow(sqlExercise, s.Name))
		if err != nil && !errors.Is(err, ErrExerciseUnknown) {
			return err
		}
		a, err := newAuditor(tx)
		if err != nil {
			return err
		}
		switch s.Action {
		case "start":
			if cur != nil {
				out.Refusal = fmt.Errorf("%w: %s is %s", ErrExerciseExists, s.Name, cur.State)
				return nil
			}
			if _, err := tx.Exec(`INSERT INTO exercises (name, state, started_by, started_at, closed_by, closed_at, deleted) VALUES (?,?,?,?,'',0,0)`,
				s.Name, ExerciseOpen, s.Actor, at.UnixNano()); err != nil {
				return err
			}
			if err := a.add(at, s.Actor, AuditExerciseStart, s.Name, map[string]any{"reason": s.Reason}); err != nil {
				return err
			}
		case "close":
			switch {
			case cur == nil:
				out.Refusal = fmt.Errorf("%w: %s", ErrExerciseUnknown, s.Name)
				return nil
			case cur.State != ExerciseOpen:
				out.Refusal = fmt.Errorf("%w: %s", ErrExerciseClosed, s.Name)
				return nil
			}
			ids, err := exerciseIDs(tx, s.Name)
			if err != nil {
				return err
			}
			ap := d.newApplier(tx)
			for _, id := range ids {
				res, err := ap.apply(&pb.Record{Id: id, Tombstone: true, UpdatedAt: s.At}, *seq+1)
				if err != nil {
					return fmt.Errorf("record %q: %w", id, err)
				}
				if res.Err == nil {
					*seq++
				}
			}
			// The copies of the exercise's records that peers sent leave with it, and so do the
			// cursors of its subscriptions: the exercise is over on this node.
			cached, err := foreignExerciseKeys(tx, s.Name)
			if err != nil {
				return err
			}
			hooks := hookQueue{tx: tx}
			for _, k := range cached {
				if s.RetractCopies {
					if err := retractOne(tx, k[0], k[1], &Mode{Status: pb.Status_EXERCISE, Exercise: s.Name}, &hooks, at.UnixNano(), false); err != nil {
						return err
					}
					continue
				}
				if _, err := tx.Exec(`DELETE FROM foreign_records WHERE origin = ? AND id = ?`, k[0], k[1]); err != nil {
					return err
				}
				if err := queueText(tx, k[0], k[1]); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(`DELETE FROM peer_cursors WHERE exercise = ?`, s.Name); err != nil {
				return err
			}
			// What its rules and its picture read goes with it: its records, own and cached,
			// are gone.
			for _, table := range []string{"history", "picture_removals"} {
				if _, err := tx.Exec(`DELETE FROM `+table+` WHERE status = ? AND exercise = ?`, int32(pb.Status_EXERCISE), s.Name); err != nil {
					return err
				}
			}
			out.Purged = len(cached)
			if _, err := tx.Exec(`UPDATE exercises SET state = ?, closed_by = ?, closed_at = ?, deleted = ? WHERE name = ?`,
				ExerciseClosed, s.Actor, at.UnixNano(), len(ids), s.Name); err != nil {
				return err
			}
			if err := a.add(at, s.Actor, AuditExerciseClose, s.Name, map[string]any{"reason": s.Reason, "deleted": len(ids)}); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown exercise action %q", s.Action)
		}
		out.Exercise, err = exerciseRow(tx.QueryRow(sqlExercise, s.Name))
		return err
	})
	return out, err
}

// exerciseState is the exercise's state in the entry's transaction: open, closed, or "" when it
// was never started.
func exerciseState(tx *writeTx, name string) (string, error) {
	return stateOf(tx.QueryRow(sqlExerciseState, name))
}

const sqlExerciseState = `SELECT state FROM exercises WHERE name = ?`

// stateOf reads an exercise's state from its row: "" when there is none.
func stateOf(row rowScanner) (string, error) {
	var state string
	if err := row.Scan(&state); !errors.Is(err, sql.ErrNoRows) {
		return state, err
	}
	return "", nil
}

func exerciseIDs(tx *writeTx, name string) ([]string, error) {
	rows, err := tx.Query(`SELECT id FROM records WHERE status = ? AND exercise = ? AND tombstone = 0 ORDER BY id`, int32(pb.Status_EXERCISE), name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func foreignExerciseKeys(tx *writeTx, name string) ([][2]string, error) {
	rows, err := tx.Query(`SELECT origin, id FROM foreign_records WHERE status = ? AND exercise = ? ORDER BY origin, id`, int32(pb.Status_EXERCISE), name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys [][2]string
	for rows.Next() {
		var k [2]string
		if err := rows.Scan(&k[0], &k[1]); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

const sqlExercise = `SELECT name, state, started_by, started_at, closed_by, closed_at, deleted,
	(SELECT count(*) FROM records WHERE status = 1 AND exercise = exercises.name AND tombstone = 0)
	FROM exercises WHERE name = ?`

func exerciseRow(row scanner) (*ExerciseRow, error) {
	var (
		e               ExerciseRow
		started, closed int64
	)
	if err := row.Scan(&e.Name, &e.State, &e.StartedBy, &started, &e.ClosedBy, &closed, &e.Deleted, &e.Records); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrExerciseUnknown
		}
		return nil, err
	}
	e.StartedAt = time.Unix(0, started).UTC()
	if closed != 0 {
		e.ClosedAt = time.Unix(0, closed).UTC()
	}
	return &e, nil
}

// Exercise returns the named exercise, or ErrExerciseUnknown.
func (d *DB) Exercise(ctx context.Context, name string) (*ExerciseRow, error) {
	var e *ExerciseRow
	err := d.read(func(ro *sql.DB) error {
		var err error
		e, err = exerciseRow(ro.QueryRowContext(ctx, sqlExercise, name))
		return err
	})
	return e, err
}

// ExerciseState is the state of the named exercise on this node: ExerciseOpen, ExerciseClosed,
// or "" when it never started it.
func (d *DB) ExerciseState(ctx context.Context, name string) (string, error) {
	var state string
	err := d.read(func(ro *sql.DB) error {
		var err error
		state, err = stateOf(ro.QueryRowContext(ctx, sqlExerciseState, name))
		return err
	})
	return state, err
}

// Exercises returns the exercises by name: the open ones, or all with closed.
func (d *DB) Exercises(ctx context.Context, closed bool) ([]*ExerciseRow, error) {
	var out []*ExerciseRow
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, `SELECT name FROM exercises WHERE (? OR state = 'open') ORDER BY name`, closed)
		if err != nil {
			return err
		}
		var names []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			names = append(names, n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, n := range names {
			e, err := exerciseRow(ro.QueryRowContext(ctx, sqlExercise, n))
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db: exercises: %w", err)
	}
	return out, nil
}
