// Package metrics measures explanations: how faithful an attribution is to
// the model (Infidelity) and how stable it is under small changes of the
// input (SensitivityMax), as Captum's captum.metrics.
package metrics

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// Perturbation draws k perturbations of each example of a chunk of the
// batch. inputs hold the chunk's examples (first is the index of the
// chunk's first example in the whole batch). It returns, per input, the
// perturbations and the perturbed inputs, k rows per example
// (example-major: row e*k+s is example e, sample s).
type Perturbation func(rng *rand.Rand, inputs []*tensor.Tensor, first, k int) (pert, perturbed []*tensor.Tensor, err error)

// GaussianNoise perturbs every element by N(0, stdev²) and returns
// perturbed = input - noise, Captum's documented infidelity convention.
func GaussianNoise(stdev float64) Perturbation {
	return func(rng *rand.Rand, inputs []*tensor.Tensor, _, k int) ([]*tensor.Tensor, []*tensor.Tensor, error) {
		pert := make([]*tensor.Tensor, len(inputs))
		out := make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			xs := repeatRows(x, k)
			p := tensor.New(xs.Shape...)
			for e := range p.F {
				p.F[e] = float32(rng.NormFloat64() * stdev)
				xs.F[e] -= p.F[e]
			}
			pert[i], out[i] = p, xs
		}
		return pert, out, nil
	}
}

// UniformBall perturbs every element uniformly in [-radius, radius] and
// returns perturbed = input + noise: Captum's default for sensitivity_max.
func UniformBall(radius float64) Perturbation {
	return func(rng *rand.Rand, inputs []*tensor.Tensor, _, k int) ([]*tensor.Tensor, []*tensor.Tensor, error) {
		pert := make([]*tensor.Tensor, len(inputs))
		out := make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			xs := repeatRows(x, k)
			p := tensor.New(xs.Shape...)
			for e := range p.F {
				p.F[e] = float32((2*rng.Float64() - 1) * radius)
				xs.F[e] += p.F[e]
			}
			pert[i], out[i] = p, xs
		}
		return pert, out, nil
	}
}

// FromPerturbed makes a Perturbation from a function that returns only the
// perturbed inputs (Captum's infidelity_perturb_func_decorator): the
// perturbation is input - perturbed.
func FromPerturbed(f func(rng *rand.Rand, inputs []*tensor.Tensor, first, k int) ([]*tensor.Tensor, error)) Perturbation {
	return func(rng *rand.Rand, inputs []*tensor.Tensor, first, k int) ([]*tensor.Tensor, []*tensor.Tensor, error) {
		perturbed, err := f(rng, inputs, first, k)
		if err != nil {
			return nil, nil, err
		}
		if len(perturbed) != len(inputs) {
			return nil, nil, fmt.Errorf("metrics: %d perturbed tensors for %d inputs", len(perturbed), len(inputs))
		}
		pert := make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			xs := repeatRows(x, k)
			p := perturbed[i].AsFloat32()
			if !tensor.SameShape(p.Shape, xs.Shape) {
				return nil, nil, fmt.Errorf("metrics: perturbed input %d has shape %v, want %v", i, p.Shape, xs.Shape)
			}
			d := tensor.New(xs.Shape...)
			for e := range d.F {
				d.F[e] = xs.F[e] - p.F[e]
			}
			pert[i] = d
		}
		return pert, perturbed, nil
	}
}

// repeatRows repeats each row of x k times (example-major).
func repeatRows(x *tensor.Tensor, k int) *tensor.Tensor {
	n := x.Shape[0]
	row := x.Len() / max(n, 1)
	out := tensor.New(append([]int{n * k}, x.Shape[1:]...)...)
	xf := x.AsFloat32()
	for r := 0; r < n*k; r++ {
		copy(out.F[r*row:(r+1)*row], xf.F[(r/k)*row:(r/k+1)*row])
	}
	return out
}

// Options are the common settings of the metrics.
type Options struct {
	// NPerturbSamples is the number of perturbations per example; 0 means 10.
	NPerturbSamples int
	// MaxExamplesPerBatch bounds the perturbed rows evaluated at once
	// (0: all at once).
	MaxExamplesPerBatch int
	// Seed seeds the perturbations.
	Seed uint64
	// Progress, if set, is called with the examples done.
	Progress attr.Progress
	// NormOrd is the norm of SensitivityMax: 0 or 2 the Frobenius norm
	// (Captum's "fro"), math.Inf(1) the largest absolute difference.
	NormOrd float64
}

