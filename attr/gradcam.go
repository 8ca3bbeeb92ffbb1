package attr

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// LayerGradCam weights a convolutional layer's channels by the spatial mean
// of the target's gradient and sums them (Selvaraju et al., "Grad-CAM",
// ICCV 2017). The map keeps the layer's resolution, [N, 1, H, W]; see
// Interpolate to bring it to the input's. Cost: one forward and backward
// row per example.
type LayerGradCam struct {
	Net *Net
	// Layer is the convolutional layer; "" means the model's last Conv.
	Layer string
	// AttributeToLayerInput attributes to the layer's input instead of its
	// output.
	AttributeToLayerInput bool
	// ReluAttributions clamps the map at zero (Captum's relu_attributions).
	ReluAttributions bool
	// NoDimSummation keeps one map per channel (attr_dim_summation=False).
	NoDimSummation bool
}

// Attribute computes the Grad-CAM map.
func (l *LayerGradCam) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	layer := l.Layer
	if layer == "" && l.Net != nil && l.Net.Model != nil {
		c, err := l.Net.Model.LastConv()
		if err != nil {
			return nil, fmt.Errorf("attr: LayerGradCam: %w", err)
		}
		layer = c.Output
	}
	_, name, feeds, err := l.Net.layerFeeds(inputs, o, layer, l.AttributeToLayerInput)
	if err != nil {
		return nil, err
	}
	r, _, err := l.Net.runLayer(ctx, feeds, name, nil, o.Target, nil)
	if err != nil {
		return nil, err
	}
	v, g := r.value, r.grad
	r.pass.Release() // the layer's value and gradient are kept
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

// GuidedGradCam multiplies guided backpropagation by the Grad-CAM map of a
// layer (with ReLU), upsampled to each input's spatial size by nearest
// neighbor (Selvaraju et al., ICCV 2017). Inputs without spatial
// dimensions get no attribution (nil). Cost: two forward and backward rows
// per example.
type GuidedGradCam struct {
	Net *Net
	// Layer and AttributeToLayerInput are as LayerGradCam's.
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
