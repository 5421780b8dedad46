package warn

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/checker"
	"cel.dev/cel-go/common"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/knooppunt/knooppunt/node/record"
)

// CostBudget bounds a condition: its estimated worst case at lint time and its actual cost at
// every evaluation, as policy.CostBudget does for a policy's `when`.
const CostBudget = 10000

// A condition sees:
//
//   - sum(kind, field): the sum of an aggregate field over the kind's records in the region, now,
//     one record a slot as the picture adds them (History.Sum), of the records that carry it;
//     where none does, it has no value and the evaluation fails;
//   - count(kind, window): how many of the kind's records appeared in the region within the
//     window that ends now;
//   - delta(x, window): x now minus x at the start of the window;
//   - ratio(a, b): a / b, which fails when b is 0;
//   - now (a timestamp) and region (a string).
//
// sum, count and delta are macros. sum and count read the instant they are evaluated at from
// `now`, and delta evaluates its argument a second time with `now` bound to the start of the
// window (as cel.bind does), so that delta(ratio(sum(..), sum(..)), d) means what it says. Kinds,
// fields and windows must be literals, so that lint can check them and the history knows, before
// any evaluation, what to index.
const (
	fnSum   = "__sum"
	fnCount = "__count"
)

// condition is a compiled condition with what it reads.
type condition struct {
	src   string
	prg   cel.Program
	kinds []string
	// windows are the delta and count windows as often as the text uses them, for LastRun:
	// delta(delta(x, 10m), 10m) reads x 20m back (Rule.Windows sorts and compacts them).
	windows []time.Duration
	// readsNow: the text names now itself (see readsNow), not only through the macros.
	readsNow bool
	ctx      *evalCtx // what the function bindings read; set by each evaluation
}

// evalCtx is the history and the region an evaluation reads, and the values it read.
type evalCtx struct {
	h      *History
	crisis string
	region string
	now    time.Time
	read   []Reading
}

// Reading is one value a condition read: which, at which instant, and its value.
type Reading struct {
	Expr  string    `json:"expr"`
	At    time.Time `json:"at"`
	Value float64   `json:"value"`
}

func (ec *evalCtx) note(expr string, at time.Time, v float64) {
	for _, r := range ec.read {
		if r.Expr == expr && r.At.Equal(at) {
			return
		}
	}
	ec.read = append(ec.read, Reading{Expr: expr, At: at, Value: v})
}

// celProblem is a problem at a line (1-based) and column (0-based) of a condition's text; line
// 0 when it has no position.
type celProblem struct {
	line, col int
	msg       string
}

// compileCondition parses, checks and plans a condition. A condition with problems returns them
// and no program.
func compileCondition(src string, kinds *record.Kinds) (*condition, []celProblem) {
	c := &condition{src: src, readsNow: readsNow(src), ctx: &evalCtx{}}
	env, err := c.env(kinds)
	if err != nil {
		return nil, []celProblem{{msg: err.Error()}}
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		var out []celProblem
		for _, e := range iss.Errors() {
			out = append(out, celProblem{line: e.Location.Line(), col: e.Location.Column(), msg: cleanMessage(e.Message)})
		}
		return nil, out
	}
	if ast.OutputType() != cel.BoolType {
		return nil, []celProblem{{line: 1, col: 0, msg: fmt.Sprintf("yields %s, not bool: compare it, such as sum(\"shelter.capacity\", \"beds_free\") < 100", ast.OutputType())}}
	}
	est, err := env.EstimateCost(ast, costEstimator{})
	if err != nil {
		return nil, []celProblem{{line: 1, msg: fmt.Sprintf("cost: %v", err)}}
	}
	if est.Max > CostBudget {
		return nil, []celProblem{{line: 1, msg: fmt.Sprintf("worst-case cost %d is over the budget of %d: simplify it, or walk shorter lists", est.Max, CostBudget)}}
	}
	prg, err := env.Program(ast, cel.CostLimit(CostBudget), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, []celProblem{{msg: err.Error()}}
	}
	c.prg = prg
	slices.Sort(c.kinds)
	c.kinds = slices.Compact(c.kinds)
	return c, nil
}

// cleanMessage names the macros as their authors wrote them, not as they were expanded.
func cleanMessage(m string) string {
	m = strings.ReplaceAll(m, "'"+fnSum+"'", "'sum'")
	m = strings.ReplaceAll(m, "'"+fnCount+"'", "'count'")
	return recordsFnRe.ReplaceAllString(m, "'records'")
}

var recordsFnRe = regexp.MustCompile(`'__records_[a-z0-9_.]+'`)

