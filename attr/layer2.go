package attr

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// LayerIntegratedGradients integrates gradients with respect to a layer
// along the straight path between the layer's value on the baselines and on
// the inputs: the layer is replaced by b_L + a*(x_L - b_L) and the network
// runs on from there. For text models this integrates over embeddings while
// the inputs stay token ids (the baselines are then token ids too, see
// TokenReference). Attributions have the layer's shape and sum to about
// F(x) - F(b). Cost: 2 forward rows per example for the layer's values,
// then NSteps forward and backward rows per example (from the layer on).
type LayerIntegratedGradients struct {
	Net                   *Net
	Layer                 string
	AttributeToLayerInput bool
	Method                string
	NSteps                int
	InternalBatchSize     int
	// Local returns local attributions, not multiplied by the layer's
	// (inputs - baselines): Captum's multiply_by_inputs=False.
	Local bool
}

// Attribute computes layer integrated gradients.
func (l *LayerIntegratedGradients) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	name, err := l.Net.resolve(l.Layer, l.AttributeToLayerInput)
	if err != nil {
		return nil, err
	}
	nsteps := l.NSteps
	if nsteps == 0 {
		nsteps = 50
	}
	steps, alphas, err := stepsAndAlphas(l.Method, nsteps)
	if err != nil {
		return nil, err
	}
	base, err := baselinesFor(o.Baselines, inputs)
	if err != nil {
		return nil, err
	}
	feedX, err := l.Net.feeds(inputs, o.Additional, n, 1, false)
	if err != nil {
		return nil, err
	}
	lx, err := l.Net.layerValue(ctx, feedX, name)
	if err != nil {
		return nil, err
	}
	feedB, err := l.Net.feeds(base, o.Additional, n, 1, false)
	if err != nil {
		return nil, err
	}
	lb, err := l.Net.layerValue(ctx, feedB, name)
	if err != nil {
		return nil, err
	}
	if lx.DType != tensor.Float32 {
		return nil, fmt.Errorf("attr: layer %q is %s; it must be a float tensor", name, lx.DType)
	}
	total := tensor.New(lx.Shape...)
	per := stepsPerCall(l.InternalBatchSize, n, nsteps, inputs)
	for s0 := 0; s0 < nsteps; s0 += per {
		s1 := min(nsteps, s0+per)
		k := s1 - s0
		scaled := interpolate(lb, lx, alphas[s0:s1])
		// The inputs still feed the parts of the network that do not go
		// through the layer.
		feeds, err := l.Net.feeds(repeatAll(inputs, k), o.Additional, n, k, false)
		if err != nil {
			return nil, err
		}
		r, _, err := l.Net.runLayer(ctx, feeds, name, map[string]*tensor.Tensor{name: scaled}, o.Target.expand(n, k, false), nil)
		if err != nil {
			return nil, err
		}
		m := lx.Len()
		for s := 0; s < k; s++ {
			w := float32(steps[s0+s])
			for e := 0; e < m; e++ {
				total.F[e] += r.grad.F[s*m+e] * w
			}
		}
		if o.Progress != nil {
			o.Progress(s1*n, nsteps*n)
		}
	}
	if !l.Local {
		for e := range total.F {
			total.F[e] *= lx.F[e] - lb.F[e]
		}
	}
	res := &Result{Attributions: []*tensor.Tensor{total}}
	if o.Delta {
		if res.Delta, err = layerDelta(ctx, l.Net, inputs, base, total, o); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// repeatAll repeats every tensor k times (block-major).
func repeatAll(ts []*tensor.Tensor, k int) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(ts))
	for i, t := range ts {
		out[i] = repeat(t, k, false)
	}
	return out
}

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

// concatRowsAny stacks two tensors of the same dtype along the batch.
func concatRowsAny(a, b *tensor.Tensor) *tensor.Tensor {
	if a.DType == tensor.Float32 {
		return concatRows(a, b.AsFloat32())
	}
	shape := append([]int{a.Shape[0] + b.Shape[0]}, a.Shape[1:]...)
	out := tensor.Zeros(a.DType, shape)
	row := a.Len() / max(a.Shape[0], 1)
	for r := 0; r < a.Shape[0]; r++ {
		copyRow(out, r, a, r, row)
	}
	bb := b
	if b.DType != a.DType {
		bb = b.AsInt64()
	}
	for r := 0; r < b.Shape[0]; r++ {
		copyRow(out, a.Shape[0]+r, bb, r, row)
	}
	return out
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

// LayerGradientShap is GradientShap at a layer: for each draw, the
// gradient with respect to the layer at a random point between a baseline
// and the noisy input, times the layer's difference L(noisy) - L(baseline);
// the mean over draws. Cost: NSamples forward and backward rows per
// example, plus 2 forward rows per draw for the layer's values.
type LayerGradientShap struct {
	Net                   *Net
	Layer                 string
	AttributeToLayerInput bool
	NSamples              int
	Stdevs                []float64
	// Local returns local attributions, not multiplied by the layer's
	// (inputs - baselines): Captum's multiply_by_inputs=False.
	Local bool
	Seed  uint64
	Draws *ShapDraws
}

// Attribute computes layer GradientShap attributions; the delta has one
// entry per draw.
func (l *LayerGradientShap) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	name, err := l.Net.resolve(l.Layer, l.AttributeToLayerInput)
	if err != nil {
		return nil, err
	}
	gs := &GradientShap{Net: l.Net, NSamples: l.NSamples, Stdevs: l.Stdevs, Seed: l.Seed, Draws: l.Draws}
	pts, err := gs.points(inputs, o)
	if err != nil {
		return nil, err
	}
	n, k := pts.n, pts.k
	feeds, err := l.Net.feeds(pts.points, o.Additional, n, k, true)
	if err != nil {
		return nil, err
	}
	tgt := o.Target.expand(n, k, true)
	r, _, err := l.Net.runLayer(ctx, feeds, name, nil, tgt, nil)
	if err != nil {
		return nil, err
	}
	g := r.grad
	if !l.Local {
		fn, err := l.Net.feeds(pts.noisy, o.Additional, n, k, true)
		if err != nil {
			return nil, err
		}
		ln, err := l.Net.layerValue(ctx, fn, name)
		if err != nil {
			return nil, err
		}
		fb, err := l.Net.feeds(pts.bases, o.Additional, n, k, true)
		if err != nil {
			return nil, err
		}
		lb, err := l.Net.layerValue(ctx, fb, name)
		if err != nil {
			return nil, err
		}
		for e := range g.F {
			g.F[e] *= ln.F[e] - lb.F[e]
		}
	}
	res := &Result{Attributions: []*tensor.Tensor{meanGroups(g, n, k)}}
	if o.Delta {
		sub := o
		sub.Target = tgt
		sub.Additional = expandExtra(o.Additional, n, k, true)
		if res.Delta, err = convergenceDelta(ctx, l.Net, pts.noisy, pts.bases, []*tensor.Tensor{g}, sub); err != nil {
			return nil, err
		}
	}
	return res, nil
}
