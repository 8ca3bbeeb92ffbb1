package attr

import (
	"context"

	"github.com/loupe-ml/loupe/tensor"
)

// LayerActivation returns a layer's value on the inputs: no attribution
// proper, and no paper (Captum's LayerActivation). Cost: one forward row per
// example (up to the layer).
type LayerActivation struct {
	Net   *Net
	Layer string
	// AttributeToLayerInput returns the layer's input instead.
	AttributeToLayerInput bool
}

// Attribute returns the layer's activations.
func (l *LayerActivation) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	_, _, v, err := l.Net.layerActivation(ctx, inputs, o, l.Layer, l.AttributeToLayerInput)
	if err != nil {
		return nil, err
	}
	return &Result{Attributions: []*tensor.Tensor{v.AsFloat32()}}, nil
}

// LayerGradientXActivation multiplies a layer's activations by the gradient
// of the target with respect to them: InputXGradient at a layer (Shrikumar
// et al., "Not Just a Black Box", 2016). Cost: one forward and backward row
// per example.
type LayerGradientXActivation struct {
	Net   *Net
	Layer string
	// AttributeToLayerInput attributes to the layer's input instead of its
	// output.
	AttributeToLayerInput bool
	// Local returns local attributions, the gradient not multiplied by the
	// activations: Captum's multiply_by_inputs=False.
	Local bool
}

// Attribute computes gradient times activation at the layer.
func (l *LayerGradientXActivation) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	_, name, feeds, err := l.Net.layerFeeds(inputs, o, l.Layer, l.AttributeToLayerInput)
	if err != nil {
		return nil, err
	}
	r, _, err := l.Net.runLayer(ctx, feeds, name, nil, o.Target, nil)
	if err != nil {
		return nil, err
	}
	defer r.pass.Release()
	g := r.grad
	if !l.Local {
		for i := range g.F {
			g.F[i] *= r.value.F[i]
		}
	}
	return &Result{Attributions: []*tensor.Tensor{g}}, nil
}

// LayerGradientShap is GradientShap (Lundberg and Lee, NeurIPS 2017) at a
// layer: for each draw, the gradient with respect to the layer at a random
// point between a baseline and the noisy input, times the layer's
// difference L(noisy) - L(baseline); the mean over draws. Cost: NSamples forward and backward rows per
// example, plus 2 forward rows per draw for the layer's values.
type LayerGradientShap struct {
	Net   *Net
	Layer string
	// AttributeToLayerInput attributes to the layer's input instead of its
	// output.
	AttributeToLayerInput bool
	// NSamples, Stdevs, Seed and Draws are as GradientShap's.
	NSamples int
	Stdevs   []float64
	// Local returns local attributions, not multiplied by the layer's
	// (inputs - baselines): Captum's multiply_by_inputs=False.
	Local bool
	Seed  uint64
	Draws *ShapDraws
}

// Attribute computes layer GradientShap attributions; the delta has one
// entry per draw. The draws are made and evaluated in chunks of rows that
// fit Options.MemoryBudget (the same draws whatever the chunks), with
// progress reported per draw; what would not fit even one draw at a time
// is refused before any model call.
func (l *LayerGradientShap) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	name, err := l.Net.resolve(l.Layer, l.AttributeToLayerInput)
	if err != nil {
		return nil, err
	}
	gs := &GradientShap{Net: l.Net, NSamples: l.NSamples, Stdevs: l.Stdevs, Seed: l.Seed, Draws: l.Draws}
	src, err := gs.source(inputs, o)
	if err != nil {
		return nil, err
	}
	n, k := src.n, src.k
	per, err := drawsPerCall(ctx, "LayerGradientShap", l.Net, src, inputs, o, true)
	if err != nil {
		return nil, err
	}
	var attrs *tensor.Tensor
	var delta *tensor.Tensor
	if o.Delta {
		delta = tensor.New(n * k)
	}
	for r0, r1 := range chunks(n*k, per) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pts := src.rows(r0, r1)
		m := r1 - r0
		ex := make([]int, m)
		for j := range ex {
			ex[j] = (r0 + j) / k
		}
		sub := o
		sub.Target = o.Target.rows(ex)
		sub.Additional = selectRows(o.Additional, n, ex)
		feeds, err := l.Net.feeds(pts.points, sub.Additional, m, 1, false)
		if err != nil {
			return nil, err
		}
		r, _, err := l.Net.runLayer(ctx, feeds, name, nil, sub.Target, nil)
		if err != nil {
			return nil, err
		}
		g := r.grad
		r.pass.Release()
		if !l.Local {
			ln, err := l.Net.layerValue(ctx, name, pts.noisy, sub.Additional, m, 1, false)
			if err != nil {
				return nil, err
			}
			lb, err := l.Net.layerValue(ctx, name, pts.bases, sub.Additional, m, 1, false)
			if err != nil {
				return nil, err
			}
			mulDiff(g.F, ln.F, lb.F)
		}
		if attrs == nil {
			attrs = tensor.New(append([]int{n}, g.Shape[1:]...)...)
		}
		// Sums in the order of the draws, as meanGroups.
		row := g.Len() / m
		for j, e := range ex {
			dst := attrs.F[e*row : (e+1)*row]
			for x, v := range g.F[j*row : (j+1)*row] {
				dst[x] += v
			}
		}
		if o.Delta {
			d, err := convergenceDelta(ctx, l.Net, pts.noisy, pts.bases, []*tensor.Tensor{g}, sub)
			if err != nil {
				return nil, err
			}
			copy(delta.F[r0:r1], d.F)
		}
		if o.Progress != nil {
			o.Progress(r1, n*k)
		}
	}
	for e := range attrs.F {
		attrs.F[e] /= float32(k)
	}
	return &Result{Attributions: []*tensor.Tensor{attrs}, Delta: delta}, nil
}
