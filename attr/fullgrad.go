package attr

import (
	"context"
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// FullGrad sums the input-gradient map and the bias-gradient maps of every
// layer with a bias (Srinivas and Fleuret, "Full-Gradient Representation
// for Neural Network Visualization", NeurIPS 2019), as pytorch-grad-cam's
// FullGrad: with G_x the gradient of the target with respect to the first
// input x and G_L with respect to the output of each biased layer L
// (convolutions with a bias and batch normalizations, see BiasLayers),
//
//	cam_unscaled = sum_c R(|G_x * x|_c) + sum_L sum_c R(|b_c * G_L,c|)
//
// where R min-max scales each example's channel map and resizes it to the
// input's size (bilinear, half-pixel centres); the cam is cam_unscaled
// min-max scaled per example. Result.Maps holds cam_unscaled [N, H, W].
// Cost: one forward and backward row per example.
type FullGrad struct {
	Net *Net
}

// BiasLayer is a layer whose bias FullGrad uses.
type BiasLayer struct {
	Node   string    // the ONNX node
	OpType string    // Conv or BatchNormalization
	Tensor string    // the tensor it computes
	Bias   []float32 // one per channel; a batch norm's is B - mean*scale/sqrt(var+epsilon)
}

// BiasLayers lists, in the model's order, the convolutions with a bias
// and the batch normalizations, with their biases: the layers FullGrad
// uses (pytorch-grad-cam's Conv2d and BatchNorm2d modules with a bias).
func (f *FullGrad) BiasLayers() ([]BiasLayer, error) {
	if f.Net == nil || f.Net.Model == nil {
		return nil, errNoNet
	}
	g := f.Net.Model.Graph()
	consts := map[string]*tensor.Tensor{}
	for name, t := range g.Initializers {
		consts[name] = t
	}
	for _, n := range g.Nodes {
		if n.OpType == "Constant" && len(n.Outputs) == 1 && n.Has("value") {
			consts[n.Outputs[0]] = n.Tensor("value")
		}
	}
	constant := func(n *graph.Node, i int) ([]float32, error) {
		if i >= len(n.Inputs) || n.Inputs[i] == "" {
			return nil, nil
		}
		t, ok := consts[n.Inputs[i]]
		if !ok || t == nil {
			return nil, fmt.Errorf("attr: FullGrad: input %d of node %q (%s) is not a constant", i, n.Name, n.OpType)
		}
		return t.AsFloat32().F, nil
	}
	var out []BiasLayer
	for _, n := range g.Nodes {
		if len(n.Outputs) == 0 {
			continue
		}
		var bias []float32
		switch n.OpType {
		case "Conv":
			b, err := constant(n, 2)
			if err != nil {
				return nil, err
			}
			bias = b
		case "BatchNormalization":
			var p [4][]float32
			for i := range p {
				v, err := constant(n, i+1)
				if err != nil {
					return nil, err
				}
				p[i] = v
			}
			scale, b, mean, v := p[0], p[1], p[2], p[3]
			if b == nil || len(scale) != len(b) || len(mean) != len(b) || len(v) != len(b) {
				return nil, fmt.Errorf("attr: FullGrad: batch normalization %q lacks constant parameters of one size", n.Name)
			}
			eps := float64(n.Float("epsilon", 1e-5))
			bias = make([]float32, len(b))
			for c := range bias {
				bias[c] = float32(float64(b[c]) - float64(mean[c])*float64(scale[c])/math.Sqrt(float64(v[c])+eps))
			}
		}
		if bias != nil {
			out = append(out, BiasLayer{Node: n.Name, OpType: n.OpType, Tensor: n.Outputs[0], Bias: bias})
		}
	}
	return out, nil
}

// Attribute computes the FullGrad map.
func (f *FullGrad) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	const method = "FullGrad"
	n, h, w, err := camInput(f.Net, method, inputs)
	if err != nil {
		return nil, err
	}
	layers, err := f.BiasLayers()
	if err != nil {
		return nil, err
	}
	x := f.Net.Inputs[0]
	wrt := []string{x}
	for _, l := range layers {
		wrt = append(wrt, l.Tensor)
	}
	r, err := f.Net.camPass(ctx, method, inputs, o, nil, true, nil, wrt...)
	if err != nil {
		return nil, err
	}
	sum := make([]float64, n*h*w)
	// add adds R(|scale_c * g_c|) of a gradient g [N, C, h, w] to sum.
	// A tensor the target does not depend on has no gradient and adds
	// nothing (its scaled maps would be zeros).
	add := func(name string, g *tensor.Tensor, scale func(e, c, s int) float64) error {
		if g == nil {
			return nil
		}
		if g.Rank() != 4 || g.Shape[0] != n {
			return fmt.Errorf("attr: %s: the gradient of %q is not a batch of maps [N, C, h, w]", method, name)
		}
		c, gh, gw := g.Shape[1], g.Shape[2], g.Shape[3]
		sp := gh * gw
		plane, up := make([]float64, sp), make([]float64, h*w)
		for e := 0; e < n; e++ {
			for ch := 0; ch < c; ch++ {
				base := (e*c + ch) * sp
				for s := range plane {
					plane[s] = math.Abs(scale(e, ch, s) * float64(g.F[base+s]))
				}
				minMax(plane)
				resize2D(plane, gh, gw, up, h, w, false)
				for s, v := range up {
					sum[e*h*w+s] += v
				}
			}
		}
		return nil
	}
	in := inputs[0]
	inC := in.Shape[1]
	if err := add(x, r.wrt[x], func(e, c, s int) float64 { return float64(in.F[(e*inC+c)*h*w+s]) }); err != nil {
		return nil, err
	}
	for _, l := range layers {
		g := r.wrt[l.Tensor]
		if g != nil && g.Rank() == 4 && g.Shape[1] != len(l.Bias) {
			return nil, fmt.Errorf("attr: %s: layer %q has %d channels and %d biases", method, l.Node, g.Shape[1], len(l.Bias))
		}
		if err := add(l.Tensor, g, func(_, c, _ int) float64 { return float64(l.Bias[c]) }); err != nil {
			return nil, err
		}
	}
	unscaled, cam := tensor.New(n, h, w), tensor.New(n, h, w)
	for e := 0; e < n; e++ {
		c := sum[e*h*w : (e+1)*h*w]
		for i, v := range c {
			unscaled.F[e*h*w+i] = float32(v)
		}
		minMax(c)
		for i, v := range c {
			cam.F[e*h*w+i] = float32(v)
		}
	}
	if o.Progress != nil {
		o.Progress(n, n)
	}
	return &Result{Attributions: []*tensor.Tensor{cam}, Maps: []*tensor.Tensor{unscaled}}, nil
}
