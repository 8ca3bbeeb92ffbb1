package attr

import (
	"cmp"
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// Neuron names one neuron: a layer (module path or tensor name), whether
// it is on the layer's input, and its index in the layer (without the batch
// dimension), as Captum's neuron_selector. Weights, when set instead of
// Index, selects a linear function of the layer, sum(Weights * layer) per
// example (the mean of a channel, a region): Captum's callable selector
// for the functions that are linear.
type Neuron struct {
	Layer                  string
	AttributeToNeuronInput bool
	Index                  []int
	Weights                *tensor.Tensor
}

// target returns the neuron as a Target on its layer.
func (nr Neuron) target() (Target, error) {
	switch {
	case nr.Weights != nil:
		return Weights(nr.Weights), nil
	case len(nr.Index) > 0:
		return Index(nr.Index...), nil
	}
	return Target{}, fmt.Errorf("attr: no neuron index or weights for layer %q", nr.Layer)
}

// attribute runs the method that inner makes for a net explaining the
// neuron's layer, with the neuron as its target (o.Target is ignored).
// Neuron methods return no convergence delta, as Captum's.
func (nr Neuron) attribute(ctx context.Context, nt *Net, inputs []*tensor.Tensor, o Options, inner func(*Net) Method) (*Result, error) {
	if nt == nil {
		return nil, fmt.Errorf("attr: no Net")
	}
	ln, err := nt.At(nr.Layer, nr.AttributeToNeuronInput)
	if err != nil {
		return nil, err
	}
	if o.Target, err = nr.target(); err != nil {
		return nil, err
	}
	o.Delta = false
	return inner(ln).Attribute(ctx, inputs, o)
}

// NeuronGradient is the gradient of one neuron with respect to the inputs:
// signed Saliency (Simonyan, Vedaldi and Zisserman, 2013) of the neuron.
// Cost: one forward (up to the layer) and backward row per example.
type NeuronGradient struct {
	Net    *Net
	Neuron Neuron
}

// Attribute computes the neuron's input gradient (o.Target is ignored).
func (m *NeuronGradient) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return m.Neuron.attribute(ctx, m.Net, inputs, o, func(nt *Net) Method {
		return &Saliency{Net: nt, Signed: true}
	})
}

// NeuronIntegratedGradients is IntegratedGradients (Sundararajan et al.,
// ICML 2017) of one neuron. Cost: NSteps forward (up to the layer) and
// backward rows per example.
type NeuronIntegratedGradients struct {
	Net    *Net
	Neuron Neuron
	// Method, NSteps and InternalBatchSize are as IntegratedGradients'.
	Method                    string
	NSteps, InternalBatchSize int
	// Local returns local attributions, not multiplied by (inputs - baselines):
	// Captum's multiply_by_inputs=False.
	Local bool
}

// Attribute computes the neuron's integrated gradients from o.Baselines.
func (m *NeuronIntegratedGradients) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return m.Neuron.attribute(ctx, m.Net, inputs, o, func(nt *Net) Method {
		return &IntegratedGradients{Net: nt, Method: m.Method, NSteps: m.NSteps, InternalBatchSize: m.InternalBatchSize, Local: m.Local}
	})
}

// NeuronConductance is the part of a neuron's conductance that flows
// through each input feature (Dhamdhere, Sundararajan and Yan, ICLR 2019):
// (x_i - b_i) * sum_k w_k dF/dy(a_k) dy/dx_i(a_k), with y the neuron, F the
// target output, a_k the points of the path. Summed over the inputs it is
// the neuron's layer conductance. Method defaults to riemann_trapezoid, as
// Captum's. Cost: NSteps forward rows and 2*NSteps backward rows per
// example.
type NeuronConductance struct {
	Net    *Net
	Neuron Neuron
	// Method, NSteps and InternalBatchSize are as IntegratedGradients'
	// (but Method "" means RiemannTrapezoid).
	Method                    string
	NSteps, InternalBatchSize int
	// Local returns local attributions, not multiplied by (inputs - baselines):
	// Captum's multiply_by_inputs=False.
	Local bool
}

