package policy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/checker"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// CostBudget bounds a `when` expression: its estimated worst case at lint time and its actual
// cost at every evaluation.
const CostBudget = 10000

// Record is what a `when` expression sees as `record`.
type Record struct {
	ID             string            `cel:"id"`
	Origin         string            `cel:"origin"`
	Kind           string            `cel:"kind"`
	Crisis         string            `cel:"crisis"`
	Region         string            `cel:"region"`
	Classification string            `cel:"classification"`
	Labels         map[string]string `cel:"labels"`
	Body           map[string]any    `cel:"body"`
	Version        int64             `cel:"version"`
	UpdatedAt      time.Time         `cel:"updated_at"`

	// view, when set, is what record.body is instead of Body: see bodyView.
	view *bodyView
}

// Recipient is what a `when` expression sees as `recipient`, and who a decision is for.
type Recipient struct {
	// ID is the recipient's SPIFFE ID, such as spiffe://ncc.crisis.test/node/r1.
	ID string `cel:"id"`
	// TrustDomain is the recipient org's trust domain.
	TrustDomain string `cel:"trust_domain"`
	// Name is the peer's configured name.
	Name string `cel:"name"`
	// Groups are the peer's groups from config.
	Groups []string `cel:"groups"`
	// Purpose is what the request said it needs the records for: its stated purpose, "" when it
	// stated none. A policy with accept_purposes grants only to the purposes it lists.
	Purpose string `cel:"purpose"`
}

// Holder names who keeps what is sent to the recipient: the key under which a source tracks what
// it disclosed and retracts it. It is the recipient's own SPIFFE ID, so that a retraction is
// recorded only for the identity that received it, except that every replica of a peer's node
// (spiffe://TD/node/*) is one holder, "spiffe://TD/node/*": they share one replicated cache, and
// whichever of them leads runs the node's subscription.
func (r Recipient) Holder() string {
	if node := "spiffe://" + r.TrustDomain + "/node/"; strings.HasPrefix(r.ID, node) {
		return node + "*"
	}
	return r.ID
}

var (
	envOnce sync.Once
	envErr  error
	baseEnv *cel.Env

	// celAdapter is the environment's type adapter, and bodyField record.body as the native
	// types give it: a map over Record.Body.
	celAdapter types.Adapter
	bodyField  *types.FieldType
)

// Env is the CEL environment of `when`: record, recipient, phase and now.
func Env() (*cel.Env, error) {
	envOnce.Do(func() {
		baseEnv, envErr = cel.NewEnv(
			ext.NativeTypes(ext.ParseStructTags(true), reflect.TypeOf(Record{}), reflect.TypeOf(Recipient{})),
			bodyViews,
			cel.Variable("record", cel.ObjectType("policy.Record")),
			cel.Variable("recipient", cel.ObjectType("policy.Recipient")),
			cel.Variable("phase", cel.StringType),
			cel.Variable("now", cel.TimestampType),
			ext.Strings(),
		)
	})
	return baseEnv, envErr
}

// unbounded are the functions of the strings extension that its cost model leaves out: each call
// of them costs 1 however much it writes, so that a condition within the budget could still copy
// a body field thousands of times per decision ("%s%s…".format([…]), strings.quote). No
// condition needs them: a policy decides, it formats nothing. Lint refuses them (unboundedCall);
// a stored policy that calls them, which an earlier release let through, still compiles, so that
// it does not stop every other policy (the node warns of it at start).
var unbounded = []string{"format", "strings.quote"}

// unboundedCall is lint's refusal of the first call of an unbounded function in a checked
// condition, saying where it is; nil when there is none.
func unboundedCall(a *celast.AST) error {
	calls := celast.MatchDescendants(celast.NavigateAST(a), func(e celast.NavigableExpr) bool {
		return e.Kind() == celast.CallKind && slices.Contains(unbounded, e.AsCall().FunctionName())
	})
	if len(calls) == 0 {
		return nil
	}
	e := calls[0]
	loc := a.SourceInfo().GetStartLocation(e.ID())
	return fmt.Errorf("ERROR: <input>:%d:%d: %s has no cost the budget can bound: a policy's condition cannot call it", loc.Line(), loc.Column()+1, e.AsCall().FunctionName())
}

// bodyViews makes record.body the record's view when it has one. It changes how a program
// reads the field and nothing else: the field's type, and so type checking, is the native
// types' own.
func bodyViews(env *cel.Env) (*cel.Env, error) {
	ft, ok := env.CELTypeProvider().FindStructFieldType("policy.Record", "body")
	if !ok || ft.IsSet == nil || ft.GetFrom == nil {
		return nil, fmt.Errorf("policy.Record has no field body")
	}
	celAdapter, bodyField = env.CELTypeAdapter(), ft
	view := *ft
	view.IsSet = func(obj any) bool {
		if r, ok := obj.(*Record); ok && r.view != nil {
			return !r.view.null // a null body decodes to a nil map
		}
		return ft.IsSet(obj)
	}
	view.GetFrom = func(obj any) (any, error) {
		if r, ok := obj.(*Record); ok && r.view != nil {
			return r.view, nil
		}
		return ft.GetFrom(obj)
	}
	return cel.CustomTypeProvider(&recordProvider{Provider: env.CELTypeProvider(), body: &view})(env)
}

