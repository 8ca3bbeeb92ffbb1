package attr

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// layerModel runs a net with one layer tensor replaced: its Eval takes the
// layer's value (copies*n rows) followed by the additional inputs, and
// feeds the original inputs repeated to match.
type layerModel struct {
	nt     *Net
	layer  string
	inputs []*tensor.Tensor
	n      int
}

func (lm *layerModel) Eval(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
	v := in[0]
	k := v.Shape[0] / lm.n
	feeds, err := lm.nt.feeds(repeatAll(lm.inputs, k), in[1:], lm.n*k, 1, false)
	if err != nil {
		return nil, err
	}
	p, err := lm.nt.forward(ctx, feeds, &engine.Options{Outputs: []string{lm.nt.Output}, Inject: map[string]*tensor.Tensor{lm.layer: v}})
	if err != nil {
		return nil, err
	}
	return p.Value(lm.nt.Output)
}

// LayerFeatureAblation ablates the elements (or groups, LayerMask) of a
// layer's value, replacing them by a baseline (0 unless LayerBaselines),
// and attributes to them the change of the target output. Cost: 1 + F
// forward rows per example (from the layer on, after one full pass).
type LayerFeatureAblation struct {
	Net                   *Net
	Layer                 string
	AttributeToLayerInput bool
	// LayerMask groups the layer's elements; it broadcasts to the layer's shape.
	LayerMask *tensor.Tensor
	// LayerBaselines replaces ablated elements (nil: 0); a scalar, a row or
	// the layer's shape.
	LayerBaselines       *tensor.Tensor
	PerturbationsPerEval int
}

// Attribute computes layer ablation attributions.
func (l *LayerFeatureAblation) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	n, name, feeds, err := l.Net.layerFeeds(inputs, o, l.Layer, l.AttributeToLayerInput)
	if err != nil {
		return nil, err
	}
	v, err := l.Net.layerValue(ctx, feeds, name)
	if err != nil {
		return nil, err
	}
	fa := &FeatureAblation{Model: &layerModel{nt: l.Net, layer: name, inputs: inputs, n: n}, PerturbationsPerEval: l.PerturbationsPerEval}
	if l.LayerMask != nil {
		fa.FeatureMask = []*tensor.Tensor{l.LayerMask}
	}
	inner := o
	inner.Baselines = nil
	if l.LayerBaselines != nil {
		inner.Baselines = []*tensor.Tensor{l.LayerBaselines}
	}
	return fa.Attribute(ctx, []*tensor.Tensor{v}, inner)
}

// LayerLRP is the relevance LRP assigns to a layer's output (or input), as
// Captum's LayerLRP. The convergence delta is F(x) - sum(relevance).
type LayerLRP struct {
	Net                   *Net
	Layer                 string
	AttributeToLayerInput bool
	// Rules chooses each layer's rule, as LRP.Rules.
	Rules func(n *graph.Node) *LRPRule
}

// Attribute computes the layer's relevance.
func (l *LayerLRP) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	name, err := l.Net.resolve(l.Layer, l.AttributeToLayerInput)
	if err != nil {
		return nil, err
	}
	lrp := &LRP{Net: l.Net, Rules: l.Rules}
	rel, out, err := lrp.relevance(ctx, inputs, o, []string{name})
	if err != nil {
		return nil, err
	}
	res := &Result{Attributions: rel}
	if o.Delta {
		res.Delta = tensor.New(n)
		for r := 0; r < n; r++ {
			res.Delta.F[r] = out[r] - rowSum(rel, r, n)
		}
	}
	return res, nil
}

// GuidedGradCam multiplies guided backpropagation by the Grad-CAM map of a
// layer (with ReLU), upsampled to each input's spatial size by nearest
// neighbor (Selvaraju et al., ICCV 2017). Inputs without spatial
// dimensions get no attribution (nil). Cost: two forward and backward rows
// per example.
type GuidedGradCam struct {
	Net                   *Net
	Layer                 string
	AttributeToLayerInput bool
}