// Attribute computes neuron conductance for o.Target.
func (m *NeuronConductance) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	layer, err := m.Net.resolve(m.Neuron.Layer, m.Neuron.AttributeToNeuronInput)
	if err != nil {
		return nil, err
	}
	p, err := newPath(ctx, "NeuronConductance", inputs, o, cmp.Or(m.Method, RiemannTrapezoid), cmp.Or(m.NSteps, defaultNSteps), m.InternalBatchSize)
	if err != nil {
		return nil, err
	}
	neuron, err := m.Neuron.target()
	if err != nil {
		return nil, err
	}
	if err := floatInputs(inputs, "NeuronConductance"); err != nil {
		return nil, err
	}
	n := p.n
	total := zerosLike(inputs, false)
	err = p.walk(ctx, m.Net, inputs, p.along(inputs), o, func(s0, k int, feeds map[string]*tensor.Tensor) error {
		r, _, err := m.Net.runLayer(ctx, feeds, layer, nil, o.Target.expand(n, k, false), nil)
		if err != nil {
			return err
		}
		nseed, err := neuron.seed(r.value.Shape)
		if err != nil {
			return err
		}
		g, err := r.pass.Backward(ctx, map[string]*tensor.Tensor{layer: nseed}, m.Net.Inputs, nil)
		if err != nil {
			return err
		}
		mids := rowDots(nseed, r.grad) // dF/d(neuron) per row
		for i, name := range m.Net.Inputs {
			gi := g[name]
			row := inputs[i].Len() / n
			for s := 0; s < k; s++ {
				w := float32(p.steps[s0+s])
				for ex := 0; ex < n; ex++ {
					rr := s*n + ex
					mid := mids[rr] * w
					src := gi.F[rr*row : (rr+1)*row]
					dst := total[i].F[ex*row : (ex+1)*row]
					for e, v := range src {
						dst[e] += v * mid
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !m.Local {
		multiplyByInputs(total, inputs, p.base)
	}
	return &Result{Attributions: total}, nil
}

// NeuronGradientShap is GradientShap (Lundberg and Lee, NeurIPS 2017) of
// one neuron. Cost: NSamples forward (up to the layer) and backward rows per
// example.
type NeuronGradientShap struct {
	Net    *Net
	Neuron Neuron
	// NSamples, Stdevs, Seed and Draws are as GradientShap's.
	NSamples int
	Stdevs   []float64
	// Local returns local attributions, not multiplied by (inputs - baselines):
	// Captum's multiply_by_inputs=False.
	Local bool
	Seed  uint64
	Draws *ShapDraws
}

// Attribute computes the neuron's GradientShap from the distribution in
// o.Baselines.
func (m *NeuronGradientShap) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return m.Neuron.attribute(ctx, m.Net, inputs, o, func(nt *Net) Method {
		return &GradientShap{Net: nt, NSamples: m.NSamples, Stdevs: m.Stdevs, Local: m.Local, Seed: m.Seed, Draws: m.Draws}
	})
}

// NeuronDeepLift is DeepLift (Shrikumar et al., ICML 2017) of one neuron.
// Cost: one forward (up to the layer) and backward pass on 2 rows per
// example.
type NeuronDeepLift struct {
	Net    *Net
	Neuron Neuron
	// Local returns local attributions, not multiplied by (inputs - baselines):
	// Captum's multiply_by_inputs=False.
	Local bool
	// Strict is as DeepLift's.
	Strict bool
}

// Attribute computes the neuron's DeepLift attributions from o.Baselines.
func (m *NeuronDeepLift) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return m.Neuron.attribute(ctx, m.Net, inputs, o, func(nt *Net) Method {
		return &DeepLift{Net: nt, Local: m.Local, Strict: m.Strict}
	})
}

// NeuronDeepLiftShap is DeepLiftShap (Lundberg and Lee, NeurIPS 2017) of
// one neuron. Cost: one forward (up to the layer) and backward pass on 2*B
// rows per example for B baselines.
type NeuronDeepLiftShap struct {
	Net    *Net
	Neuron Neuron
	// Local returns local attributions, not multiplied by (inputs - baselines):
	// Captum's multiply_by_inputs=False.
	Local bool
	// Strict is as DeepLift's.
	Strict bool
}

// Attribute computes the neuron's DeepLiftShap attributions from the
// distribution in o.Baselines.
func (m *NeuronDeepLiftShap) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return m.Neuron.attribute(ctx, m.Net, inputs, o, func(nt *Net) Method {
		return &DeepLiftShap{Net: nt, Local: m.Local, Strict: m.Strict}
	})
}

// NeuronGuidedBackprop is GuidedBackprop (Springenberg et al., 2014) of one
// neuron. Cost: one forward (up to the layer) and backward row per example.
type NeuronGuidedBackprop struct {
	Net    *Net
	Neuron Neuron
}

// Attribute computes the neuron's guided backpropagation.
func (m *NeuronGuidedBackprop) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return m.Neuron.attribute(ctx, m.Net, inputs, o, func(nt *Net) Method {
		return &GuidedBackprop{Net: nt}
	})
}

// NeuronDeconvolution is Deconvolution (Zeiler and Fergus, ECCV 2014) of
// one neuron. Cost: one forward (up to the layer) and backward row per
// example.
type NeuronDeconvolution struct {
	Net    *Net
	Neuron Neuron
}

// Attribute computes the neuron's deconvolution attributions.
func (m *NeuronDeconvolution) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return m.Neuron.attribute(ctx, m.Net, inputs, o, func(nt *Net) Method {
		return &Deconvolution{Net: nt}
	})
}

// NeuronFeatureAblation is FeatureAblation of one neuron: the change of the
// neuron's value when features are ablated (no paper of its own). Cost: 1 + F forward rows per
// example (up to the layer).
type NeuronFeatureAblation struct {
	Net    *Net
	Neuron Neuron
	// FeatureMask and PerturbationsPerEval are as FeatureAblation's.
	FeatureMask          []*tensor.Tensor
	PerturbationsPerEval int
}

// Attribute computes the neuron's ablation attributions.
func (m *NeuronFeatureAblation) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return m.Neuron.attribute(ctx, m.Net, inputs, o, func(nt *Net) Method {
		return &FeatureAblation{Model: nt, FeatureMask: m.FeatureMask, PerturbationsPerEval: m.PerturbationsPerEval}
	})
}
