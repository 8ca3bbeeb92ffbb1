package attr

import (
	"context"
	"fmt"
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
	grads, err := inputGradients(ctx, s.Net, inputs, a, nil)
	if err != nil {
		return nil, err
	}
	if !s.Signed {
		for _, g := range grads {
			for i, v := range g.F {
				g.F[i] = float32(math.Abs(float64(v)))
			}
		}
	}
	return &Result{Attributions: grads}, nil
}

// InputXGradient multiplies each input by the gradient of the target output
// with respect to it (Shrikumar et al., "Not Just a Black Box", 2016).
// Cost: one forward and backward row per example.
type InputXGradient struct {
	Net *Net
}

// Attribute computes input times gradient for a.Target.
func (m *InputXGradient) Attribute(ctx context.Context, inputs []*tensor.Tensor, a Options) (*Result, error) {
	grads, err := inputGradients(ctx, m.Net, inputs, a, nil)
	if err != nil {
		return nil, err
	}
	for i, g := range grads {
		for e := range g.F {
			g.F[e] *= inputs[i].F[e]
		}
	}
	return &Result{Attributions: grads}, nil
}

// inputGradients returns the gradient of the target with respect to each
// input, with optional backward rules.
func inputGradients(ctx context.Context, nt *Net, inputs []*tensor.Tensor, a Options, rules engine.Rules) ([]*tensor.Tensor, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	for i, x := range inputs {
		if x.DType != tensor.Float32 {
			return nil, fmt.Errorf("attr: input %d is %s; gradients need float inputs", i, x.DType)
		}
	}
	feeds, err := nt.feeds(inputs, a.Additional, n, 1, false)
	if err != nil {
		return nil, err
	}
	_, grads, err := nt.gradOf(ctx, feeds, a.Target, rules)
	if err != nil {
		return nil, err
	}
	if a.Progress != nil {
		a.Progress(n, n)
	}
	return grads, nil
}