// Attribute computes guided Grad-CAM.
func (g *GuidedGradCam) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	cam, err := (&LayerGradCam{Net: g.Net, Layer: g.Layer, AttributeToLayerInput: g.AttributeToLayerInput, ReluAttributions: true}).Attribute(ctx, inputs, o)
	if err != nil {
		return nil, err
	}
	gbp, err := (&GuidedBackprop{Net: g.Net}).Attribute(ctx, inputs, o)
	if err != nil {
		return nil, err
	}
	res := &Result{Attributions: make([]*tensor.Tensor, len(inputs))}
	for i, x := range inputs {
		if x.Rank() < 3 {
			continue
		}
		up, err := Interpolate(cam.Attributions[0], x.Shape[2:], "nearest")
		if err != nil {
			return nil, fmt.Errorf("attr: GuidedGradCam input %d: %w", i, err)
		}
		a := gbp.Attributions[i]
		c := x.Shape[1]
		sp := x.Len() / (x.Shape[0] * c)
		for b := 0; b < x.Shape[0]; b++ {
			for ch := 0; ch < c; ch++ {
				for s := 0; s < sp; s++ {
					a.F[(b*c+ch)*sp+s] *= up.F[b*sp+s]
				}
			}
		}
		res.Attributions[i] = a
	}
	return res, nil
}

// Interpolate resizes a layer attribution [N, C, h, w] (or [N, C, l]) to
// the spatial size dims, as torch.nn.functional.interpolate with mode
// "nearest" (source index floor(dst*in/out)), "bilinear" (or "linear";
// align_corners false) or "area" (adaptive average pooling). This is
// Captum's LayerAttribution.interpolate.
func Interpolate(t *tensor.Tensor, dims []int, mode string) (*tensor.Tensor, error) {
	if t.DType != tensor.Float32 || t.Rank() < 3 || t.Rank() > 4 || len(dims) != t.Rank()-2 {
		return nil, fmt.Errorf("attr: interpolate needs a float tensor [N, C, h(, w)] and as many sizes, got %s%v and %v", t.DType, t.Shape, dims)
	}
	h, w, oh, ow := 1, t.Shape[t.Rank()-1], 1, dims[len(dims)-1]
	if t.Rank() == 4 {
		h, oh = t.Shape[2], dims[0]
	}
	if oh < 1 || ow < 1 {
		return nil, fmt.Errorf("attr: interpolate to size %v", dims)
	}
	shape := append(append([]int(nil), t.Shape[:2]...), dims...)
	out := tensor.New(shape...)
	planes := t.Shape[0] * t.Shape[1]
	switch mode {
	case "nearest":
		sh, sw := float32(h)/float32(oh), float32(w)/float32(ow)
		for p := 0; p < planes; p++ {
			for y := 0; y < oh; y++ {
				iy := min(int(float32(y)*sh), h-1)
				for x := 0; x < ow; x++ {
					ix := min(int(float32(x)*sw), w-1)
					out.F[(p*oh+y)*ow+x] = t.F[(p*h+iy)*w+ix]
				}
			}
		}
	case "bilinear", "linear":
		sh, sw := float32(h)/float32(oh), float32(w)/float32(ow)
		src := func(d int, scale float32, in int) (int, int, float32) {
			s := (float32(d)+0.5)*scale - 0.5
			if s < 0 {
				s = 0
			}
			i0 := int(s)
			i1 := min(i0+1, in-1)
			return i0, i1, s - float32(i0)
		}
		for p := 0; p < planes; p++ {
			for y := 0; y < oh; y++ {
				y0, y1, ly := src(y, sh, h)
				for x := 0; x < ow; x++ {
					x0, x1, lx := src(x, sw, w)
					at := func(yy, xx int) float32 { return t.F[(p*h+yy)*w+xx] }
					out.F[(p*oh+y)*ow+x] = (1-ly)*((1-lx)*at(y0, x0)+lx*at(y0, x1)) + ly*((1-lx)*at(y1, x0)+lx*at(y1, x1))
				}
			}
		}
	case "area":
		for p := 0; p < planes; p++ {
			for y := 0; y < oh; y++ {
				y0, y1 := y*h/oh, ((y+1)*h+oh-1)/oh
				for x := 0; x < ow; x++ {
					x0, x1 := x*w/ow, ((x+1)*w+ow-1)/ow
					var s float32
					for yy := y0; yy < y1; yy++ {
						for xx := x0; xx < x1; xx++ {
							s += t.F[(p*h+yy)*w+xx]
						}
					}
					out.F[(p*oh+y)*ow+x] = s / float32((y1-y0)*(x1-x0))
				}
			}
		}
	default:
		return nil, fmt.Errorf("attr: unknown interpolation mode %q (want nearest, bilinear or area)", mode)
	}
	return out, nil
}
