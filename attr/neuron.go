package attr

import (
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

// net returns the net explaining the neuron's layer, and options targeting
// the neuron.
func (nr Neuron) net(nt *Net, o Options) (*Net, Options, error) {
	if nt == nil {
		return nil, o, fmt.Errorf("attr: no Net")
	}
	ln, err := nt.At(nr.Layer, nr.AttributeToNeuronInput)
	if err != nil {
		return nil, o, err
	}
	if o.Target, err = nr.target(); err != nil {
		return nil, o, err
	}
	return ln, o, nil
}

// NeuronGradient is the gradient of one neuron with respect to the inputs.
// Cost: one forward (up to the layer) and backward row per example.
type NeuronGradient struct {
	Net    *Net
	Neuron Neuron
}

// Attribute computes the neuron's input gradient (o.Target is ignored).
func (m *NeuronGradient) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	nt, no, err := m.Neuron.net(m.Net, o)
	if err != nil {
		return nil, err
	}
	return (&Saliency{Net: nt, Signed: true}).Attribute(ctx, inputs, no)
}

// NeuronIntegratedGradients is IntegratedGradients of one neuron. Cost:
// NSteps forward and backward rows per example.
type NeuronIntegratedGradients struct {
	Net                       *Net
	Neuron                    Neuron
	Method                    string
	NSteps, InternalBatchSize int
	// Local returns local attributions, not multiplied by (inputs - baselines):
	// Captum's multiply_by_inputs=False.
	Local bool
}

// Attribute computes the neuron's integrated gradients from o.Baselines.
func (m *NeuronIntegratedGradients) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	nt, no, err := m.Neuron.net(m.Net, o)
	if err != nil {
		return nil, err
	}
	no.Delta = false
	return (&IntegratedGradients{Net: nt, Method: m.Method, NSteps: m.NSteps, InternalBatchSize: m.InternalBatchSize, Local: m.Local}).Attribute(ctx, inputs, no)
}

// NeuronConductance is the part of a neuron's conductance that flows
// through each input feature (Dhamdhere, Sundararajan and Yan, ICLR 2019):
// (x_i - b_i) * sum_k w_k dF/dy(a_k) dy/dx_i(a_k), with y the neuron, F the
// target output, a_k the points of the path. Summed over the inputs it is
// the neuron's layer conductance. Method defaults to riemann_trapezoid, as
// Captum's. Cost: NSteps forward rows and 2*NSteps backward rows per
// example.
type NeuronConductance struct {
	Net                       *Net
	Neuron                    Neuron
	Method                    string
	NSteps, InternalBatchSize int
	// Local returns local attributions, not multiplied by (inputs - baselines):
	// Captum's multiply_by_inputs=False.
	Local bool
}

// Attribute computes neuron conductance for o.Target.
func (m *NeuronConductance) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	if m.Net == nil || m.Net.Model == nil {
		return nil, errNoNet
	}
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	layer, err := m.Net.resolve(m.Neuron.Layer, m.Neuron.AttributeToNeuronInput)
	if err != nil {
		return nil, err
	}
	method := m.Method
	if method == "" {
		method = RiemannTrapezoid
	}
	nsteps := m.NSteps
	if nsteps == 0 {
		nsteps = 50
	}
	steps, alphas, err := stepsAndAlphas(method, nsteps)
	if err != nil {
		return nil, err
	}
	base, err := baselinesFor(o.Baselines, inputs)
	if err != nil {
		return nil, err
	}
	neuron, err := m.Neuron.target()
	if err != nil {
		return nil, err
	}
	total := zerosLike(inputs, false)
	per := stepsPerCall(m.InternalBatchSize, n, nsteps, inputs)
	for s0 := 0; s0 < nsteps; s0 += per {
		s1 := min(nsteps, s0+per)
		k := s1 - s0
		scaled := make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			if x.DType != tensor.Float32 {
				return nil, fmt.Errorf("attr: input %d is %s; NeuronConductance needs float inputs", i, x.DType)
			}
			scaled[i] = interpolate(base[i], x, alphas[s0:s1])
		}
		feeds, err := m.Net.feeds(scaled, o.Additional, n, k, false)
		if err != nil {
			return nil, err
		}
		r, _, err := m.Net.runLayer(ctx, feeds, layer, nil, o.Target.expand(n, k, false), nil)
		if err != nil {
			return nil, err
		}
		nseed, err := neuron.seed(r.value.Shape)
		if err != nil {
			return nil, err
		}
		g, err := r.pass.Backward(ctx, map[string]*tensor.Tensor{layer: nseed}, m.Net.Inputs, nil)
		if err != nil {
			return nil, err
		}
		mids := rowDots(nseed, r.grad) // dF/d(neuron) per row
		for i, name := range m.Net.Inputs {
			gi := g[name]
			row := inputs[i].Len() / n
			for s := 0; s < k; s++ {
				w := float32(steps[s0+s])
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
		if o.Progress != nil {
			o.Progress(s1*n, nsteps*n)
		}
	}
	if !m.Local {
		for i, x := range inputs {
			for e := range total[i].F {
				total[i].F[e] *= x.F[e] - base[i].F[e]
			}
		}
	}
	return &Result{Attributions: total}, nil
}