// env is the CEL environment of one condition: its function bindings read c.ctx, and its macros
// note the kinds and windows c reads.
func (c *condition) env(kinds *record.Kinds) (*cel.Env, error) {
	ec := c.ctx
	kindArg := func(eh cel.MacroExprFactory, e celast.Expr, fn string) (string, *common.Error) {
		s, ok := stringLit(e)
		if !ok {
			return "", eh.NewError(e.ID(), fmt.Sprintf("%s: the kind must be a string literal, such as \"shelter.capacity\"", fn))
		}
		if kinds.Get(s) == nil {
			return "", eh.NewError(e.ID(), fmt.Sprintf("%s: unknown kind %q: use one of %s", fn, s, strings.Join(kinds.Names(), ", ")))
		}
		c.kinds = append(c.kinds, s)
		return s, nil
	}
	windowArg := func(eh cel.MacroExprFactory, e celast.Expr, fn string) (time.Duration, *common.Error) {
		bad := eh.NewError(e.ID(), fmt.Sprintf("%s: the window must be a literal duration, such as duration(\"6h\")", fn))
		if e.Kind() != celast.CallKind || e.AsCall().FunctionName() != "duration" || len(e.AsCall().Args()) != 1 {
			return 0, bad
		}
		s, ok := stringLit(e.AsCall().Args()[0])
		if !ok {
			return 0, bad
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > MaxFor {
			return 0, eh.NewError(e.ID(), fmt.Sprintf("%s: %q is not a window: use a positive duration up to %s, such as \"24h\"", fn, s, MaxFor))
		}
		c.windows = append(c.windows, d)
		return d, nil
	}
	sumMacro := cel.GlobalMacro("sum", 2, func(eh cel.MacroExprFactory, _ celast.Expr, args []celast.Expr) (celast.Expr, *common.Error) {
		kind, err := kindArg(eh, args[0], "sum")
		if err != nil {
			return nil, err
		}
		field, ok := stringLit(args[1])
		if !ok {
			return nil, eh.NewError(args[1].ID(), "sum: the field must be a string literal, such as \"beds_free\"")
		}
		if agg := kinds.Get(kind).Aggregate; !slices.Contains(agg, field) {
			if len(agg) == 0 {
				return nil, eh.NewError(args[1].ID(), fmt.Sprintf("sum: kind %q has no aggregate fields: declare them in the kind's aggregate list, or count its records instead", kind))
			}
			return nil, eh.NewError(args[1].ID(), fmt.Sprintf("sum: %q is not an aggregate field of %q: use one of %s", field, kind, strings.Join(agg, ", ")))
		}
		return eh.NewCall(fnSum, eh.NewIdent("now"), args[0], args[1]), nil
	})
	countMacro := cel.GlobalMacro("count", 2, func(eh cel.MacroExprFactory, _ celast.Expr, args []celast.Expr) (celast.Expr, *common.Error) {
		if _, err := kindArg(eh, args[0], "count"); err != nil {
			return nil, err
		}
		if _, err := windowArg(eh, args[1], "count"); err != nil {
			return nil, err
		}
		return eh.NewCall(fnCount, eh.NewIdent("now"), args[0], args[1]), nil
	})
	provider, err := newRecordProvider(kinds)
	if err != nil {
		return nil, err
	}
	recordsMacro := cel.GlobalMacro("records", 1, func(eh cel.MacroExprFactory, _ celast.Expr, args []celast.Expr) (celast.Expr, *common.Error) {
		kind, err := kindArg(eh, args[0], "records")
		if err != nil {
			return nil, err
		}
		if provider.byName[recordTypePrefix+kind] == nil {
			return nil, eh.NewError(args[0].ID(), fmt.Sprintf("records: kind %q declares no string, number, integer or boolean fields in its schema: conditions on its records read those", kind))
		}
		return eh.NewCall(recordsFn(kind), eh.NewIdent("now")), nil
	})
	deltaMacro := cel.GlobalMacro("delta", 2, func(eh cel.MacroExprFactory, _ celast.Expr, args []celast.Expr) (celast.Expr, *common.Error) {
		if _, err := windowArg(eh, args[1], "delta"); err != nil {
			return nil, err
		}
		// x - cel.bind(now, now - window, x): the second x is read at the start of the window.
		then := eh.NewComprehension(eh.NewList(), "#unused", "now",
			eh.NewCall(operators.Subtract, eh.NewIdent("now"), eh.Copy(args[1])),
			eh.NewLiteral(types.False), eh.NewIdent("now"), eh.Copy(args[0]))
		return eh.NewCall(operators.Subtract, args[0], then), nil
	})
	opts := []cel.EnvOption{
		cel.CustomTypeProvider(provider),
		// sum(..) < 10 compares a double with an int: authors should not have to write 10.0.
		cel.CrossTypeNumericComparisons(true),
		cel.Variable("now", cel.TimestampType),
		cel.Variable("region", cel.StringType),
		cel.Macros(sumMacro, countMacro, deltaMacro, recordsMacro),
		cel.Function(fnSum, cel.Overload("warn_sum", []*cel.Type{cel.TimestampType, cel.StringType, cel.StringType}, cel.DoubleType,
			cel.FunctionBinding(func(args ...ref.Val) ref.Val {
				at := args[0].(types.Timestamp).Time
				kind, field := string(args[1].(types.String)), string(args[2].(types.String))
				expr := fmt.Sprintf("sum(%q, %q)", kind, field)
				v, ok := ec.h.Sum(kind, ec.crisis, ec.region, field, at)
				if !ok {
					// Not 0: a region whose records lack the field (a partner's policy redacts it)
					// would read as empty, and fire a rule on a shortage nobody reported.
					return types.NewErr("%s has no value at %s: no record of the kind in the region carries %s (it is absent, redacted, or over 2^53 in magnitude)",
						expr, at.UTC().Format(time.RFC3339), field)
				}
				ec.note(expr, at, v)
				return types.Double(v)
			}))),
		cel.Function(fnCount, cel.Overload("warn_count", []*cel.Type{cel.TimestampType, cel.StringType, cel.DurationType}, cel.IntType,
			cel.FunctionBinding(func(args ...ref.Val) ref.Val {
				at := args[0].(types.Timestamp).Time
				kind, window := string(args[1].(types.String)), args[2].(types.Duration).Duration
				v := ec.h.Count(kind, ec.crisis, ec.region, at, window)
				ec.note(fmt.Sprintf("count(%q, duration(%q))", kind, window), at, float64(v))
				return types.Int(v)
			}))),
		cel.Function("ratio", cel.Overload("warn_ratio_double_double", []*cel.Type{cel.DoubleType, cel.DoubleType}, cel.DoubleType,
			cel.BinaryBinding(func(a, b ref.Val) ref.Val {
				if b.(types.Double) == 0 {
					return types.NewErr("ratio: the denominator is 0")
				}
				return a.(types.Double) / b.(types.Double)
			}))),
	}
	return cel.NewEnv(append(opts, recordsFunctions(provider, ec)...)...)
}

func stringLit(e celast.Expr) (string, bool) {
	if e.Kind() != celast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().(types.String)
	return string(s), ok
}

// costEstimator gives sum and count the cost of the lookups they are (a binary search in an
// index), so that a condition that calls them in a loop is costed as it will run.
type costEstimator struct{}

// EstimateSize bounds what records(kind) returns, and the strings of its fields, which the history
// keeps up to db.MaxHistoryString bytes.
func (costEstimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	e := n.Expr()
	switch {
	case e == nil:
		return nil // a node the estimator made up, such as a list's elements
	case e.Kind() == celast.CallKind && strings.HasPrefix(e.AsCall().FunctionName(), "__records_"):
		return &checker.SizeEstimate{Min: 0, Max: MaxRecordsEstimate}
	case e.Kind() == celast.SelectKind && n.Type() == cel.StringType:
		return &checker.SizeEstimate{Min: 0, Max: maxFieldString}
	}
	return nil
}

// maxFieldString is db.MaxHistoryString (warn does no I/O and does not import db).
const maxFieldString = 256

func (costEstimator) EstimateCallCost(function, _ string, _ *checker.AstNode, _ []checker.AstNode) *checker.CallEstimate {
	if function == fnSum || function == fnCount || strings.HasPrefix(function, "__records_") {
		return &checker.CallEstimate{CostEstimate: checker.CostEstimate{Min: 20, Max: 20}}
	}
	return nil
}

// eval evaluates the condition in a region at an instant. A condition that fails (a ratio over
// 0, the cost limit) returns the error; it then neither holds nor fails to hold.
func (c *condition) eval(h *History, crisis, region string, now time.Time) (bool, error) {
	*c.ctx = evalCtx{h: h, crisis: crisis, region: region, now: now}
	out, _, err := c.prg.Eval(map[string]any{"now": now, "region": region})
	if err != nil {
		return false, err
	}
	// A value JSON cannot carry cannot be written on an alert, nor compared meaningfully: the
	// evaluation fails, whatever the comparison made of it.
	for _, r := range c.ctx.read {
		if math.IsInf(r.Value, 0) || math.IsNaN(r.Value) {
			return false, fmt.Errorf("%s is %v at %s: not a number a rule can decide on", r.Expr, r.Value, r.At.UTC().Format(time.RFC3339))
		}
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("yields %v, not bool", out.Value())
	}
	return b, nil
}
