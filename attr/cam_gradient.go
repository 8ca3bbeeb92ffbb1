package attr

import (
	"context"

	"github.com/loupe-ml/loupe/tensor"
)

// The gradient CAMs weigh a layer's activations A [N, C, h, w] with the
// gradient G of the target with respect to them, in one forward and
// backward pass over the batch, and sum the weighted activations over the
// channels (or, with EigenSmooth, project them on their first principal
// component). Each returns pytorch-grad-cam's cam [N, H, W] (see ScaleCAM)
// as its one attribution and the raw map of each layer in Result.Maps.

// GradCAM weighs each channel of the target layers by the spatial mean of
// the gradient: cam_layer = sum_c mean_hw(G_c) A_c (Selvaraju et al.,
// "Grad-CAM", ICCV 2017), pytorch-grad-cam's GradCAM. Cost: one forward
// and backward row per example.
type GradCAM struct {
	Net *Net
	// Layers are the target layers (module paths or tensor names); their
	// scaled maps are averaged. None: the model's last convolution.
	Layers []string
	// EigenSmooth replaces the sum over channels by the projection of the
	// weighted activations on their first principal component.
	EigenSmooth bool
	// Reshape turns token layers [N, T, C] into the [N, C, h, w] grid
	// the map needs (pytorch-grad-cam's reshape_transform); nil for
	// convolutional layers.
	Reshape *TokenGrid
}

// Attribute computes the Grad-CAM map.
func (m *GradCAM) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return gradientCAM(ctx, m.Net, "GradCAM", m.Layers, m.Reshape, inputs, o, m.EigenSmooth, true, func(a, g []float32, x []float64) {
		var wt float64
		for _, v := range g {
			wt += float64(v)
		}
		wt /= float64(len(g))
		for s, v := range a {
			x[s] = wt * float64(v)
		}
	})
}

// HiResCAM multiplies the activations by the gradient element by element
// before summing over channels: cam_layer = sum_c G_c * A_c (Draelos and
// Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of
// convolutional neural networks", 2020). Cost: one forward and backward
// row per example.
type HiResCAM struct {
	Net         *Net
	Layers      []string   // as GradCAM's
	EigenSmooth bool       // as GradCAM's
	Reshape     *TokenGrid // as GradCAM's
}

// Attribute computes the HiResCAM map.
func (m *HiResCAM) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return gradientCAM(ctx, m.Net, "HiResCAM", m.Layers, m.Reshape, inputs, o, m.EigenSmooth, true, func(a, g []float32, x []float64) {
		for s, v := range a {
			x[s] = float64(g[s]) * float64(v)
		}
	})
}

// GradCAMElementWise sums the positive part of the elementwise product of
// gradient and activations: cam_layer = sum_c relu(G_c * A_c)
// (pytorch-grad-cam's variant of HiResCAM, Draelos and Carin 2020). Cost:
// one forward and backward row per example.
type GradCAMElementWise struct {
	Net         *Net
	Layers      []string   // as GradCAM's
	EigenSmooth bool       // as GradCAM's
	Reshape     *TokenGrid // as GradCAM's
}

// Attribute computes the element-wise Grad-CAM map.
func (m *GradCAMElementWise) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return gradientCAM(ctx, m.Net, "GradCAMElementWise", m.Layers, m.Reshape, inputs, o, m.EigenSmooth, true, func(a, g []float32, x []float64) {
		for s, v := range a {
			x[s] = max(float64(g[s])*float64(v), 0)
		}
	})
}

// GradCAMPlusPlus weighs each channel by the positive gradients, each
// scaled by alpha = G^2 / (2 G^2 + sum_hw(A) G^3 + 1e-6) (0 where G is
// 0): w_c = sum_hw(relu(G) alpha), cam_layer = sum_c w_c A_c
// (Chattopadhay et al., "Grad-CAM++", WACV 2018). Cost: one forward and
// backward row per example.
type GradCAMPlusPlus struct {
	Net         *Net
	Layers      []string   // as GradCAM's
	EigenSmooth bool       // as GradCAM's
	Reshape     *TokenGrid // as GradCAM's
}

// Attribute computes the Grad-CAM++ map.
func (m *GradCAMPlusPlus) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return gradientCAM(ctx, m.Net, "GradCAMPlusPlus", m.Layers, m.Reshape, inputs, o, m.EigenSmooth, true, func(a, g []float32, x []float64) {
		var sumA, wt float64
		for _, v := range a {
			sumA += float64(v)
		}
		for _, gv := range g {
			if gv == 0 {
				continue
			}
			g1 := float64(gv)
			g2 := g1 * g1
			alpha := g2 / (2*g2 + sumA*g2*g1 + 1e-6)
			wt += max(g1, 0) * alpha
		}
		for s, v := range a {
			x[s] = wt * float64(v)
		}
	})
}

