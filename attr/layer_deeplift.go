package attr

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// LayerDeepLift is DeepLift's multipliers at a layer times the layer's
// difference from its value on the baselines. Cost: one forward and
// backward pass on 2 rows per example.
type LayerDeepLift struct {
	Net                   *Net
	Layer                 string
	AttributeToLayerInput bool
	// Local returns local attributions, not multiplied by the layer's
	// (inputs - baselines): Captum's multiply_by_inputs=False.
	Local  bool
	Strict bool
}

// Attribute computes layer DeepLift attributions.
func (l *LayerDeepLift) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	if _, err := batchOf(inputs); err != nil {
		return nil, err
	}
	base, err := baselinesFor(o.Baselines, inputs)
	if err != nil {
		return nil, err
	}
	return l.attribute(ctx, inputs, base, o)
}

func (l *LayerDeepLift) attribute(ctx context.Context, inputs, base []*tensor.Tensor, o Options) (*Result, error) {
	n := inputs[0].Shape[0]
	name, err := l.Net.resolve(l.Layer, l.AttributeToLayerInput)
	if err != nil {
		return nil, err
	}
	both := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		both[i] = concatRowsAny(x, base[i])
	}
	feeds, err := l.Net.feeds(both, o.Additional, n, 2, false)
	if err != nil {
		return nil, err
	}
	r, _, err := l.Net.runLayer(ctx, feeds, name, nil, o.Target.expand(n, 2, false), deepLiftRules(l.Strict))
	if err != nil {
		return nil, err
	}
	half := r.value.Len() / 2
	shape := append([]int{n}, r.value.Shape[1:]...)
	a := tensor.New(shape...)
	for e := 0; e < half; e++ {
		a.F[e] = r.grad.F[e]
		if !l.Local {
			a.F[e] *= r.value.F[e] - r.value.F[e+half]
		}
	}
	res := &Result{Attributions: []*tensor.Tensor{a}}
	if o.Delta {
		vals, err := o.Target.expand(n, 2, false).pick(r.out)
		if err != nil {
			return nil, err
		}
		res.Delta = tensor.New(n)
		for row := 0; row < n; row++ {
			res.Delta.F[row] = rowSum([]*tensor.Tensor{a}, row, n) - (vals[row] - vals[row+n])
		}
	}
	return res, nil
}

// LayerDeepLiftShap averages LayerDeepLift over the rows of a baseline
// distribution. Cost: one forward and backward pass on 2*B rows per
// example for B baselines.
type LayerDeepLiftShap struct {
	Net                   *Net
	Layer                 string
	AttributeToLayerInput bool
	// Local returns local attributions, not multiplied by the layer's
	// (inputs - baselines): Captum's multiply_by_inputs=False.
	Local  bool
	Strict bool
}

// Attribute computes layer DeepLiftShap attributions; the delta has one
// entry per example and baseline.
func (l *LayerDeepLiftShap) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	if len(o.Baselines) != len(inputs) {
		return nil, fmt.Errorf("attr: LayerDeepLiftShap needs one baseline distribution per input, got %d for %d inputs", len(o.Baselines), len(inputs))
	}
	nb, err := batchOf(o.Baselines)
	if err != nil {
		return nil, fmt.Errorf("attr: baselines: %w", err)
	}
	if nb < 2 {
		return nil, fmt.Errorf("attr: LayerDeepLiftShap needs at least 2 baselines per input, got %d", nb)
	}
	expIn := make([]*tensor.Tensor, len(inputs))
	expBase := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		expIn[i] = repeat(x, nb, true)
		expBase[i] = repeat(o.Baselines[i], n, false)
	}
	inner := o
	inner.Target = o.Target.expand(n, nb, true)
	inner.Additional = expandExtra(o.Additional, n, nb, true)
	ld := &LayerDeepLift{Net: l.Net, Layer: l.Layer, AttributeToLayerInput: l.AttributeToLayerInput, Local: l.Local, Strict: l.Strict}
	r, err := ld.attribute(ctx, expIn, expBase, inner)
	if err != nil {
		return nil, err
	}
	r.Attributions[0] = meanGroups(r.Attributions[0], n, nb)
	return r, nil
}
