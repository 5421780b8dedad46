package policy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/checker"
	celast "cel.dev/cel-go/common/ast"
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
}

var (
	envOnce sync.Once
	envErr  error
	baseEnv *cel.Env
)

// Env is the CEL environment of `when`: record, recipient, phase and now.
func Env() (*cel.Env, error) {
	envOnce.Do(func() {
		baseEnv, envErr = cel.NewEnv(
			ext.NativeTypes(ext.ParseStructTags(true), reflect.TypeOf(Record{}), reflect.TypeOf(Recipient{})),
			cel.Variable("record", cel.ObjectType("policy.Record")),
			cel.Variable("recipient", cel.ObjectType("policy.Recipient")),
			cel.Variable("phase", cel.StringType),
			cel.Variable("now", cel.TimestampType),
			ext.Strings(),
		)
	})
	return baseEnv, envErr
}

// compileWhen type-checks a `when` expression, checks that it yields a bool and that its
// worst-case cost fits the budget, and returns the program and whether it can read the body.
func compileWhen(expr string) (cel.Program, bool, error) {
	env, err := Env()
	if err != nil {
		return nil, false, err
	}
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, false, fmt.Errorf("%s", strings.TrimSpace(iss.Err().Error()))
	}
	if ast.OutputType() != cel.BoolType {
		return nil, false, fmt.Errorf("yields %s, not bool", ast.OutputType())
	}
	est, err := env.EstimateCost(ast, sizeEstimator{})
	if err != nil {
		return nil, false, fmt.Errorf("cost: %w", err)
	}
	if est.Max > CostBudget {
		return nil, false, fmt.Errorf("worst-case cost %d is over the budget of %d: simplify it, or bound the lists it walks", est.Max, CostBudget)
	}
	prg, err := env.Program(ast, cel.CostLimit(CostBudget), cel.EvalOptions(cel.OptOptimize))
	return prg, readsBody(ast.NativeRep().Expr()), err
}

// readsBody reports whether an expression can reach record.body. It is conservative: the
// only way to the body is through `record`, so an expression cannot reach it when every use of
// `record` selects a field other than body, such as record.crisis or has(record.region). Any
// other use (record.body, the record as a whole, a name the checker folded) counts as a read.
func readsBody(e celast.Expr) bool {
	uses, safe := 0, 0
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.IdentKind:
			if name := e.AsIdent(); name == "record" || strings.HasPrefix(name, "record.") {
				uses++
			}
		case celast.SelectKind:
			sel := e.AsSelect()
			if op := sel.Operand(); op.Kind() == celast.IdentKind && op.AsIdent() == "record" && sel.FieldName() != "body" {
				safe++
			}
		}
	}))
	return uses > safe
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
// that evaluates no condition builds nothing, and one whose conditions cannot reach the body
// never decodes it. The body is decoded at most once per decision.
type input struct {
	r     *pb.Record
	to    Recipient
	phase string
	now   time.Time

	rec     *Record // nil until a condition is evaluated
	decoded bool    // rec.Body holds the decoded body
}

// activation returns the variables of an evaluation, with the decoded body if withBody.
func (in *input) activation(withBody bool) (interpreter.Activation, error) {
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
	if withBody && !in.decoded && len(in.r.Body) > 0 {
		// A fresh map: the one a condition without the body saw is never filled in.
		body := map[string]any{}
		if err := json.Unmarshal(in.r.Body, &body); err != nil {
			return nil, fmt.Errorf("record %s: body: %w", in.r.Id, err)
		}
		in.rec.Body = body
	}
	in.decoded = in.decoded || withBody
	return in, nil
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
