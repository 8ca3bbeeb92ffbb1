package attr

import (
	"cmp"
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// LayerIntegratedGradients is IntegratedGradients (Sundararajan, Taly and
// Yan, ICML 2017) at a layer: it integrates gradients with respect to the
// layer along the straight path between the layer's value on the baselines
// and on the inputs: the layer is replaced by b_L + a*(x_L - b_L) and the network
// runs on from there. For text models this integrates over embeddings while
// the inputs stay token ids (the baselines are then token ids too, see
// TokenReference). Attributions have the layer's shape and sum to about
// F(x) - F(b). Cost: 2 forward rows per example for the layer's values,
// then NSteps forward and backward rows per example (from the layer on).
type LayerIntegratedGradients struct {
	Net   *Net
	Layer string
	// AttributeToLayerInput attributes to the layer's input instead of its
	// output.
	AttributeToLayerInput bool
	// Method, NSteps and InternalBatchSize are as IntegratedGradients'.
	Method            string
	NSteps            int
	InternalBatchSize int
	// Local returns local attributions, not multiplied by the layer's
	// (inputs - baselines): Captum's multiply_by_inputs=False.
	Local bool
}

// Attribute computes layer integrated gradients; with o.Delta, also
// sum(attributions) - (F(x) - F(b)) per example.
func (l *LayerIntegratedGradients) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	name, err := l.Net.resolve(l.Layer, l.AttributeToLayerInput)
	if err != nil {
		return nil, err
	}
	p, err := newPath(ctx, "LayerIntegratedGradients", inputs, o, l.Method, cmp.Or(l.NSteps, defaultNSteps), l.InternalBatchSize)
	if err != nil {
		return nil, err
	}
	lx, err := l.Net.layerValue(ctx, name, inputs, o.Additional, p.n, 1, false)
	if err != nil {
		return nil, err
	}
	lb, err := l.Net.layerValue(ctx, name, p.base, o.Additional, p.n, 1, false)
	if err != nil {
		return nil, err
	}
	if lx.DType != tensor.Float32 {
		return nil, fmt.Errorf("attr: layer %q is %s; it must be a float tensor", name, lx.DType)
	}
	total := tensor.New(lx.Shape...)
	// The inputs still feed the parts of the network that do not go
	// through the layer.
	repeated := func(_, k int) []*tensor.Tensor { return repeatAll(inputs, k) }
	err = p.walk(ctx, l.Net, inputs, repeated, o, func(s0, k int, feeds map[string]*tensor.Tensor) error {
		scaled := interpolate(lb, lx, p.alphas[s0:s0+k])
		r, _, err := l.Net.runLayer(ctx, feeds, name, map[string]*tensor.Tensor{name: scaled}, o.Target.expand(p.n, k, false), nil)
		if err != nil {
			return err
		}
		addWeighted(total.F, r.grad.F, p.steps[s0:s0+k])
		r.pass.Release()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !l.Local {
		mulDiff(total.F, lx.F, lb.F)
	}
	return layerPathResult(ctx, l.Net, inputs, p, total, o)
}

// InternalInfluence integrates the gradient of the target with respect to
// a layer along the straight path from the baselines to the inputs (Leino
// et al., "Influence-Directed Explanations for Deep Convolutional
// Networks", 2018). Cost: NSteps forward and backward rows per example.
type InternalInfluence struct {
	Net   *Net
	Layer string
	// AttributeToLayerInput attributes to the layer's input instead of its
	// output.
	AttributeToLayerInput bool
	// Method, NSteps and InternalBatchSize are as IntegratedGradients'.
	Method            string
	NSteps            int
	InternalBatchSize int
}

// Attribute computes the internal influence of the layer.
func (l *InternalInfluence) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	var total *tensor.Tensor
	_, err := pathLayerGrads(ctx, "InternalInfluence", l.Net, l.Layer, l.AttributeToLayerInput, l.Method, l.NSteps, l.InternalBatchSize, false, inputs, o,
		func(n, k int, steps []float64, r *layerRun) {
			if total == nil {
				total = tensor.New(append([]int{n}, r.grad.Shape[1:]...)...)
			}
			addWeighted(total.F, r.grad.F, steps)
		})
	if err != nil {
		return nil, err
	}
	return &Result{Attributions: []*tensor.Tensor{total}}, nil
}

// LayerConductance is the flow of integrated gradients through a layer
// (Dhamdhere, Sundararajan and Yan, "How Important Is a Neuron?", ICLR
// 2019): with the layer's values L(a_k) at NSteps+1 points of the path,
// sum_k (L(a_{k+1}) - L(a_k)) * dF/dL(a_k), as Captum computes it (the
// quadrature weights are not used). The attributions sum to about F(x) -
// F(b). Cost: NSteps+1 forward and backward rows per example.
type LayerConductance struct {
	Net   *Net
	Layer string
	// AttributeToLayerInput attributes to the layer's input instead of its
	// output.
	AttributeToLayerInput bool
	// Method, NSteps and InternalBatchSize are as IntegratedGradients'
	// (the path has NSteps+1 points).
	Method            string
	NSteps            int
	InternalBatchSize int
}

// Attribute computes the layer conductance; with o.Delta, also
// sum(attributions) - (F(x) - F(b)) per example.
func (l *LayerConductance) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	var total *tensor.Tensor
	var prevVal, prevGrad []float32
	p, err := pathLayerGrads(ctx, "LayerConductance", l.Net, l.Layer, l.AttributeToLayerInput, l.Method, l.NSteps, l.InternalBatchSize, true, inputs, o,
		func(n, k int, _ []float64, r *layerRun) {
			m := r.value.Len() / k
			if total == nil {
				total = tensor.New(append([]int{n}, r.value.Shape[1:]...)...)
			}
			for s := 0; s < k; s++ {
				val := r.value.F[s*m : (s+1)*m]
				if prevVal != nil {
					for e := range total.F {
						total.F[e] += (val[e] - prevVal[e]) * prevGrad[e]
					}
				}
				prevVal = val
				prevGrad = r.grad.F[s*m : (s+1)*m]
			}
		})
	if err != nil {
		return nil, err
	}
	return layerPathResult(ctx, l.Net, inputs, p, total, o)
}

