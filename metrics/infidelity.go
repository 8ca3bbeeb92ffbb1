package metrics

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// Infidelity is the expected squared difference between the attributions
// times a perturbation and the change of the target output that the
// perturbation causes (Yeh et al., "On the (In)fidelity and Sensitivity of
// Explanations", NeurIPS 2019): mean over samples of
// (sum(attr * I) - (f(x) - f(x - I)))². With normalize, the attributions
// are first scaled by the beta that minimizes it. Cost: NPerturbSamples+1
// forward rows per example (the batch once, then its perturbations in
// chunks of at most MaxExamplesPerBatch rows that fit o.MemoryBudget; what
// would not fit one example's perturbations at a time is refused before
// any model call, wrapping attr.ErrMemoryBudget).
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
	k := mo.samples()
	// A perturbed row holds its perturbation, the perturbed input, the
	// additional inputs' row and the model's forward row.
	limit, err := budgetOf("Infidelity", o)
	if err != nil {
		return nil, err
	}
	mrow, err := attr.EstimateRowBytes(ctx, m, inputs, o.Additional, false)
	if err != nil {
		return nil, err
	}
	per, err := mo.examplesPerChunk("Infidelity", limit, n, k, 0, 2*rowBytes(inputs, n)+rowBytes(o.Additional, n)+mrow)
	if err != nil {
		return nil, err
	}
	fx, err := targets(ctx, m, inputs, o, n, 1)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(mo.Seed, 0x696e6664))
	out := tensor.New(n)
	err = mo.perturbChunks(rng, perturb, inputs, n, k, per, func(e0, e1 int, pert, perturbed []*tensor.Tensor) error {
		fp, err := targets(ctx, m, perturbed, rowsOptions(o, n, e0, e1, k), e1-e0, k)
		if err != nil {
			return err
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
			out.F[e] = float32(infidelity(a, d, normalize))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// infidelity is the mean of (beta*a - d)² over the samples of one example,
// a the attributions times the perturbations and d the output changes; beta
// is 1, or with normalize the least-squares scale of a onto d.
func infidelity(a, d []float64, normalize bool) float64 {
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
	return sum / float64(len(a))
}
