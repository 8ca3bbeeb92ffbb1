package attr

import (
	"context"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// LayerFeatureAblation ablates the elements (or groups, LayerMask) of a
// layer's value, replacing them by a baseline (0 unless LayerBaselines),
// and attributes to them the change of the target output, as
// FeatureAblation does to inputs (no paper of its own). Cost: 1 + F forward
// rows per example (from the layer on, after one full pass).
type LayerFeatureAblation struct {
	Net   *Net
	Layer string
	// AttributeToLayerInput attributes to the layer's input instead of its
	// output.
	AttributeToLayerInput bool
	// LayerMask groups the layer's elements; it broadcasts to the layer's shape.
	LayerMask *tensor.Tensor
	// LayerBaselines replaces ablated elements (nil: 0); a scalar, a row or
	// the layer's shape.
	LayerBaselines *tensor.Tensor
	// PerturbationsPerEval is as FeatureAblation's.
	PerturbationsPerEval int
}

// Attribute computes layer ablation attributions.
func (l *LayerFeatureAblation) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	n, name, v, err := l.Net.layerActivation(ctx, inputs, o, l.Layer, l.AttributeToLayerInput)
	if err != nil {
		return nil, err
	}
	fa := &FeatureAblation{Model: &layerModel{nt: l.Net, layer: name, inputs: inputs, n: n}, PerturbationsPerEval: l.PerturbationsPerEval}
	if l.LayerMask != nil {
		fa.FeatureMask = []*tensor.Tensor{l.LayerMask}
	}
	inner := o
	inner.Baselines = nil
	if l.LayerBaselines != nil {
		inner.Baselines = []*tensor.Tensor{l.LayerBaselines}
	}
	return fa.Attribute(ctx, []*tensor.Tensor{v}, inner)
}

// layerModel runs a net with one layer tensor replaced: its Eval takes the
// layer's value (copies*n rows) followed by the additional inputs, and
// feeds the original inputs repeated to match.
type layerModel struct {
	nt     *Net
	layer  string
	inputs []*tensor.Tensor
	n      int
}

func (lm *layerModel) Eval(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
	v := in[0]
	k := v.Shape[0] / lm.n
	feeds, err := lm.nt.feeds(repeatAll(lm.inputs, k), in[1:], lm.n*k, 1, false)
	if err != nil {
		return nil, err
	}
	p, err := lm.nt.forward(ctx, feeds, &engine.Options{Outputs: []string{lm.nt.Output}, Inject: map[string]*tensor.Tensor{lm.layer: v}})
	if err != nil {
		return nil, err
	}
	return p.Value(lm.nt.Output)
}