// recordProvider is the native types' provider with record.body read through bodyViews.
type recordProvider struct {
	types.Provider
	body *types.FieldType
}

func (p *recordProvider) FindStructFieldType(structType, fieldName string) (*types.FieldType, bool) {
	if structType == "policy.Record" && fieldName == "body" {
		return p.body, true
	}
	return p.Provider.FindStructFieldType(structType, fieldName)
}

// bodyMap is a decoded body as the standard CEL map of record.body.
func bodyMap(body map[string]any) (traits.Mapper, error) {
	v, err := bodyField.GetFrom(&Record{Body: body})
	if err != nil {
		return nil, err
	}
	m, ok := v.(traits.Mapper)
	if !ok {
		return nil, fmt.Errorf("record.body is %T, not a map", v)
	}
	return m, nil
}

// compiledWhen is a checked `when` expression and what it can read.
type compiledWhen struct {
	prg  cel.Program
	body bodyUse // how it can reach record.body
	now  bool    // whether it can read `now`
	// keys are the body's top-level fields it names (record.body.x, record.body["x"]), in order.
	keys []string
	// unbounded is lint's refusal of a call without a bounded cost, or nil.
	unbounded error
	// crises are the crisis names it compares record.crisis with, for lint.
	crises []string
}

// compileWhen type-checks a `when` expression, checks that it yields a bool and that its
// worst-case cost fits the budget, and returns the program and what it can read.
func compileWhen(expr string) (compiledWhen, error) {
	env, err := Env()
	if err != nil {
		return compiledWhen{}, err
	}
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return compiledWhen{}, fmt.Errorf("%s", strings.TrimSpace(iss.Err().Error()))
	}
	if ast.OutputType() != cel.BoolType {
		return compiledWhen{}, fmt.Errorf("yields %s, not bool", ast.OutputType())
	}
	est, err := env.EstimateCost(ast, sizeEstimator{})
	if err != nil {
		return compiledWhen{}, fmt.Errorf("cost: %w", err)
	}
	if est.Max > CostBudget {
		return compiledWhen{}, fmt.Errorf("worst-case cost %d is over the budget of %d: simplify it, or bound the lists it walks", est.Max, CostBudget)
	}
	prg, err := env.Program(ast, cel.CostLimit(CostBudget), cel.EvalOptions(cel.OptOptimize))
	e := ast.NativeRep().Expr()
	return compiledWhen{prg: prg, body: bodyUseOf(e), now: readsNow(e), keys: bodyKeys(e), unbounded: unboundedCall(ast.NativeRep()),
		crises: crisesNamed(e)}, err
}

// bodyKeys lists, once each and in order, the top-level body fields an expression names:
// record.body.x, has(record.body.x) and record.body["x"] with a constant key.
func bodyKeys(e celast.Expr) []string {
	var keys []string
	isBody := func(e celast.Expr) bool {
		if e.Kind() != celast.SelectKind {
			return false
		}
		sel := e.AsSelect()
		return sel.FieldName() == "body" && !sel.IsTestOnly() && sel.Operand().Kind() == celast.IdentKind && sel.Operand().AsIdent() == "record"
	}
	add := func(k string) {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.SelectKind:
			if sel := e.AsSelect(); isBody(sel.Operand()) {
				add(sel.FieldName())
			}
		case celast.CallKind:
			call := e.AsCall()
			args := call.Args()
			if call.FunctionName() == operators.Index && len(args) == 2 && isBody(args[0]) && args[1].Kind() == celast.LiteralKind {
				if k, ok := args[1].AsLiteral().Value().(string); ok {
					add(k)
				}
			}
		}
	}))
	return keys
}

// crisesNamed lists, once each and in order, the constant crisis names an expression compares
// record.crisis with: record.crisis == "x", "x" != record.crisis, record.crisis in ["x", "y"].
func crisesNamed(e celast.Expr) []string {
	var names []string
	isCrisis := func(e celast.Expr) bool {
		if e.Kind() != celast.SelectKind {
			return false
		}
		sel := e.AsSelect()
		return sel.FieldName() == "crisis" && !sel.IsTestOnly() && sel.Operand().Kind() == celast.IdentKind && sel.Operand().AsIdent() == "record"
	}
	add := func(e celast.Expr) {
		if e.Kind() != celast.LiteralKind {
			return
		}
		if n, ok := e.AsLiteral().Value().(string); ok && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() != celast.CallKind {
			return
		}
		call := e.AsCall()
		args := call.Args()
		if len(args) != 2 {
			return
		}
		switch call.FunctionName() {
		case operators.Equals, operators.NotEquals:
			if isCrisis(args[0]) {
				add(args[1])
			} else if isCrisis(args[1]) {
				add(args[0])
			}
		case operators.In:
			if isCrisis(args[0]) && args[1].Kind() == celast.ListKind {
				for _, el := range args[1].AsList().Elements() {
					add(el)
				}
			}
		}
	}))
	return names
}

