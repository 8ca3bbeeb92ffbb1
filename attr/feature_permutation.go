package attr

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/loupe-ml/loupe/tensor"
)

// FeaturePermutation attributes to each feature the drop of the target
// output when the feature's values are shuffled across the examples of the
// batch (Breiman, "Random Forests", 2001; Fisher, Rudin and Dominici,
// 2019): f(x) - f(x with the feature permuted). The batch needs at least
// two examples; identity permutations are redrawn. Cost: 1 + F forward
// rows per example; on a Net, features in a small box cost less (exact
// incremental inference, as FeatureAblation).
type FeaturePermutation struct {
	Model Model
	// FeatureMask and PerturbationsPerEval are as FeatureAblation's.
	FeatureMask          []*tensor.Tensor
	PerturbationsPerEval int
	// Seed seeds the permutations.
	Seed uint64
	// Permutations, when set, replaces the random draws: one batch
	// permutation per feature, inputs in order, ids ascending.
	Permutations [][]int
}

// Attribute computes permutation importances for o.Target.
func (fp *FeaturePermutation) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	if err := checkCount("FeaturePermutation", "PerturbationsPerEval", fp.PerturbationsPerEval, MaxBatch); err != nil {
		return nil, err
	}
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	if n < 2 {
		return nil, fmt.Errorf("attr: FeaturePermutation needs a batch of at least 2 examples, got %d", n)
	}
	masks, ids, err := featureMasks(inputs, fp.FeatureMask)
	if err != nil {
		return nil, err
	}
	for i, m := range masks {
		if fp.FeatureMask != nil && fp.FeatureMask[i] != nil && fp.FeatureMask[i].Rank() == inputs[i].Rank() && fp.FeatureMask[i].Shape[0] != 1 {
			return nil, fmt.Errorf("attr: FeaturePermutation needs feature mask %d to have a first dimension of 1, got shape %v", i, m.Shape)
		}
	}
	// Kept for the whole call: the attributions and the masks.
	bs, err := batchSize(ctx, "FeaturePermutation", fp.Model, inputs, o, fp.PerturbationsPerEval, false, 2*tensorBytes(inputs),
		"explain fewer examples at once, or raise Options.MemoryBudget")
	if err != nil {
		return nil, err
	}
	f0, err := evalRows(ctx, fp.Model, inputs, o, n, 1)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(fp.Seed, 0x7065726d))
	type job struct {
		in   int
		idx  []int // row-relative indices of the feature
		perm []int
	}
	var jobs []job
	for i := range inputs {
		row := inputs[i].Len() / n
		for _, p := range groupPerturbations(i, masks[i], ids[i]) {
			var rel []int
			for _, e := range p.idx {
				if e < row {
					rel = append(rel, e)
				}
			}
			var perm []int
			if fp.Permutations != nil {
				if len(jobs) >= len(fp.Permutations) {
					return nil, fmt.Errorf("attr: %d recorded permutations for more features", len(fp.Permutations))
				}
				perm = fp.Permutations[len(jobs)]
				if len(perm) != n {
					return nil, fmt.Errorf("attr: recorded permutation %d has %d entries for a batch of %d", len(jobs), len(perm), n)
				}
			} else {
				for {
					perm = rng.Perm(n)
					if !isIdentity(perm) {
						break
					}
				}
			}
			jobs = append(jobs, job{in: i, idx: rel, perm: perm})
		}
	}
	attrs := zerosLike(inputs, false)
	inc, err := newIncremental(ctx, fp.Model, inputs, o, n)
	if err != nil {
		return nil, err
	}
	per := bs.full
	if inc != nil {
		per = bs.incremental
	}
	for j0, j1 := range chunks(len(jobs), per) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c := j1 - j0
		// The jobs as perturbations of every row, for incremental
		// inference when their boxes are small.
		perts := make([]perturbation, c)
		for j := j0; j < j1; j++ {
			jb := jobs[j]
			row := inputs[jb.in].Len() / n
			perts[j-j0].in = jb.in
			for r := 0; r < n; r++ {
				for _, e := range jb.idx {
					perts[j-j0].idx = append(perts[j-j0].idx, r*row+e)
				}
			}
		}
		var v []float32
		if patches := inc.patches(inputs, perts, func(k, e int) float32 {
			x := inputs[perts[k].in]
			row := x.Len() / n
			return x.AsFloat32().F[jobs[j0+k].perm[e/row]*row+e%row]
		}); patches != nil {
			v, err = inc.eval(ctx, patches, o, n)
			if err != nil {
				return nil, err
			}
		} else {
			// Full passes, in batches of the size for full passes.
			for i0, i1 := range chunks(c, bs.full) {
				batch := repeatAll(inputs, i1-i0)
				for j := j0 + i0; j < j0+i1; j++ {
					jb := jobs[j]
					x := inputs[jb.in]
					row := x.Len() / n
					off := (j - j0 - i0) * x.Len()
					for r := 0; r < n; r++ {
						for _, e := range jb.idx {
							copyElem(batch[jb.in], off+r*row+e, x, jb.perm[r]*row+e)
						}
					}
				}
				vi, err := evalRows(ctx, fp.Model, batch, o, n, i1-i0)
				if err != nil {
					return nil, err
				}
				v = append(v, vi...)
			}
		}
		for j := j0; j < j1; j++ {
			jb := jobs[j]
			row := inputs[jb.in].Len() / n
			for r := 0; r < n; r++ {
				d := f0[r] - v[(j-j0)*n+r]
				for _, e := range jb.idx {
					attrs[jb.in].F[r*row+e] = d
				}
			}
		}
		if o.Progress != nil {
			o.Progress(j1, len(jobs))
		}
	}
	return &Result{Attributions: attrs}, nil
}

func isIdentity(p []int) bool {
	for i, v := range p {
		if i != v {
			return false
		}
	}
	return true
}
