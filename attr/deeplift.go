package attr

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// DeepLift attributes by propagating multipliers (ratios of output to input
// differences from a baseline) backward with the rescale rule (Shrikumar,
// Greenside and Kundaje, "Learning Important Features Through Propagating
// Activation Differences", ICML 2017), as Captum implements it: the rescale
// rule on Relu, LeakyRelu, Elu, Sigmoid, Tanh and Softplus nodes, Captum's
// rules on Softmax and MaxPool, the plain gradient elsewhere. Attributions
// sum to F(x) - F(b) (summation to delta), which the convergence delta
// checks. Cost: one forward and backward pass on 2 rows per example (inputs
// and baselines in one batch).
type DeepLift struct {
	Net *Net
	// Local returns local attributions, not multiplied by (inputs - baselines):
	// Captum's multiply_by_inputs=False.
	Local bool
	// Strict applies each rule to the multipliers that the rules after it
	// produced. Captum's module hooks do not when one rule's node feeds
	// another's (a ReLU into a MaxPool): the first sees the second's plain
	// gradient, and the attributions then miss F(x) - F(b) by a little.
	// Strict attributions sum to F(x) - F(b) exactly; the default matches
	// Captum's numbers.
	Strict bool
}

// Attribute computes DeepLift attributions of inputs from a.Baselines (nil:
// zeros; one per input: a scalar, one row, or the input's shape).
func (d *DeepLift) Attribute(ctx context.Context, inputs []*tensor.Tensor, a Options) (*Result, error) {
	if _, err := batchOf(inputs); err != nil {
		return nil, err
	}
	base, err := baselinesFor(a.Baselines, inputs)
	if err != nil {
		return nil, err
	}
	return d.attribute(ctx, inputs, base, a)
}

// attribute runs DeepLift on inputs and their (full-shape) baselines.
func (d *DeepLift) attribute(ctx context.Context, inputs, base []*tensor.Tensor, a Options) (*Result, error) {
	n := inputs[0].Shape[0]
	both := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		if x.DType != tensor.Float32 {
			return nil, fmt.Errorf("attr: input %d is %s; DeepLift needs float inputs", i, x.DType)
		}
		both[i] = concatRows(x, base[i])
	}
	feeds, err := d.Net.feeds(both, a.Additional, n, 2, false)
	if err != nil {
		return nil, err
	}
	// As Captum, the target is selected in both halves: the baseline rows
	// get a gradient seed too, which the Softmax and MaxPool rules mix in.
	out, grads, err := d.Net.gradOf(ctx, feeds, a.Target.expand(n, 2, false), deepLiftRules(d.Strict))
	if err != nil {
		return nil, err
	}
	attrs := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		g := tensor.New(x.Shape...)
		copy(g.F, grads[i].F[:x.Len()])
		if !d.Local {
			for e := range g.F {
				g.F[e] *= x.F[e] - base[i].F[e]
			}
		}
		attrs[i] = g
	}
	if a.Progress != nil {
		a.Progress(n, n)
	}
	res := &Result{Attributions: attrs}
	if a.Delta {
		// F(x) and F(b) are the two halves of the pass just made.
		vals, err := a.Target.expand(n, 2, false).pick(out)
		if err != nil {
			return nil, err
		}
		res.Delta = tensor.New(n)
		for r := 0; r < n; r++ {
			res.Delta.F[r] = rowSum(attrs, r, n) - (vals[r] - vals[r+n])
		}
	}
	return res, nil
}

// DeepLiftShap approximates SHAP values with DeepLift: it runs DeepLift
// from every baseline of a distribution and averages the attributions
// (Lundberg and Lee, "A Unified Approach to Interpreting Model
// Predictions", NeurIPS 2017). Cost: one forward and backward pass on
// 2*B rows per example for B baselines.
type DeepLiftShap struct {
	Net *Net
	// Local returns local attributions, not multiplied by (inputs - baselines):
	// Captum's multiply_by_inputs=False.
	Local bool
	// Strict is as DeepLift's.
	Strict bool
}

// Attribute computes DeepLiftShap attributions. a.Baselines holds one tensor
// per input whose rows are the distribution's samples (at least 2 rows, as
// Captum requires). The delta, when asked, has one entry per example and
// baseline (example-major).
func (d *DeepLiftShap) Attribute(ctx context.Context, inputs []*tensor.Tensor, a Options) (*Result, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	baselines := a.Baselines
	if len(baselines) != len(inputs) {
		return nil, fmt.Errorf("attr: DeepLiftShap needs one baseline distribution per input, got %d for %d inputs", len(baselines), len(inputs))
	}
	nb, err := batchOf(baselines)
	if err != nil {
		return nil, fmt.Errorf("attr: baselines: %w", err)
	}
	if nb < 2 {
		return nil, fmt.Errorf("attr: DeepLiftShap needs at least 2 baselines per input, got %d", nb)
	}
	expIn := make([]*tensor.Tensor, len(inputs))
	expBase := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		if !tensor.SameShape(baselines[i].Shape[1:], x.Shape[1:]) {
			return nil, fmt.Errorf("attr: baselines %d have shape %v, input %d has %v", i, baselines[i].Shape, i, x.Shape)
		}
		expIn[i] = repeat(x, nb, true)
		expBase[i] = repeat(baselines[i].AsFloat32(), n, false)
	}
	extra := make([]*tensor.Tensor, len(a.Additional))
	for i, x := range a.Additional {
		extra[i] = x
		if x != nil && x.Rank() > 0 && x.Shape[0] == n {
			extra[i] = repeat(x, nb, true)
		}
	}
	inner := a
	inner.Target = a.Target.expand(n, nb, true)
	inner.Additional = extra
	inner.Progress = nil
	dl := &DeepLift{Net: d.Net, Local: d.Local, Strict: d.Strict}
	r, err := dl.attribute(ctx, expIn, expBase, inner)
	if err != nil {
		return nil, err
	}
	for i, at := range r.Attributions {
		r.Attributions[i] = meanGroups(at, n, nb)
	}
	if a.Progress != nil {
		a.Progress(n, n)
	}
	return r, nil
}