// readsNow reports whether an expression names `now`. It is conservative: a comprehension
// variable called now counts too.
func readsNow(e celast.Expr) bool {
	found := false
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.IdentKind && e.AsIdent() == "now" {
			found = true
		}
	}))
	return found
}

// sizeEstimator tells the cost estimator how large the inputs can be, so that comprehensions
// over them get a finite worst case.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(element checker.AstNode) *checker.SizeEstimate {
	// A body is at most 1 MiB; labels at most 64; strings of a record at most 1 KiB.
	switch {
	case strings.HasSuffix(pathOf(element), "labels"):
		return &checker.SizeEstimate{Min: 0, Max: 64}
	case strings.HasSuffix(pathOf(element), "groups"):
		return &checker.SizeEstimate{Min: 0, Max: 64}
	}
	return &checker.SizeEstimate{Min: 0, Max: 1024}
}

func (sizeEstimator) EstimateCallCost(function, overloadID string, target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	return nil
}

func pathOf(n checker.AstNode) string { return strings.Join(n.Path(), ".") }

// input is the activation of the conditions on one record, built on first need: a decision
// that evaluates no condition builds nothing, one whose conditions cannot reach the body never
// reads it, and one whose conditions only look keys up in it reads them from the raw bytes
// (bodyView). The body is decoded at most once per decision.
type input struct {
	r     *pb.Record
	to    Recipient
	phase string
	now   time.Time

	rec *Record // nil until a condition is evaluated
	// body is what rec holds of the body: nothing, the view (or, for an empty body, the empty
	// map), or the decoded body.
	body bodyUse
	// valid is true once the body is known to be JSON that encoding/json decodes into a map: the
	// view's check or the decode passed, so that redaction need not check it again.
	valid bool
}

// activation returns the variables of an evaluation that reaches the body as use says. An
// error means that the body cannot be read, and the record cannot be decided at all.
func (in *input) activation(use bodyUse) (interpreter.Activation, error) {
	if in.rec == nil {
		r := in.r
		in.rec = &Record{
			ID: r.Id, Origin: r.Origin, Kind: r.Kind, Crisis: r.Crisis, Region: r.Region,
			Classification: classificationWord(r.Classification), Labels: r.Labels, Body: map[string]any{}, Version: r.Version,
		}
		if in.rec.Labels == nil {
			in.rec.Labels = map[string]string{}
		}
		if r.UpdatedAt != nil {
			in.rec.UpdatedAt = r.UpdatedAt.AsTime()
		}
		if in.to.Groups == nil {
			in.to.Groups = []string{}
		}
	}
	if use <= in.body {
		return in, nil
	}
	switch {
	case len(in.r.Body) == 0:
		use = bodyWhole // the empty map
	case use == bodyFields && bodyFits(in.r.Body):
		in.rec.view, in.valid = newBodyView(in.r.Body), true
	default:
		// A body that does not fit is decoded here for the error encoding/json gives.
		body, err := in.decode()
		if err != nil {
			return nil, err
		}
		in.rec.Body, in.rec.view, in.valid, use = body, nil, true, bodyWhole
	}
	in.body = use
	return in, nil
}

// decode returns the decoded body, from the view if it has decoded it already.
func (in *input) decode() (map[string]any, error) {
	if v := in.rec.view; v != nil && v.full != nil && v.err == nil {
		if body, ok := v.full.Value().(map[string]any); ok {
			return body, nil
		}
	}
	// A fresh map: the one a condition without the body saw is never filled in.
	body := map[string]any{}
	if err := json.Unmarshal(in.r.Body, &body); err != nil {
		return nil, fmt.Errorf("record %s: body: %w", in.r.Id, err)
	}
	return body, nil
}

// failed is the error of a view that could not read the body, which bodyFits rules out.
func (in *input) failed() error {
	if in.rec == nil || in.rec.view == nil || in.rec.view.err == nil {
		return nil
	}
	return fmt.Errorf("record %s: body: %w", in.r.Id, in.rec.view.err)
}

// ResolveName implements interpreter.Activation.
func (in *input) ResolveName(name string) (any, bool) {
	switch name {
	case "record":
		return in.rec, true
	case "recipient":
		return &in.to, true
	case "phase":
		return in.phase, true
	case "now":
		return in.now, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (in *input) Parent() interpreter.Activation { return nil }

func classificationWord(c pb.Classification) string {
	for w, v := range classWords {
		if v == c {
			return w
		}
	}
	return ""
}
