package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/metrics"
	"github.com/loupe-ml/loupe/tensor"
)

// tablePerturbation replays a recorded perturbation table ([batch, k, ...]
// per input); sign is -1 for infidelity (perturbed = input - perturbation)
// and +1 for sensitivity (perturbed = input + perturbation).
func tablePerturbation(c *Case, sign float32) (metrics.Perturbation, error) {
	var pf struct {
		Kind          string            `json:"kind"`
		Perturbations []json.RawMessage `json:"perturbations"`
	}
	if err := json.Unmarshal(c.Params["perturb_func"], &pf); err != nil {
		return nil, fmt.Errorf("perturb_func: %w", err)
	}
	if pf.Kind != "table" {
		return nil, fmt.Errorf("%w: perturb_func kind %q", errNotImplemented, pf.Kind)
	}
	table := make([]*tensor.Tensor, len(pf.Perturbations))
	for i, r := range pf.Perturbations {
		t, err := c.Tensor(r)
		if err != nil {
			return nil, err
		}
		table[i] = t
	}
	return func(_ *rand.Rand, inputs []*tensor.Tensor, first, k int) ([]*tensor.Tensor, []*tensor.Tensor, error) {
		pert := make([]*tensor.Tensor, len(inputs))
		out := make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			t := table[i]
			if t.Shape[1] != k {
				return nil, nil, fmt.Errorf("table has %d samples per example, want %d", t.Shape[1], k)
			}
			n := x.Shape[0]
			row := x.Len() / n
			p := tensor.New(append([]int{n * k}, x.Shape[1:]...)...)
			xs := tensor.New(p.Shape...)
			copy(p.F, t.F[first*k*row:(first+n)*k*row])
			for r := 0; r < n*k; r++ {
				for j := 0; j < row; j++ {
					xs.F[r*row+j] = x.F[(r/k)*row+j] + sign*p.F[r*row+j]
				}
			}
			pert[i], out[i] = p, xs
		}
		return pert, out, nil
	}, nil
}

func metricCheck(c *Case, got *tensor.Tensor) error {
	var exp struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(c.Expected, &exp); err != nil {
		return err
	}
	want, err := c.Tensor(exp.Value)
	if err != nil {
		return err
	}
	tols, err := c.ExactTols("value")
	if err != nil {
		return err
	}
	return Compare(got, want, tols[0])
}

func runInfidelity(ctx context.Context, c *Case, m *engine.Model) error {
	nt, in, o, err := setup(c, m)
	if err != nil {
		return err
	}
	var mi struct {
		Attributions []json.RawMessage `json:"attributions"`
	}
	if err := json.Unmarshal(c.MetricInputs, &mi); err != nil {
		return fmt.Errorf("metric_inputs: %w", err)
	}
	attrs := make([]*tensor.Tensor, len(mi.Attributions))
	for i, r := range mi.Attributions {
		if attrs[i], err = c.Tensor(r); err != nil {
			return err
		}
	}
	pf, err := tablePerturbation(c, -1)
	if err != nil {
		return err
	}
	mo := metrics.Options{}
	if mo.NPerturbSamples, err = c.Int("n_perturb_samples", 10); err != nil {
		return err
	}
	if mo.MaxExamplesPerBatch, err = c.Int("max_examples_per_batch", 0); err != nil {
		return err
	}
	norm, err := c.Bool("normalize", false)
	if err != nil {
		return err
	}
	v, err := metrics.Infidelity(ctx, nt, pf, in, attrs, o, norm, mo)
	if err != nil {
		return err
	}
	return metricCheck(c, v)
}

func runSensitivity(ctx context.Context, c *Case, m *engine.Model) error {
	var ef struct {
		Algorithm string `json:"algorithm"`
	}
	if err := json.Unmarshal(c.Params["explanation_func"], &ef); err != nil {
		return fmt.Errorf("explanation_func: %w", err)
	}
	b, ok := builders()[ef.Algorithm]
	if !ok {
		return fmt.Errorf("%w: explanation %s", errNotImplemented, ef.Algorithm)
	}
	inner := *c
	inner.Algorithm = ef.Algorithm
	inner.Constructor = nil
	meth, in, o, err := b(&inner, m)
	if err != nil {
		return err
	}
	pf, err := tablePerturbation(c, 1)
	if err != nil {
		return err
	}
	mo := metrics.Options{}
	if mo.NPerturbSamples, err = c.Int("n_perturb_samples", 10); err != nil {
		return err
	}
	if mo.MaxExamplesPerBatch, err = c.Int("max_examples_per_batch", 0); err != nil {
		return err
	}
	if c.Has("norm_ord") {
		var ord any
		json.Unmarshal(c.Params["norm_ord"], &ord)
		switch v := ord.(type) {
		case string:
			switch v {
			case "inf":
				mo.NormOrd = math.Inf(1)
			case "fro":
			default:
				return fmt.Errorf("%w: norm_ord %q", errNotImplemented, v)
			}
		case float64:
			mo.NormOrd = v
		}
	}
	o.Delta = false
	v, err := metrics.SensitivityMax(ctx, meth, pf, in, o, mo)
	if err != nil {
		return err
	}
	return metricCheck(c, v)
}