// XGradCAM weighs each channel by the gradient times the activations
// normalised by their sum: w_c = sum_hw(G_c A_c) / (sum_hw(A_c) + 1e-7),
// cam_layer = sum_c w_c A_c (Fu et al., "Axiom-based Grad-CAM", BMVC
// 2020). Cost: one forward and backward row per example.
type XGradCAM struct {
	Net         *Net
	Layers      []string   // as GradCAM's
	EigenSmooth bool       // as GradCAM's
	Reshape     *TokenGrid // as GradCAM's
}

// Attribute computes the XGrad-CAM map.
func (m *XGradCAM) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return gradientCAM(ctx, m.Net, "XGradCAM", m.Layers, m.Reshape, inputs, o, m.EigenSmooth, true, func(a, g []float32, x []float64) {
		var sumA, wt float64
		for _, v := range a {
			sumA += float64(v)
		}
		for s, v := range a {
			wt += float64(g[s]) * float64(v) / (sumA + 1e-7)
		}
		for s, v := range a {
			x[s] = wt * float64(v)
		}
	})
}

// LayerCAM weighs each activation by its own positive gradient:
// cam_layer = sum_c relu(G_c) * A_c (Jiang et al., "LayerCAM", IEEE TIP
// 2021). Cost: one forward and backward row per example.
type LayerCAM struct {
	Net         *Net
	Layers      []string   // as GradCAM's
	EigenSmooth bool       // as GradCAM's
	Reshape     *TokenGrid // as GradCAM's
}

// Attribute computes the LayerCAM map.
func (m *LayerCAM) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return gradientCAM(ctx, m.Net, "LayerCAM", m.Layers, m.Reshape, inputs, o, m.EigenSmooth, true, func(a, g []float32, x []float64) {
		for s, v := range a {
			x[s] = max(float64(g[s]), 0) * float64(v)
		}
	})
}

// EigenCAM projects the activations of the target layers on their first
// principal component (pixels as samples, channels as features, centred):
// no gradients, so the map does not depend on the target (Muhammad and
// Yeasin, "Eigen-CAM", IJCNN 2020). The component's sign is arbitrary
// (pytorch-grad-cam gets LAPACK's); loupe takes the one whose entries sum
// to a positive number. Cost: one forward row per example.
type EigenCAM struct {
	Net     *Net
	Layers  []string   // as GradCAM's
	Reshape *TokenGrid // as GradCAM's
}

// Attribute computes the Eigen-CAM map; the target is not used.
func (m *EigenCAM) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return gradientCAM(ctx, m.Net, "EigenCAM", m.Layers, m.Reshape, inputs, o, true, false, func(a, _ []float32, x []float64) {
		for s, v := range a {
			x[s] = float64(v)
		}
	})
}

// EigenGradCAM projects the gradient times the activations, G * A, on
// their first principal component, as EigenCAM does the activations
// (pytorch-grad-cam's EigenGradCAM, after Muhammad and Yeasin 2020).
// Cost: one forward and backward row per example.
type EigenGradCAM struct {
	Net     *Net
	Layers  []string   // as GradCAM's
	Reshape *TokenGrid // as GradCAM's
}

// Attribute computes the Eigen-Grad-CAM map.
func (m *EigenGradCAM) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	return gradientCAM(ctx, m.Net, "EigenGradCAM", m.Layers, m.Reshape, inputs, o, true, true, func(a, g []float32, x []float64) {
		for s, v := range a {
			x[s] = float64(g[s]) * float64(v)
		}
	})
}

// gradientCAM runs a CAM of the activations (and gradients, with grads)
// of the target layers: one pass over the batch, then for each layer,
// example and channel weigh turns the channel's activations a and
// gradients g (nil without grads) into the weighted activations x, which
// are summed over the channels or, with eigen, projected on their first
// principal component.
func gradientCAM(ctx context.Context, nt *Net, method string, layers []string, rs *TokenGrid, inputs []*tensor.Tensor, o Options, eigen, grads bool, weigh func(a, g []float32, x []float64)) (*Result, error) {
	n, h, w, err := camInput(nt, method, inputs)
	if err != nil {
		return nil, err
	}
	names, err := nt.camLayers(method, layers)
	if err != nil {
		return nil, err
	}
	r, err := nt.camPass(ctx, method, inputs, o, names, grads, rs)
	if err != nil {
		return nil, err
	}
	maps := make([]*tensor.Tensor, len(names))
	for i, a := range r.acts {
		c, lh, lw := a.Shape[1], a.Shape[2], a.Shape[3]
		sp := lh * lw
		var gt *tensor.Tensor
		if grads {
			if gt = r.grads[i]; gt == nil {
				gt = tensor.New(a.Shape...)
			}
		}
		x := make([]float64, a.Len())
		for p := 0; p < n*c; p++ {
			var g []float32
			if gt != nil {
				g = gt.F[p*sp : (p+1)*sp]
			}
			weigh(a.F[p*sp:(p+1)*sp], g, x[p*sp:(p+1)*sp])
		}
		maps[i] = camReduce(x, n, c, lh, lw, eigen)
	}
	if o.Progress != nil {
		o.Progress(n, n)
	}
	return camResult(maps, h, w)
}