// pathLayerGrads runs the net on the points of the integration path from
// the baselines to the inputs (nsteps+1 points when plusOne, as
// LayerConductance) and calls f for each chunk of k points with their
// weights and the layer's values and gradients there. It returns the path.
func pathLayerGrads(ctx context.Context, methodName string, nt *Net, layer string, input bool, method string, nsteps, ibs int, plusOne bool, inputs []*tensor.Tensor, o Options, f func(n, k int, steps []float64, r *layerRun)) (*path, error) {
	name, err := nt.resolve(layer, input)
	if err != nil {
		return nil, err
	}
	points := cmp.Or(nsteps, defaultNSteps)
	if plusOne {
		points++
	}
	p, err := newPath(ctx, methodName, inputs, o, method, points, ibs)
	if err != nil {
		return nil, err
	}
	if err := floatInputs(inputs, "a layer path method"); err != nil {
		return nil, err
	}
	return p, p.walk(ctx, nt, inputs, p.along(inputs), o, func(s0, k int, feeds map[string]*tensor.Tensor) error {
		r, _, err := nt.runLayer(ctx, feeds, name, nil, o.Target.expand(p.n, k, false), nil)
		if err != nil {
			return err
		}
		f(p.n, k, p.steps[s0:s0+k], r)
		r.pass.Release()
		return nil
	})
}

// layerPathResult returns a layer attribution, with o.Delta its convergence
// delta: sum(attributions) - (F(x) - F(b)) per example.
func layerPathResult(ctx context.Context, nt *Net, inputs []*tensor.Tensor, p *path, total *tensor.Tensor, o Options) (*Result, error) {
	res := &Result{Attributions: []*tensor.Tensor{total}}
	if o.Delta {
		var err error
		if res.Delta, err = convergenceDelta(ctx, nt, inputs, p.base, res.Attributions, o); err != nil {
			return nil, err
		}
	}
	return res, nil
}