// Infidelity is the expected squared difference between the attributions
// times a perturbation and the change of the target output that the
// perturbation causes (Yeh et al., "On the (In)fidelity and Sensitivity of
// Explanations", NeurIPS 2019): mean over samples of
// (sum(attr * I) - (f(x) - f(x - I)))². With normalize, the attributions
// are first scaled by the beta that minimizes it. Cost: NPerturbSamples
// forward rows per example, plus one.
func Infidelity(ctx context.Context, m attr.Model, perturb Perturbation, inputs, attributions []*tensor.Tensor, o attr.Options, normalize bool, mo Options) (*tensor.Tensor, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	if len(attributions) != len(inputs) {
		return nil, fmt.Errorf("metrics: %d attributions for %d inputs", len(attributions), len(inputs))
	}
	for i, a := range attributions {
		if a == nil || !tensor.SameShape(a.Shape, inputs[i].Shape) {
			return nil, fmt.Errorf("metrics: attribution %d does not have input %d's shape %v", i, i, inputs[i].Shape)
		}
	}
	k := mo.NPerturbSamples
	if k == 0 {
		k = 10
	}
	fx, err := targets(ctx, m, inputs, o, n, 1)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(mo.Seed, 0x696e6664))
	out := tensor.New(n)
	per := n
	if mo.MaxExamplesPerBatch > 0 {
		per = max(1, mo.MaxExamplesPerBatch/k)
	}
	for e0 := 0; e0 < n; e0 += per {
		e1 := min(n, e0+per)
		chunk := rowsOf(inputs, e0, e1)
		pert, perturbed, err := perturb(rng, chunk, e0, k)
		if err != nil {
			return nil, err
		}
		co := o
		co.Target = attr.TargetRows(o.Target, e0, e1, k)
		co.Additional = extraRows(o.Additional, n, e0, e1, k)
		fp, err := targets(ctx, m, perturbed, co, e1-e0, k)
		if err != nil {
			return nil, err
		}
		for e := e0; e < e1; e++ {
			a := make([]float64, k) // attributions · perturbation
			d := make([]float64, k) // output change
			for s := 0; s < k; s++ {
				r := (e-e0)*k + s
				var dot float32
				for i, at := range attributions {
					row := at.Len() / n
					pi := pert[i].AsFloat32().F[r*row : (r+1)*row]
					for j, v := range at.F[e*row : (e+1)*row] {
						dot += v * pi[j]
					}
				}
				a[s] = float64(dot)
				d[s] = float64(fx[e] - fp[r])
			}
			beta := 1.0
			if normalize {
				num, den := 0.0, 0.0
				for s := range a {
					num += a[s] * d[s]
					den += a[s] * a[s]
				}
				if den != 0 {
					beta = num / den
				}
			}
			sum := 0.0
			for s := range a {
				v := beta*a[s] - d[s]
				sum += v * v
			}
			out.F[e] = float32(sum / float64(k))
		}
		if mo.Progress != nil {
			mo.Progress(e1, n)
		}
	}
	return out, nil
}

// SensitivityMax is the largest relative change of an explanation under
// perturbations of its input (Yeh et al., NeurIPS 2019): for each example,
// max over samples of ||expl(x + I) - expl(x)|| / ||expl(x)|| (Frobenius
// norm over all inputs; an explanation of norm 0 divides by 1). perturb
// defaults to UniformBall(0.02). Cost: NPerturbSamples + 1 explanations per
// example.
func SensitivityMax(ctx context.Context, explain attr.Method, perturb Perturbation, inputs []*tensor.Tensor, o attr.Options, mo Options) (*tensor.Tensor, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	if perturb == nil {
		perturb = UniformBall(0.02)
	}
	k := mo.NPerturbSamples
	if k == 0 {
		k = 10
	}
	base, err := explain.Attribute(ctx, inputs, o)
	if err != nil {
		return nil, err
	}
	inf := math.IsInf(mo.NormOrd, 1)
	if mo.NormOrd != 0 && mo.NormOrd != 2 && !inf {
		return nil, fmt.Errorf("metrics: norm order %g is not supported (2 or +Inf)", mo.NormOrd)
	}
	norm := func(acc, v float64) float64 {
		if inf {
			return math.Max(acc, math.Abs(v))
		}
		return acc + v*v
	}
	finish := func(acc float64) float64 {
		if inf {
			return acc
		}
		return math.Sqrt(acc)
	}
	norms := make([]float64, n)
	for e := 0; e < n; e++ {
		s := 0.0
		for _, a := range base.Attributions {
			row := a.Len() / n
			for _, v := range a.F[e*row : (e+1)*row] {
				s = norm(s, float64(v))
			}
		}
		norms[e] = finish(s)
		if norms[e] == 0 {
			norms[e] = 1
		}
	}
	rng := rand.New(rand.NewPCG(mo.Seed, 0x73656e73))
	out := tensor.New(n)
	per := n
	if mo.MaxExamplesPerBatch > 0 {
		per = max(1, mo.MaxExamplesPerBatch/k)
	}
	for e0 := 0; e0 < n; e0 += per {
		e1 := min(n, e0+per)
		_, perturbed, err := perturb(rng, rowsOf(inputs, e0, e1), e0, k)
		if err != nil {
			return nil, err
		}
		co := o
		co.Target = attr.TargetRows(o.Target, e0, e1, k)
		co.Additional = extraRows(o.Additional, n, e0, e1, k)
		if o.Baselines != nil {
			co.Baselines = extraRows(o.Baselines, n, e0, e1, k)
		}
		co.Delta = false
		r, err := explain.Attribute(ctx, perturbed, co)
		if err != nil {
			return nil, err
		}
		for e := e0; e < e1; e++ {
			best := 0.0
			for s := 0; s < k; s++ {
				rr := (e-e0)*k + s
				sum := 0.0
				for i, a := range base.Attributions {
					row := a.Len() / n
					pa := r.Attributions[i].F[rr*row : (rr+1)*row]
					for j, v := range a.F[e*row : (e+1)*row] {
						sum = norm(sum, float64(pa[j]-v))
					}
				}
				best = math.Max(best, finish(sum)/norms[e])
			}
			out.F[e] = float32(best)
		}
		if mo.Progress != nil {
			mo.Progress(e1, n)
		}
	}
	return out, nil
}

