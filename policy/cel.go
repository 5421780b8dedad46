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
	"cel.dev/cel-go/ext"

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
// worst-case cost fits the budget, and returns the program.
func compileWhen(expr string) (cel.Program, error) {
	env, err := Env()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("%s", strings.TrimSpace(iss.Err().Error()))
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("yields %s, not bool", ast.OutputType())
	}
	est, err := env.EstimateCost(ast, sizeEstimator{})
	if err != nil {
		return nil, fmt.Errorf("cost: %w", err)
	}
	if est.Max > CostBudget {
		return nil, fmt.Errorf("worst-case cost %d is over the budget of %d: simplify it, or bound the lists it walks", est.Max, CostBudget)
	}
	return env.Program(ast, cel.CostLimit(CostBudget), cel.EvalOptions(cel.OptOptimize))
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

// activation builds the variables of one evaluation.
func activation(r *pb.Record, to Recipient, phase string, now time.Time) (map[string]any, error) {
	body := map[string]any{}
	if len(r.Body) > 0 {
		if err := json.Unmarshal(r.Body, &body); err != nil {
			return nil, fmt.Errorf("record %s: body: %w", r.Id, err)
		}
	}
	rec := Record{
		ID: r.Id, Origin: r.Origin, Kind: r.Kind, Crisis: r.Crisis, Region: r.Region,
		Classification: classificationWord(r.Classification), Labels: r.Labels, Body: body, Version: r.Version,
	}
	if rec.Labels == nil {
		rec.Labels = map[string]string{}
	}
	if r.UpdatedAt != nil {
		rec.UpdatedAt = r.UpdatedAt.AsTime()
	}
	if to.Groups == nil {
		to.Groups = []string{}
	}
	return map[string]any{"record": rec, "recipient": to, "phase": phase, "now": now}, nil
}

func classificationWord(c pb.Classification) string {
	for w, v := range classWords {
		if v == c {
			return w
		}
	}
	return ""
}
