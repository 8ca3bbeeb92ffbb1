package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/linear"
	"github.com/loupe-ml/loupe/tensor"
)

// linearRunners check the surrogate linear models (model-free cases).
func linearRunners() map[string]runner {
	return map[string]runner{
		"SkLearnLinearRegression": runLinear,
		"SkLearnLasso":            runLinear,
		"SkLearnRidge":            runLinear,
		"SGDLinearRegression":     runLinear,
		"SGDLasso":                runLinear,
		"SGDRidge":                runLinear,
	}
}

// fitter builds the linear model a case names.
func fitter(c *Case) (linear.Fitter, error) {
	alpha, err := c.Float("alpha", 0)
	if err != nil {
		return nil, err
	}
	icpt := true
	var ctor map[string]json.RawMessage
	if json.Unmarshal(c.Constructor, &ctor) == nil {
		if raw, ok := ctor["fit_intercept"]; ok {
			json.Unmarshal(raw, &icpt)
		}
	}
	if c.Has("fit_intercept") {
		if icpt, err = c.Bool("fit_intercept", true); err != nil {
			return nil, err
		}
	}
	switch c.Algorithm {
	case "SkLearnLinearRegression":
		return linear.LeastSquares{FitIntercept: icpt}, nil
	case "SkLearnLasso":
		return linear.Lasso{Alpha: alpha, FitIntercept: icpt}, nil
	case "SkLearnRidge":
		return linear.Ridge{Alpha: alpha, FitIntercept: icpt}, nil
	case "SGDLinearRegression":
		return linear.SGD{FitIntercept: icpt}, nil
	case "SGDLasso":
		return linear.SGD{Penalty: linear.L1, Alpha: alpha, FitIntercept: icpt}, nil
	case "SGDRidge":
		return linear.SGD{Penalty: linear.L2, Alpha: alpha, FitIntercept: icpt}, nil
	}
	return nil, fmt.Errorf("%w: %s", errNotImplemented, c.Algorithm)
}

func rows(t *tensor.Tensor) [][]float64 {
	n, d := t.Shape[0], t.Len()/t.Shape[0]
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, d)
		for j := range out[i] {
			out[i][j] = t.Float64At(i*d + j)
		}
	}
	return out
}

func floats(t *tensor.Tensor) []float64 {
	if t == nil {
		return nil
	}
	out := make([]float64, t.Len())
	for i := range out {
		out[i] = t.Float64At(i)
	}
	return out
}

func runLinear(ctx context.Context, c *Case, _ *engine.Model) error {
	in, err := c.Inputs()
	if err != nil {
		return err
	}
	if len(in) != 2 {
		return fmt.Errorf("want inputs X and y, got %d tensors", len(in))
	}
	var w []float64
	if c.Has("sample_weight") {
		t, err := c.Tensor(c.Params["sample_weight"])
		if err != nil {
			return err
		}
		w = floats(t)
	}
	f, err := fitter(c)
	if err != nil {
		return err
	}
	m, err := f.Fit(rows(in[0]), floats(in[1]), w)
	if err != nil {
		return err
	}
	gotW := tensor.New(1, len(m.Weights))
	for j, v := range m.Weights {
		gotW.F[j] = float32(v)
	}
	gotB := tensor.New(1)
	gotB.F[0] = float32(m.Bias)
	for _, raw := range c.Checks {
		var chk struct {
			Kind      string                     `json:"kind"`
			Fields    map[string]json.RawMessage `json:"fields"`
			Reference struct {
				Weights []float64 `json:"weights"`
				Bias    float64   `json:"bias"`
			} `json:"reference"`
			ATol float64 `json:"atol"`
		}
		if err := json.Unmarshal(raw, &chk); err != nil {
			return err
		}
		switch chk.Kind {
		case "exact":
			var exp struct {
				Weights json.RawMessage `json:"weights"`
				Bias    json.RawMessage `json:"bias"`
			}
			if err := json.Unmarshal(c.Expected, &exp); err != nil {
				return err
			}
			for name, pair := range map[string][2]any{"weights": {exp.Weights, gotW}, "bias": {exp.Bias, gotB}} {
				want, err := c.Tensor(pair[0].(json.RawMessage))
				if err != nil {
					return err
				}
				var tol Tol
				if err := json.Unmarshal(chk.Fields[name], &tol); err != nil {
					return fmt.Errorf("tolerance of %s: %w", name, err)
				}
				got := pair[1].(*tensor.Tensor)
				if got.Len() == want.Len() {
					got.Shape = want.Shape
				}
				if err := Compare(got, want, tol); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
		case "property":
			for j, v := range chk.Reference.Weights {
				if d := math.Abs(m.Weights[j] - v); d > chk.ATol {
					return fmt.Errorf("weight %d = %.8g, minimizer %.8g (atol %.3g)", j, m.Weights[j], v, chk.ATol)
				}
			}
			if d := math.Abs(m.Bias - chk.Reference.Bias); d > chk.ATol {
				return fmt.Errorf("bias = %.8g, minimizer %.8g (atol %.3g)", m.Bias, chk.Reference.Bias, chk.ATol)
			}
		default:
			return fmt.Errorf("%w: check kind %q", errNotImplemented, chk.Kind)
		}
	}
	return nil
}