func batchOf(inputs []*tensor.Tensor) (int, error) {
	if len(inputs) == 0 {
		return 0, fmt.Errorf("metrics: no inputs")
	}
	n := -1
	for i, x := range inputs {
		if x == nil || x.Rank() == 0 {
			return 0, fmt.Errorf("metrics: input %d needs a batch dimension", i)
		}
		if n >= 0 && x.Shape[0] != n {
			return 0, fmt.Errorf("metrics: input %d has batch %d, input 0 has %d", i, x.Shape[0], n)
		}
		n = x.Shape[0]
	}
	return n, nil
}

// rowsOf returns rows [lo, hi) of each tensor.
func rowsOf(ts []*tensor.Tensor, lo, hi int) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(ts))
	for i, t := range ts {
		row := t.Len() / t.Shape[0]
		c := tensor.Zeros(t.DType, append([]int{hi - lo}, t.Shape[1:]...))
		switch t.DType {
		case tensor.Float32:
			copy(c.F, t.F[lo*row:hi*row])
		case tensor.Int64:
			copy(c.I, t.I[lo*row:hi*row])
		case tensor.Bool:
			copy(c.B, t.B[lo*row:hi*row])
		}
		out[i] = c
	}
	return out
}

// extraRows restricts batch-aligned tensors to rows [lo, hi), each repeated
// k times; others pass unchanged.
func extraRows(ts []*tensor.Tensor, n, lo, hi, k int) []*tensor.Tensor {
	if ts == nil {
		return nil
	}
	out := make([]*tensor.Tensor, len(ts))
	for i, t := range ts {
		out[i] = t
		if t != nil && t.Rank() > 0 && t.Shape[0] == n {
			out[i] = repeatRowsAny(rowsOf([]*tensor.Tensor{t}, lo, hi)[0], k)
		}
	}
	return out
}

func repeatRowsAny(x *tensor.Tensor, k int) *tensor.Tensor {
	if x.DType == tensor.Float32 {
		return repeatRows(x, k)
	}
	n := x.Shape[0]
	row := x.Len() / max(n, 1)
	out := tensor.Zeros(x.DType, append([]int{n * k}, x.Shape[1:]...))
	for r := 0; r < n*k; r++ {
		switch x.DType {
		case tensor.Int64:
			copy(out.I[r*row:(r+1)*row], x.I[(r/k)*row:(r/k+1)*row])
		case tensor.Bool:
			copy(out.B[r*row:(r+1)*row], x.B[(r/k)*row:(r/k+1)*row])
		}
	}
	return out
}

// targets evaluates the model and returns the target value of each row.
func targets(ctx context.Context, m attr.Model, inputs []*tensor.Tensor, o attr.Options, n, k int) ([]float32, error) {
	all := append(append([]*tensor.Tensor(nil), inputs...), o.Additional...)
	out, err := m.Eval(ctx, all)
	if err != nil {
		return nil, err
	}
	return attr.Select(out, o.Target, n*k)
}
