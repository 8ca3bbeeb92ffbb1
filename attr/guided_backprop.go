package attr

import (
	"context"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// GuidedBackprop returns the gradient of the target where every ReLU
// passes back only positive gradients (Springenberg et al., "Striving for
// Simplicity: The All Convolutional Net", 2014). Cost: one forward and
// backward row per example.
type GuidedBackprop struct {
	Net *Net
}

// Attribute computes guided backpropagation for a.Target.
func (g *GuidedBackprop) Attribute(ctx context.Context, inputs []*tensor.Tensor, a Options) (*Result, error) {
	return gradientResult(ctx, g.Net, inputs, a, guidedRules(false))
}

// Deconvolution returns the gradient of the target where every ReLU passes
// back the positive part of the incoming gradient, whatever its input was
// (Zeiler and Fergus, "Visualizing and Understanding Convolutional
// Networks", ECCV 2014). Cost: one forward and backward row per example.
type Deconvolution struct {
	Net *Net
}

// Attribute computes deconvolution attributions for a.Target.
func (d *Deconvolution) Attribute(ctx context.Context, inputs []*tensor.Tensor, a Options) (*Result, error) {
	return gradientResult(ctx, d.Net, inputs, a, guidedRules(true))
}

// guidedRules returns the backward rules of GuidedBackprop (useGradOut
// false: the ReLU's own gradient, clamped at zero) or Deconvolution
// (useGradOut true: the incoming gradient clamped at zero, ignoring the
// forward mask), applied to every Relu node as Captum does to ReLU modules.
func guidedRules(useGradOut bool) engine.Rules {
	return engine.OpRules{"Relu": func(c *engine.RuleContext) ([]*tensor.Tensor, error) {
		var g *tensor.Tensor
		if useGradOut {
			g = c.GradOut[0]
			if g == nil {
				return []*tensor.Tensor{nil}, nil
			}
		} else {
			d, err := c.Default()
			if err != nil {
				return nil, err
			}
			g = d[0]
			if g == nil {
				return d, nil
			}
		}
		out := tensor.New(g.Shape...)
		for i, v := range g.F {
			if v > 0 {
				out.F[i] = v
			}
		}
		return []*tensor.Tensor{out}, nil
	}}
}