// NeuronGradientShap is GradientShap of one neuron. Cost: NSamples forward
// and backward rows per example.
type NeuronGradientShap struct {
	Net      *Net
	Neuron   Neuron
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
	nt, no, err := m.Neuron.net(m.Net, o)
	if err != nil {
		return nil, err
	}
	no.Delta = false
	return (&GradientShap{Net: nt, NSamples: m.NSamples, Stdevs: m.Stdevs, Local: m.Local, Seed: m.Seed, Draws: m.Draws}).Attribute(ctx, inputs, no)
}

// NeuronDeepLift is DeepLift of one neuron. Cost: one forward and backward
// pass on 2 rows per example.
type NeuronDeepLift struct {
	Net    *Net
	Neuron Neuron
	// Local returns local attributions, not multiplied by (inputs - baselines):
	// Captum's multiply_by_inputs=False.
	Local  bool
	Strict bool
}

// Attribute computes the neuron's DeepLift attributions from o.Baselines.
func (m *NeuronDeepLift) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	nt, no, err := m.Neuron.net(m.Net, o)
	if err != nil {
		return nil, err
	}
	no.Delta = false
	return (&DeepLift{Net: nt, Local: m.Local, Strict: m.Strict}).Attribute(ctx, inputs, no)
}

// NeuronDeepLiftShap is DeepLiftShap of one neuron.
type NeuronDeepLiftShap struct {
	Net    *Net
	Neuron Neuron
	// Local returns local attributions, not multiplied by (inputs - baselines):
	// Captum's multiply_by_inputs=False.
	Local  bool
	Strict bool
}

// Attribute computes the neuron's DeepLiftShap attributions.
func (m *NeuronDeepLiftShap) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	nt, no, err := m.Neuron.net(m.Net, o)
	if err != nil {
		return nil, err
	}
	no.Delta = false
	return (&DeepLiftShap{Net: nt, Local: m.Local, Strict: m.Strict}).Attribute(ctx, inputs, no)
}

// NeuronGuidedBackprop is GuidedBackprop of one neuron.
type NeuronGuidedBackprop struct {
	Net    *Net
	Neuron Neuron
}

// Attribute computes the neuron's guided backpropagation.
func (m *NeuronGuidedBackprop) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	nt, no, err := m.Neuron.net(m.Net, o)
	if err != nil {
		return nil, err
	}
	return (&GuidedBackprop{Net: nt}).Attribute(ctx, inputs, no)
}

// NeuronDeconvolution is Deconvolution of one neuron.
type NeuronDeconvolution struct {
	Net    *Net
	Neuron Neuron
}

// Attribute computes the neuron's deconvolution attributions.
func (m *NeuronDeconvolution) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	nt, no, err := m.Neuron.net(m.Net, o)
	if err != nil {
		return nil, err
	}
	return (&Deconvolution{Net: nt}).Attribute(ctx, inputs, no)
}

// NeuronFeatureAblation is FeatureAblation of one neuron: the change of the
// neuron's value when features are ablated. Cost: 1 + F forward rows per
// example (up to the layer).
type NeuronFeatureAblation struct {
	Net                  *Net
	Neuron               Neuron
	FeatureMask          []*tensor.Tensor
	PerturbationsPerEval int
}

// Attribute computes the neuron's ablation attributions.
func (m *NeuronFeatureAblation) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	nt, no, err := m.Neuron.net(m.Net, o)
	if err != nil {
		return nil, err
	}
	return (&FeatureAblation{Model: nt, FeatureMask: m.FeatureMask, PerturbationsPerEval: m.PerturbationsPerEval}).Attribute(ctx, inputs, no)
}
