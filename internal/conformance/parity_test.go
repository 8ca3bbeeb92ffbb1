package conformance

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// errNotImplemented marks a case whose algorithm loupe does not have yet.
var errNotImplemented = errors.New("not implemented")

// A runner checks one case against its expected answer.
type runner func(ctx context.Context, c *Case, m *engine.Model) error

// casesDir is the folder of cases to run: $LOUPE_CASES, or the copy of the
// public oracle in testdata.
func casesDir() string {
	if d := os.Getenv("LOUPE_CASES"); d != "" {
		return d
	}
	return "testdata/oracle"
}

// forwardTol is the tolerance of the forward check: the recorded output is
// PyTorch's float32 result, and loupe sums in another order.
func forwardTol(exp *tensor.Tensor) Tol {
	scale := 0.0
	for i := 0; i < exp.Len(); i++ {
		scale = math.Max(scale, math.Abs(exp.Float64At(i)))
	}
	return Tol{ATol: 1e-5 * math.Max(scale, 1), RTol: 1e-4, RelL2: 1e-5}
}

// modelCache loads each ONNX file once.
type modelCache struct {
	mu     sync.Mutex
	models map[string]*engine.Model
	errs   map[string]error
}

func (mc *modelCache) get(path string) (*engine.Model, error) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if m, ok := mc.models[path]; ok {
		return m, nil
	}
	if err, ok := mc.errs[path]; ok {
		return nil, err
	}
	m, err := engine.Load(path)
	if err != nil {
		mc.errs[path] = err
		return nil, err
	}
	mc.models[path] = m
	return m, nil
}

func checkForward(ctx context.Context, c *Case, m *engine.Model) error {
	feeds, err := c.Feeds()
	if err != nil {
		return err
	}
	exp, err := c.ForwardOutput()
	if err != nil {
		return fmt.Errorf("forward_output: %w", err)
	}
	p, err := m.Forward(ctx, feeds, &engine.Options{Outputs: []string{c.Model.ONNXOutput}})
	if err != nil {
		return err
	}
	got, err := p.Value(c.Model.ONNXOutput)
	if err != nil {
		return err
	}
	return Compare(got, exp, forwardTol(exp))
}

func TestCaptumParity(t *testing.T) {
	dir := casesDir()
	cases, err := LoadCases(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mc := &modelCache{models: map[string]*engine.Model{}, errs: map[string]error{}}
	run := runners()
	var fails []string
	counts := map[string]int{}
	for _, c := range cases {
		var m *engine.Model
		if c.Model != nil {
			var err error
			m, err = mc.get(c.ModelPath())
			if err == nil {
				err = checkForward(ctx, c, m)
			}
			if err != nil {
				fmt.Printf("forward %s: fail: %v\n", c.ID, oneLine(err))
				fails = append(fails, "forward "+c.ID)
				counts["forward fail"]++
			} else {
				fmt.Printf("forward %s: pass\n", c.ID)
				counts["forward pass"]++
			}
		}
		r, ok := run[c.Algorithm]
		var cerr error
		if !ok {
			cerr = errNotImplemented
		} else if c.Model != nil && m == nil {
			cerr = fmt.Errorf("model did not load")
		} else {
			cerr = r(ctx, c, m)
		}
		switch {
		case errors.Is(cerr, errNotImplemented):
			fmt.Printf("case %s: skip: not implemented\n", c.ID)
			counts["case skip"]++
		case cerr != nil:
			fmt.Printf("case %s: fail: %v\n", c.ID, oneLine(cerr))
			fails = append(fails, "case "+c.ID)
			counts["case fail"]++
		default:
			fmt.Printf("case %s: pass\n", c.ID)
			counts["case pass"]++
		}
	}
	t.Logf("%s: %d cases; %v", dir, len(cases), counts)
	if len(fails) > 0 {
		t.Errorf("%d failures: %s", len(fails), strings.Join(fails, ", "))
	}
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
