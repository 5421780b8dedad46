package warn

import (
	"context"
	"fmt"
	"time"
)

// State is a rule's state in one region between two evaluations.
type State struct {
	// Pending is set while When holds but has not yet held for For; Since is the first
	// evaluation of that run.
	Pending bool      `json:"pending,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	// Firing is set from the evaluation that fired the rule until the one that resolved it.
	Firing  bool      `json:"firing,omitempty"`
	FiredAt time.Time `json:"fired_at,omitzero"`
}

// Transition is what one evaluation did.
type Transition int

const (
	// Held means the rule stayed firing or not firing.
	Held Transition = iota
	// Fired means an episode began: When had held for For.
	Fired
	// Resolved means the episode ended: Clear held.
	Resolved
)

// Step evaluates the rule in a region at an instant, from the state the evaluation before left.
// It returns the state after it, what it did, and the values the deciding condition read.
//
//   - Not firing: where When holds, a run starts (Since) or goes on; the rule fires once the run
//     has lasted For. Where When does not hold, or fails, the run ends.
//   - Firing: where Clear holds (by default, where When does not), the rule resolves. Where it
//     fails, the rule stays firing: a value that cannot be computed does not end an episode.
//
// An evaluation that resolves the rule never starts a run, so that a rule whose When and Clear
// both hold cannot fire and resolve at one instant. A Rule evaluates in one goroutine at a time.
func (r *Rule) Step(h *History, region string, at time.Time, s State) (State, Transition, []Reading, error) {
	crisis := r.Doc.Crisis
	if s.Firing {
		var (
			clear bool
			err   error
			read  []Reading
		)
		if r.clear != nil {
			clear, err = r.clear.eval(h, crisis, region, at)
			read = r.clear.ctx.read
		} else {
			var w bool
			w, err = r.when.eval(h, crisis, region, at)
			clear, read = !w, r.when.ctx.read
		}
		if err != nil || !clear {
			return s, Held, read, err
		}
		return State{}, Resolved, read, nil
	}
	w, err := r.when.eval(h, crisis, region, at)
	read := r.when.ctx.read
	if err != nil || !w {
		return State{}, Held, read, err
	}
	if !s.Pending {
		s = State{Pending: true, Since: at}
	}
	if at.Sub(s.Since) >= r.For {
		return State{Firing: true, FiredAt: at}, Fired, read, nil
	}
	return s, Held, read, nil
}

// Episode is one time a rule fired in a region.
type Episode struct {
	Region string    `json:"region"`
	Start  time.Time `json:"start"`
	// End is when it resolved; zero while it still fires.
	End time.Time `json:"end,omitzero"`
	// Values are what When read at Start: the values that fired it.
	Values []Reading `json:"values"`
	// ClearValues are what the clear condition read at End.
	ClearValues []Reading `json:"clear_values,omitempty"`
}

// MaxEvaluations bounds a dry run: evaluations times regions.
const MaxEvaluations = 2_000_000

// ceilTick is the first tick of step at or after t.
func ceilTick(t time.Time, step time.Duration) time.Time {
	c := t.Truncate(step)
	if c.Before(t) {
		c = c.Add(step)
	}
	return c
}

// Ticks are the instants of evaluation in [from, to]: the multiples of step since the Unix epoch,
// so that a dry run and the node evaluate at the same instants.
func Ticks(from, to time.Time, step time.Duration) []time.Time {
	if step <= 0 || to.Before(from) {
		return nil
	}
	first := ceilTick(from, step)
	var out []time.Time
	for t := first; !t.After(to); t = t.Add(step) {
		out = append(out, t)
	}
	return out
}

// DryRun evaluates the rule over the history at every tick of [from, to], and at to, and returns its
// episodes, region by region, in order of start. An evaluation that fails does not stop it: the
// rule behaves as Step says, and the first such error of each region is in errs. It stops with an
// error when ctx ends.
func (r *Rule) DryRun(ctx context.Context, h *History, from, to time.Time, step time.Duration) (eps []Episode, errs []error, err error) {
	if step <= 0 {
		return nil, nil, fmt.Errorf("warn: the step must be positive")
	}
	if from.Before(h.Since()) {
		from = h.Since()
	}
	regions := r.Doc.Regions
	if len(regions) == 0 {
		regions = h.Regions(r.Kinds(), r.Doc.Crisis)
	}
	// Counted as one region at least: the run's instants are made whether or not a region has
	// records.
	n := int64(to.Sub(from)/step+1) * int64(max(len(regions), 1))
	if n > MaxEvaluations {
		return nil, nil, fmt.Errorf("warn: a dry run of %d evaluations is over the bound of %d: use a longer step or a shorter span", n, MaxEvaluations)
	}
	ticks := Ticks(from, to, step)
	if len(ticks) == 0 || ticks[len(ticks)-1].Before(to) {
		// The end of the run is evaluated too, so that a run that ends now sees what changed
		// since the last step.
		ticks = append(ticks, to)
	}
	for _, region := range regions {
		var (
			s       State
			open    = -1
			errSeen bool
		)
		for i, t := range ticks {
			// A run within MaxEvaluations may still take minutes of CPU (review D, F7): it
			// ends when its caller goes or its time is up.
			if i%256 == 0 && ctx.Err() != nil {
				return nil, nil, fmt.Errorf("warn: the dry run stopped at %s in region %s: %w", t.Format(time.RFC3339), region, context.Cause(ctx))
			}
			next, tr, read, err := r.Step(h, region, t, s)
			if err != nil && !errSeen {
				errs = append(errs, fmt.Errorf("region %s at %s: %w", region, t.Format(time.RFC3339), err))
				errSeen = true
			}
			switch tr {
			case Fired:
				eps = append(eps, Episode{Region: region, Start: t, Values: read})
				open = len(eps) - 1
			case Resolved:
				eps[open].End, eps[open].ClearValues = t, read
				open = -1
			}
			s = next
		}
	}
	return eps, errs, nil
}
