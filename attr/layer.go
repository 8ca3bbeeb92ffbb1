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

// layerFeeds checks the inputs, resolves a layer and builds the feeds of
// one pass over the batch.
func (nt *Net) layerFeeds(inputs []*tensor.Tensor, o Options, layer string, input bool) (int, string, map[string]*tensor.Tensor, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return 0, "", nil, err
	}
	name, err := nt.resolve(layer, input)
	if err != nil {
		return 0, "", nil, err
	}
	feeds, err := nt.feeds(inputs, o.Additional, n, 1, false)
	return n, name, feeds, err
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
	p, err := nt.forward(ctx, feeds, &engine.Options{Outputs: []string{nt.Output}, Taps: []string{layer}, Inject: inject, Record: true})
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
	seed, err := t.seed(out.Shape)
	if err != nil {
		return nil, nil, err
	}
	g, err := p.Backward(ctx, map[string]*tensor.Tensor{nt.Output: seed}, append([]string{layer}, wrt...), rules)
	if err != nil {
		return nil, nil, err
	}
	return &layerRun{out: out, value: val, grad: g[layer], pass: p}, g, nil
}

// layerValue evaluates the layer tensor on a batch.
func (nt *Net) layerValue(ctx context.Context, feeds map[string]*tensor.Tensor, layer string) (*tensor.Tensor, error) {
	p, err := nt.forward(ctx, feeds, &engine.Options{Outputs: []string{layer}})
	if err != nil {
		return nil, err
	}
	return p.Value(layer)
}

// LayerActivation returns a layer's value on the inputs. Cost: one forward
// row per example (up to the layer).
type LayerActivation struct {
	Net   *Net
	Layer string
	// AttributeToLayerInput returns the layer's input instead.
	AttributeToLayerInput bool
}

// Attribute returns the layer's activations.
func (l *LayerActivation) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	_, name, feeds, err := l.Net.layerFeeds(inputs, o, l.Layer, l.AttributeToLayerInput)
	if err != nil {
		return nil, err
	}
	v, err := l.Net.layerValue(ctx, feeds, name)
	if err != nil {
		return nil, err
	}
	return &Result{Attributions: []*tensor.Tensor{v.AsFloat32()}}, nil
}

// LayerGradientXActivation multiplies a layer's activations by the gradient
// of the target with respect to them. Cost: one forward and backward row
// per example.
type LayerGradientXActivation struct {
	Net                   *Net
	Layer                 string
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
	g := r.grad
	if !l.Local {
		for i := range g.F {
			g.F[i] *= r.value.F[i]
		}
	}
	return &Result{Attributions: []*tensor.Tensor{g}}, nil
}

// LayerGradCam weights a convolutional layer's channels by the spatial mean
// of the target's gradient and sums them (Selvaraju et al., "Grad-CAM",
// ICCV 2017). The map keeps the layer's resolution, [N, 1, H, W]; see
// Interpolate to bring it to the input's. Cost: one forward and backward
// row per example.
type LayerGradCam struct {
	Net                   *Net
	Layer                 string
	AttributeToLayerInput bool
	// ReluAttributions clamps the map at zero (Captum's relu_attributions).
	ReluAttributions bool
	// NoDimSummation keeps one map per channel (attr_dim_summation=False).
	NoDimSummation bool
}

// Attribute computes the Grad-CAM map.
func (l *LayerGradCam) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	if l.Net == nil || l.Net.Model == nil {
		return nil, errNoNet
	}
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	layer := l.Layer
	if layer == "" {
		c, err := l.Net.Model.LastConv()
		if err != nil {
			return nil, fmt.Errorf("attr: LayerGradCam: %w", err)
		}
		layer = c.Output
	}
	name, err := l.Net.resolve(layer, l.AttributeToLayerInput)
	if err != nil {
		return nil, err
	}
	feeds, err := l.Net.feeds(inputs, o.Additional, n, 1, false)
	if err != nil {
		return nil, err
	}
	r, _, err := l.Net.runLayer(ctx, feeds, name, nil, o.Target, nil)
	if err != nil {
		return nil, err
	}
	v, g := r.value, r.grad
	if v.Rank() < 2 {
		return nil, fmt.Errorf("attr: LayerGradCam needs a layer of shape [N, C, ...], %q has %v", name, v.Shape)
	}
	c := v.Shape[1]
	sp := v.Len() / (v.Shape[0] * c)
	shape := append([]int(nil), v.Shape...)
	if !l.NoDimSummation {
		shape[1] = 1
	}
	out := tensor.New(shape...)
	for b := 0; b < v.Shape[0]; b++ {
		for ch := 0; ch < c; ch++ {
			base := (b*c + ch) * sp
			var w float32
			for _, x := range g.F[base : base+sp] {
				w += x
			}
			w /= float32(sp)
			for s := 0; s < sp; s++ {
				if l.NoDimSummation {
					out.F[base+s] = w * v.F[base+s]
				} else {
					out.F[b*sp+s] += w * v.F[base+s]
				}
			}
		}
	}
	if l.ReluAttributions {
		for i, x := range out.F {
			if x < 0 {
				out.F[i] = 0
			}
		}
	}
	return &Result{Attributions: []*tensor.Tensor{out}}, nil
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

// layerDelta returns sum(layer attributions) - (F(x) - F(b)) per example.
func layerDelta(ctx context.Context, nt *Net, inputs, base []*tensor.Tensor, attr *tensor.Tensor, o Options) (*tensor.Tensor, error) {
	n := inputs[0].Shape[0]
	fx, err := targetValues(ctx, nt, inputs, o, n)
	if err != nil {
		return nil, err
	}
	fb, err := targetValues(ctx, nt, base, o, n)
	if err != nil {
		return nil, err
	}
	d := tensor.New(n)
	for r := 0; r < n; r++ {
		d.F[r] = rowSum([]*tensor.Tensor{attr}, r, n) - (fx[r] - fb[r])
	}
	return d, nil
}
