package metrics

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// SensitivityMax is the largest relative change of an explanation under
// perturbations of its input (Yeh et al., "On the (In)fidelity and
// Sensitivity of Explanations", NeurIPS 2019): for each example, max over
// samples of ||expl(x + I) - expl(x)|| / ||expl(x)|| (the norm of
// Options.NormOrd over all inputs; an explanation of norm 0 divides by 1).
// perturb defaults to UniformBall(0.02). Cost: NPerturbSamples+1
// explanations per example (the batch once, then its perturbations in
// chunks of at most MaxExamplesPerBatch rows within o.MemoryBudget: the
// metric's rows take at most half of it, the chunk's explanation gets the
// rest; what would not fit one example's perturbations at a time is
// refused before any explanation, wrapping attr.ErrMemoryBudget).
func SensitivityMax(ctx context.Context, explain attr.Method, perturb Perturbation, inputs []*tensor.Tensor, o attr.Options, mo Options) (*tensor.Tensor, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	if perturb == nil {
		perturb = UniformBall(0.02)
	}
	k := mo.samples()
	// The metric keeps the explanation of the batch and, per perturbed
	// row, the perturbation, the perturbed input and its explanation and
	// the rows of the additional inputs and baselines; it takes at most
	// half the budget for them and leaves the rest to the explanations of
	// the chunks (their own Options.MemoryBudget).
	limit, err := budgetOf("SensitivityMax", o)
	if err != nil {
		return nil, err
	}
	held := tensorBytes(inputs)
	rowCost := 3*rowBytes(inputs, n) + rowBytes(o.Additional, n) + rowBytes(o.Baselines, n)
	per, err := mo.examplesPerChunk("SensitivityMax", limit/2, n, k, held, rowCost)
	if err != nil {
		return nil, err
	}
	base, err := explain.Attribute(ctx, inputs, o)
	if err != nil {
		return nil, err
	}
	nm, err := normOf(mo.NormOrd)
	if err != nil {
		return nil, err
	}
	norms := make([]float64, n)
	for e := 0; e < n; e++ {
		s := 0.0
		for _, a := range base.Attributions {
			row := a.Len() / n
			for _, v := range a.F[e*row : (e+1)*row] {
				s = nm.add(s, float64(v))
			}
		}
		norms[e] = nm.finish(s)
		if norms[e] == 0 {
			norms[e] = 1
		}
	}
	rng := rand.New(rand.NewPCG(mo.Seed, 0x73656e73))
	out := tensor.New(n)
	err = mo.perturbChunks(rng, perturb, inputs, n, k, per, func(e0, e1 int, _, perturbed []*tensor.Tensor) error {
		co := rowsOptions(o, n, e0, e1, k)
		if o.Baselines != nil {
			co.Baselines = extraRows(o.Baselines, n, e0, e1, k)
		}
		co.Delta = false
		co.MemoryBudget = limit - held - int64(e1-e0)*int64(k)*rowCost
		r, err := explain.Attribute(ctx, perturbed, co)
		if err != nil {
			return err
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
						sum = nm.add(sum, float64(pa[j]-v))
					}
				}
				best = math.Max(best, nm.finish(sum)/norms[e])
			}
			out.F[e] = float32(best)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// norm accumulates a vector norm element by element: the Frobenius norm
// (sum of squares, then the root) or, with inf, the largest absolute value.
type norm struct{ inf bool }

// normOf returns the norm of Options.NormOrd: 0 or 2 Frobenius, +Inf the
// largest absolute value.
func normOf(ord float64) (norm, error) {
	inf := math.IsInf(ord, 1)
	if ord != 0 && ord != 2 && !inf {
		return norm{}, fmt.Errorf("metrics: norm order %g is not supported (2 or +Inf)", ord)
	}
	return norm{inf}, nil
}

// add adds v to the accumulator acc.
func (nm norm) add(acc, v float64) float64 {
	if nm.inf {
		return math.Max(acc, math.Abs(v))
	}
	return acc + v*v
}

// finish turns the accumulator into the norm.
func (nm norm) finish(acc float64) float64 {
	if nm.inf {
		return acc
	}
	return math.Sqrt(acc)
}
