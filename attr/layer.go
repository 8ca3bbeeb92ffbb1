package attr

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// At returns a copy of the net whose explained output is the named tensor
// (a layer, for neuron methods: the neuron is then chosen by the Target).
// layer is a module path ("layer4", "fc2") or a tensor name; input chooses
// the layer's input instead of its output.
func (nt *Net) At(layer string, input bool) (*Net, error) {
	name, err := nt.resolve(layer, input)
	if err != nil {
		return nil, err
	}
	c := *nt
	c.Output = name
	return &c, nil
}

// layerBatch checks the net and the inputs and resolves a layer: the batch
// size and the layer's tensor name.
func (nt *Net) layerBatch(inputs []*tensor.Tensor, layer string, input bool) (int, string, error) {
	n, err := nt.batch(inputs)
	if err != nil {
		return 0, "", err
	}
	name, err := nt.resolve(layer, input)
	return n, name, err
}

// layerFeeds checks the inputs, resolves a layer and builds the feeds of
// one pass over the batch.
func (nt *Net) layerFeeds(inputs []*tensor.Tensor, o Options, layer string, input bool) (int, string, map[string]*tensor.Tensor, error) {
	n, name, err := nt.layerBatch(inputs, layer, input)
	if err != nil {
		return 0, "", nil, err
	}
	feeds, err := nt.feeds(inputs, o.Additional, n, 1, false)
	return n, name, feeds, err
}

// layerActivation checks the inputs, resolves a layer and evaluates it on
// the batch: the batch size, the layer's tensor name and its value.
func (nt *Net) layerActivation(ctx context.Context, inputs []*tensor.Tensor, o Options, layer string, input bool) (int, string, *tensor.Tensor, error) {
	n, name, err := nt.layerBatch(inputs, layer, input)
	if err != nil {
		return 0, "", nil, err
	}
	v, err := nt.layerValue(ctx, name, inputs, o.Additional, n, 1, false)
	return n, name, v, err
}

// layerRun is one recorded pass with the value of a layer tensor and the
// gradient of the target with respect to it.
type layerRun struct {
	out   *tensor.Tensor // the explained output
	value *tensor.Tensor // the layer's value
	grad  *tensor.Tensor // d target / d layer
	pass  *engine.Pass
}

// runLayer evaluates the net on feeds (with optional injections), and
// differentiates the target with respect to the layer tensor (and the extra
// tensors in wrt, returned in grads).
func (nt *Net) runLayer(ctx context.Context, feeds map[string]*tensor.Tensor, layer string, inject map[string]*tensor.Tensor, t Target, rules engine.Rules, wrt ...string) (*layerRun, map[string]*tensor.Tensor, error) {
	// Without extra gradients, chains outside the layer run fused where
	// no rule applies inside them (engine.Options.Fuse and Rules: float32
	// rounding only).
	fuse := len(wrt) == 0
	p, err := nt.forward(ctx, feeds, &engine.Options{Outputs: []string{nt.Output}, Taps: []string{layer}, Inject: inject, Record: true, Fuse: fuse, Rules: rules})
	if err != nil {
		return nil, nil, err
	}
	out, err := p.Value(nt.Output)
	if err != nil {
		return nil, nil, err
	}
	val, err := p.Value(layer)
	if err != nil {
		return nil, nil, err
	}
	if val.DType != tensor.Float32 {
		return nil, nil, fmt.Errorf("attr: layer %q is %s; layer attributions need a float tensor", layer, val.DType)
	}
	seed, err := t.seedOf(out)
	if err != nil {
		return nil, nil, err
	}
	g, err := p.Backward(ctx, map[string]*tensor.Tensor{nt.Output: seed}, append([]string{layer}, wrt...), rules)
	if err != nil {
		return nil, nil, err
	}
	return &layerRun{out: out, value: val, grad: g[layer], pass: p}, g, nil
}

// layerValue evaluates the layer tensor on a batch of inputs, fed with the
// additional inputs as Net.feeds does.
func (nt *Net) layerValue(ctx context.Context, layer string, inputs, extra []*tensor.Tensor, n, k int, interleave bool) (*tensor.Tensor, error) {
	feeds, err := nt.feeds(inputs, extra, n, k, interleave)
	if err != nil {
		return nil, err
	}
	p, err := nt.forward(ctx, feeds, &engine.Options{Outputs: []string{layer}})
	if err != nil {
		return nil, err
	}
	return p.Value(layer)
}
