package attr

import (
	"context"

	"github.com/loupe-ml/loupe/tensor"
)

// LayerDeepLift is DeepLift's multipliers at a layer times the layer's
// difference from its value on the baselines (Shrikumar, Greenside and
// Kundaje, ICML 2017; see DeepLift). Cost: one forward and backward pass on
// 2 rows per example.
type LayerDeepLift struct {
	Net   *Net
	Layer string
	// AttributeToLayerInput attributes to the layer's input instead of its
	// output.
	AttributeToLayerInput bool
	// Local returns local attributions, not multiplied by the layer's
	// (inputs - baselines): Captum's multiply_by_inputs=False.
	Local bool
	// Strict is as DeepLift's.
	Strict bool
}

// Attribute computes layer DeepLift attributions; with o.Delta, also
// sum(attributions) - (F(x) - F(b)) per example.
func (l *LayerDeepLift) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	_, base, err := batchAndBaselines(inputs, o.Baselines)
	if err != nil {
		return nil, err
	}
	return l.attribute(ctx, inputs, base, o)
}

// attribute runs LayerDeepLift on inputs and their (full-shape) baselines.
func (l *LayerDeepLift) attribute(ctx context.Context, inputs, base []*tensor.Tensor, o Options) (*Result, error) {
	n := inputs[0].Shape[0]
	name, err := l.Net.resolve(l.Layer, l.AttributeToLayerInput)
	if err != nil {
		return nil, err
	}
	feeds, err := l.Net.feeds(pairRows(inputs, base), o.Additional, n, 2, false)
	if err != nil {
		return nil, err
	}
	r, _, err := l.Net.runLayer(ctx, feeds, name, nil, o.Target.expand(n, 2, false), deepLiftRules(l.Strict))
	if err != nil {
		return nil, err
	}
	defer r.pass.Release()
	half := r.value.Len() / 2
	a := tensor.New(append([]int{n}, r.value.Shape[1:]...)...)
	copy(a.F, r.grad.F[:half])
	if !l.Local {
		mulDiff(a.F, r.value.F[:half], r.value.F[half:])
	}
	res := &Result{Attributions: []*tensor.Tensor{a}}
	if o.Delta {
		if res.Delta, err = pairDelta(r.out, o.Target, res.Attributions, n); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// LayerDeepLiftShap averages LayerDeepLift over the rows of a baseline
// distribution (Lundberg and Lee, NeurIPS 2017; see DeepLiftShap). Cost:
// one forward and backward pass on 2*B rows per example for B baselines,
// in chunks of pairs that fit Options.MemoryBudget.
type LayerDeepLiftShap struct {
	Net   *Net
	Layer string
	// AttributeToLayerInput attributes to the layer's input instead of its
	// output.
	AttributeToLayerInput bool
	// Local returns local attributions, not multiplied by the layer's
	// (inputs - baselines): Captum's multiply_by_inputs=False.
	Local bool
	// Strict is as DeepLift's.
	Strict bool
}

// Attribute computes layer DeepLiftShap attributions; the delta has one
// entry per example and baseline.
func (l *LayerDeepLiftShap) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	if l.Net == nil || l.Net.Model == nil {
		if _, _, _, err := checkPairBaselines("LayerDeepLiftShap", inputs, o); err != nil {
			return nil, err
		}
		return nil, errNoNet
	}
	ld := &LayerDeepLift{Net: l.Net, Layer: l.Layer, AttributeToLayerInput: l.AttributeToLayerInput, Local: l.Local, Strict: l.Strict}
	return pairwise(ctx, "LayerDeepLiftShap", l.Net, inputs, o, nil, func(p *baselinePairs) (*Result, error) {
		return ld.attribute(ctx, p.inputs, p.base, p.o)
	})
}
