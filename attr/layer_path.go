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

// InternalInfluence integrates the gradient of the target with respect to
// a layer along the straight path from the baselines to the inputs (Leino
// et al., "Influence-Directed Explanations for Deep Convolutional
// Networks", 2018). Cost: NSteps forward and backward rows per example.
type InternalInfluence struct {
	Net                   *Net
	Layer                 string
	AttributeToLayerInput bool
	Method                string
	NSteps                int
	InternalBatchSize     int
}

// Attribute computes the internal influence of the layer.
func (l *InternalInfluence) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	var total *tensor.Tensor
	err := pathLayerGrads(ctx, l.Net, l.Layer, l.AttributeToLayerInput, l.Method, l.NSteps, l.InternalBatchSize, false, inputs, o,
		func(n, k int, steps []float64, r *layerRun) {
			row := r.grad.Len() / (n * k)
			if total == nil {
				total = tensor.New(append([]int{n}, r.grad.Shape[1:]...)...)
			}
			for s := 0; s < k; s++ {
				w := float32(steps[s])
				for e := 0; e < n*row; e++ {
					total.F[e] += r.grad.F[s*n*row+e] * w
				}
			}
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
	Net                   *Net
	Layer                 string
	AttributeToLayerInput bool
	Method                string
	NSteps                int
	InternalBatchSize     int
}

// Attribute computes the layer conductance; with o.Delta, also
// sum(attributions) - (F(x) - F(b)) per example.
func (l *LayerConductance) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	var total *tensor.Tensor
	var prevVal, prevGrad []float32
	err := pathLayerGrads(ctx, l.Net, l.Layer, l.AttributeToLayerInput, l.Method, l.NSteps, l.InternalBatchSize, true, inputs, o,
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
	res := &Result{Attributions: []*tensor.Tensor{total}}
	if o.Delta {
		base, err := baselinesFor(o.Baselines, inputs)
		if err != nil {
			return nil, err
		}
		if res.Delta, err = layerDelta(ctx, l.Net, inputs, base, total, o); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// pathLayerGrads runs the net on the points of the integration path from
// the baselines to the inputs (nsteps+1 points when plusOne, as
// LayerConductance) and calls f for each batch of steps with their weights.
func pathLayerGrads(ctx context.Context, nt *Net, layer string, input bool, method string, nsteps, ibs int, plusOne bool, inputs []*tensor.Tensor, o Options, f func(n, k int, steps []float64, r *layerRun)) error {
	n, err := batchOf(inputs)
	if err != nil {
		return err
	}
	name, err := nt.resolve(layer, input)
	if err != nil {
		return err
	}
	if nsteps == 0 {
		nsteps = 50
	}
	points := nsteps
	if plusOne {
		points++
	}
	steps, alphas, err := stepsAndAlphas(method, points)
	if err != nil {
		return err
	}
	base, err := baselinesFor(o.Baselines, inputs)
	if err != nil {
		return err
	}
	per := stepsPerCall(ibs, n, points, inputs)
	for s0 := 0; s0 < points; s0 += per {
		s1 := min(points, s0+per)
		k := s1 - s0
		scaled := make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			if x.DType != tensor.Float32 {
				return fmt.Errorf("attr: input %d is %s; path methods need float inputs", i, x.DType)
			}
			scaled[i] = interpolate(base[i], x, alphas[s0:s1])
		}
		feeds, err := nt.feeds(scaled, o.Additional, n, k, false)
		if err != nil {
			return err
		}
		r, _, err := nt.runLayer(ctx, feeds, name, nil, o.Target.expand(n, k, false), nil)
		if err != nil {
			return err
		}
		f(n, k, steps[s0:s1], r)
		if o.Progress != nil {
			o.Progress(s1*n, points*n)
		}
	}
	return nil
}
