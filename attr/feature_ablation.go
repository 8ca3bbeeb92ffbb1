package attr

import (
	"context"

	"github.com/loupe-ml/loupe/tensor"
)

// FeatureAblation replaces each feature (an element, or a group of elements
// sharing an id in FeatureMask) by its baseline and attributes to it the
// change of the target output: f(x) - f(x with the feature ablated); every
// element of a group gets the group's value. It is the plain perturbation
// baseline, with no paper of its own (Captum's FeatureAblation). Cost: 1 + F
// forward rows per example for F features, in batches of
// PerturbationsPerEval. On a Net (or a layer of one), features whose
// elements lie in a small box (at most a quarter of an example) are
// evaluated by exact incremental inference, as Occlusion's windows.
type FeatureAblation struct {
	Model Model
	// FeatureMask groups elements into features, one int64 tensor per
	// input that broadcasts to it (nil: every element is a feature).
	FeatureMask []*tensor.Tensor
	// PerturbationsPerEval is how many ablated copies go into one model
	// call; 0 chooses from the input size (Captum's default is 1; the
	// results do not depend on it).
	PerturbationsPerEval int
}

// Attribute computes ablation attributions of inputs for o.Target, with
// o.Baselines (nil: zeros) as the replacement values.
func (fa *FeatureAblation) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	if err := checkCount("FeatureAblation", "PerturbationsPerEval", fa.PerturbationsPerEval, MaxBatch); err != nil {
		return nil, err
	}
	n, base, err := batchAndBaselines(inputs, o.Baselines)
	if err != nil {
		return nil, err
	}
	masks, ids, err := featureMasks(inputs, fa.FeatureMask)
	if err != nil {
		return nil, err
	}
	var perts []perturbation
	for i := range inputs {
		perts = append(perts, groupPerturbations(i, masks[i], ids[i])...)
	}
	// Kept for the whole call: the attributions, the masks and the
	// features' indices.
	bs, err := batchSize(ctx, "FeatureAblation", fa.Model, inputs, o, fa.PerturbationsPerEval, false,
		2*tensorBytes(inputs)+perturbationBytes(perts),
		"use a coarser feature_mask, or raise Options.MemoryBudget")
	if err != nil {
		return nil, err
	}
	f0, err := evalRows(ctx, fa.Model, inputs, o, n, 1)
	if err != nil {
		return nil, err
	}
	scalar := len(f0) == 1 && n > 1
	if scalar && fa.PerturbationsPerEval == 0 {
		// One number per batch: one copy per call.
		bs = batching{full: 1, incremental: 1}
	}
	attrs := zerosLike(inputs, scalar)
	total := len(perts)
	err = evalPerturbed(ctx, fa.Model, inputs, base, o, perts, bs, scalar, progress(o.Progress, total), func(k int, v []float32) {
		p := perts[k]
		a := attrs[p.in]
		row := inputs[p.in].Len() / n
		for _, e := range p.idx {
			switch {
			case len(v) > 1:
				a.F[e] = f0[e/row] - v[e/row]
			case e < a.Len():
				a.F[e] = f0[0] - v[0]
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return &Result{Attributions: attrs}, nil
}
