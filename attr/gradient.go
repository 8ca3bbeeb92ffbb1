package attr

import (
	"context"
	"math"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// Saliency returns the gradient of the target output with respect to each
// input, by default its absolute value (Simonyan, Vedaldi and Zisserman,
// "Deep Inside Convolutional Networks", 2013). Cost: one forward and
// backward row per example.
type Saliency struct {
	Net *Net
	// Signed keeps the gradient's sign: Captum's abs=False.
	Signed bool
}

// Attribute computes the saliency of inputs for a.Target.
func (s *Saliency) Attribute(ctx context.Context, inputs []*tensor.Tensor, a Options) (*Result, error) {
	r, err := gradientResult(ctx, s.Net, inputs, a, nil)
	if err != nil {
		return nil, err
	}
	if !s.Signed {
		for _, g := range r.Attributions {
			for i, v := range g.F {
				g.F[i] = float32(math.Abs(float64(v)))
			}
		}
	}
	return r, nil
}

// InputXGradient multiplies each input by the gradient of the target output
// with respect to it (Shrikumar et al., "Not Just a Black Box", 2016).
// Cost: one forward and backward row per example.
type InputXGradient struct {
	Net *Net
}

// Attribute computes input times gradient for a.Target.
func (m *InputXGradient) Attribute(ctx context.Context, inputs []*tensor.Tensor, a Options) (*Result, error) {
	r, err := gradientResult(ctx, m.Net, inputs, a, nil)
	if err != nil {
		return nil, err
	}
	for i, g := range r.Attributions {
		for e := range g.F {
			g.F[e] *= inputs[i].F[e]
		}
	}
	return r, nil
}

// gradientResult returns as attributions the gradient of the target with
// respect to each input, computed with rules, if not nil, replacing
// backward rules. Cost: one forward and backward row per example.
func gradientResult(ctx context.Context, nt *Net, inputs []*tensor.Tensor, o Options, rules engine.Rules) (*Result, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	if err := floatInputs(inputs, "a gradient method"); err != nil {
		return nil, err
	}
	feeds, err := nt.feeds(inputs, o.Additional, n, 1, false)
	if err != nil {
		return nil, err
	}
	_, grads, err := nt.gradOf(ctx, feeds, o.Target, rules)
	if err != nil {
		return nil, err
	}
	if o.Progress != nil {
		o.Progress(n, n)
	}
	return &Result{Attributions: grads}, nil
}
