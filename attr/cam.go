package attr

import (
	"context"
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// The CAM family (GradCAM, HiResCAM, GradCAMElementWise, GradCAMPlusPlus,
// XGradCAM, LayerCAM, EigenCAM, EigenGradCAM, ScoreCAM, AblationCAM,
// FullGrad) follows pytorch-grad-cam, its names, options and numbers: each
// method computes one raw map per target layer ([N, h, w], the layer's
// resolution), and ScaleCAM turns the maps into the returned cam [N, H, W]
// at the input's size. Without a target (the zero Options.Target) and with
// an output [N, classes], each example's top class is explained, as
// pytorch-grad-cam does with targets=None. This file holds what they
// share: the layers, one pass for activations and gradients, the principal
// component projection (eigen_smooth) and the scaling.

// camLayers resolves a CAM method's target layers (module paths or tensor
// names): none means the model's last convolution, as LayerGradCam.
func (nt *Net) camLayers(method string, layers []string) ([]string, error) {
	if nt == nil || nt.Model == nil {
		return nil, errNoNet
	}
	if len(layers) == 0 {
		c, err := nt.Model.LastConv()
		if err != nil {
			return nil, fmt.Errorf("attr: %s: %w", method, err)
		}
		return []string{c.Output}, nil
	}
	names := make([]string, len(layers))
	for i, l := range layers {
		name, err := nt.Model.Resolve(l, false)
		if err != nil {
			return nil, fmt.Errorf("attr: %s: %w", method, err)
		}
		names[i] = name
	}
	return names, nil
}

// camInput checks the inputs of a CAM method and returns the batch size
// and the spatial size (H, W) of the first input, an image batch
// [N, C, H, W].
func camInput(nt *Net, method string, inputs []*tensor.Tensor) (n, h, w int, err error) {
	if n, err = nt.batch(inputs); err != nil {
		return 0, 0, 0, err
	}
	if err = floatInputs(inputs, method); err != nil {
		return 0, 0, 0, err
	}
	x := inputs[0]
	if x.Rank() != 4 {
		return 0, 0, 0, fmt.Errorf("attr: %s needs an image batch [N, C, H, W] as the first input, got shape %v", method, x.Shape)
	}
	return n, x.Shape[2], x.Shape[3], nil
}

// camRun is one pass of a CAM method over the batch: the explained output,
// the value of each target layer and, when asked for, the gradient of the
// target with respect to each (and to the tensors in wrt).
type camRun struct {
	out    *tensor.Tensor
	target Target           // the target, or the predicted classes when none was given
	acts   []*tensor.Tensor // [N, C, h, w] per layer
	raw    []*tensor.Tensor // the layers' values as the model has them (acts before Reshape)
	grads  []*tensor.Tensor // same shapes, nil without gradients
	wrt    map[string]*tensor.Tensor
}

// camPass evaluates the net once on the batch, tapping the layers, and
// differentiates the sum of the targets when grads is set.
func (nt *Net) camPass(ctx context.Context, method string, inputs []*tensor.Tensor, o Options, layers []string, grads bool, rs *TokenGrid, wrt ...string) (*camRun, error) {
	feeds, err := nt.feeds(inputs, o.Additional, inputs[0].Shape[0], 1, false)
	if err != nil {
		return nil, err
	}
	p, err := nt.forward(ctx, feeds, &engine.Options{Outputs: []string{nt.Output}, Taps: layers, Record: grads})
	if err != nil {
		return nil, err
	}
	r := &camRun{target: o.Target}
	if r.out, err = p.Value(nt.Output); err != nil {
		return nil, err
	}
	if o.Target.IsZero() && r.out.Rank() == 2 && r.out.Shape[1] > 1 {
		// pytorch-grad-cam explains each example's top class by default.
		classes, _, err := TopClasses(r.out.AsFloat32())
		if err != nil {
			return nil, err
		}
		r.target = Classes(classes...)
	}
	for _, l := range layers {
		v, err := p.Value(l)
		if err != nil {
			return nil, err
		}
		r.raw = append(r.raw, v)
		if rs != nil {
			if v, err = rs.apply(v); err != nil {
				return nil, fmt.Errorf("attr: %s: layer %q: %w", method, l, err)
			}
		}
		if v.DType != tensor.Float32 || v.Rank() != 4 {
			return nil, fmt.Errorf("attr: %s needs convolutional target layers [N, C, h, w] (or a Reshape of token layers); %q is %s%v", method, l, v.DType, v.Shape)
		}
		r.acts = append(r.acts, v)
	}
	if !grads {
		return r, nil
	}
	seed, err := r.target.seedOf(r.out)
	if err != nil {
		return nil, err
	}
	g, err := p.Backward(ctx, map[string]*tensor.Tensor{nt.Output: seed}, append(append([]string(nil), layers...), wrt...), nil)
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		gl := g[l]
		if rs != nil && gl != nil {
			if gl, err = rs.apply(gl); err != nil {
				return nil, err
			}
		}
		r.grads = append(r.grads, gl)
	}
	r.wrt = g
	return r, nil
}

// camReduce turns weighted activations x ([N, C, h*w], float64) into a
// layer's raw map [N, h, w]: the sum over channels, or with eigen the
// projection on the first principal component (see project).
func camReduce(x []float64, n, c, h, w int, eigen bool) *tensor.Tensor {
	sp := h * w
	out := tensor.New(n, h, w)
	plane := make([]float64, sp)
	for e := 0; e < n; e++ {
		xe := x[e*c*sp : (e+1)*c*sp]
		if eigen {
			project(xe, c, sp, plane)
		} else {
			clear(plane)
			for ch := 0; ch < c; ch++ {
				for s, v := range xe[ch*sp : (ch+1)*sp] {
					plane[s] += v
				}
			}
		}
		for s, v := range plane {
			out.F[e*sp+s] = float32(v)
		}
	}
	return out
}

// weighted returns the activations a [N, C, h, w] times per-channel
// weights wt [N*C], as float64 [N, C, h*w].
func weighted(a *tensor.Tensor, wt []float64) []float64 {
	n, c := a.Shape[0], a.Shape[1]
	sp := a.Len() / (n * c)
	x := make([]float64, a.Len())
	for p := 0; p < n*c; p++ {
		for s := p * sp; s < (p+1)*sp; s++ {
			x[s] = wt[p] * float64(a.F[s])
		}
	}
	return x
}

// project writes into out ([sp]) the projection of one example's
// activations x ([C, sp], channel-major) on their first principal
// component: the matrix M [sp, C] (a row per pixel) is centred by
// subtracting each channel's mean over the pixels, and the map is M v1,
// v1 its first right-singular vector (Eigen-CAM's 2D projection). The
// singular vector's sign is arbitrary; loupe picks the one whose
// components sum to a positive number (or, if they sum to zero, whose
// largest component is positive).
func project(x []float64, c, sp int, out []float64) {
	m := make([]float64, c*sp) // centred, channel-major
	for ch := 0; ch < c; ch++ {
		var mean float64
		for _, v := range x[ch*sp : (ch+1)*sp] {
			mean += v
		}
		mean /= float64(sp)
		for s := 0; s < sp; s++ {
			m[ch*sp+s] = x[ch*sp+s] - mean
		}
	}
	// The right-singular vectors of M are the eigenvectors of M^T M [C, C].
	gram := make([]float64, c*c)
	for i := 0; i < c; i++ {
		for j := i; j < c; j++ {
			var d float64
			for s := 0; s < sp; s++ {
				d += m[i*sp+s] * m[j*sp+s]
			}
			gram[i*c+j], gram[j*c+i] = d, d
		}
	}
	v1 := topEigenvector(gram, c)
	var sum, big float64
	for _, v := range v1 {
		sum += v
		if math.Abs(v) > math.Abs(big) {
			big = v
		}
	}
	if sum < 0 || (sum == 0 && big < 0) {
		for i := range v1 {
			v1[i] = -v1[i]
		}
	}
	for s := 0; s < sp; s++ {
		var d float64
		for ch := 0; ch < c; ch++ {
			d += m[ch*sp+s] * v1[ch]
		}
		out[s] = d
	}
}

// topEigenvector returns the unit eigenvector of the largest eigenvalue of
// a symmetric matrix a [n, n] (overwritten), by cyclic Jacobi rotations.
func topEigenvector(a []float64, n int) []float64 {
	v := make([]float64, n*n)
	for i := 0; i < n; i++ {
		v[i*n+i] = 1
	}
	for sweep := 0; sweep < 100; sweep++ {
		var off, diag float64
		for i := 0; i < n; i++ {
			diag += a[i*n+i] * a[i*n+i]
			for j := i + 1; j < n; j++ {
				off += a[i*n+j] * a[i*n+j]
			}
		}
		if off <= 1e-30*diag || off == 0 {
			break
		}
		for p := 0; p < n; p++ {
			for q := p + 1; q < n; q++ {
				apq := a[p*n+q]
				if apq == 0 {
					continue
				}
				theta := (a[q*n+q] - a[p*n+p]) / (2 * apq)
				t := 1 / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				if theta < 0 {
					t = -t
				}
				cs := 1 / math.Sqrt(t*t+1)
				sn := t * cs
				for k := 0; k < n; k++ { // columns p and q
					akp, akq := a[k*n+p], a[k*n+q]
					a[k*n+p], a[k*n+q] = cs*akp-sn*akq, sn*akp+cs*akq
				}
				for k := 0; k < n; k++ { // rows p and q
					apk, aqk := a[p*n+k], a[q*n+k]
					a[p*n+k], a[q*n+k] = cs*apk-sn*aqk, sn*apk+cs*aqk
				}
				for k := 0; k < n; k++ {
					vkp, vkq := v[k*n+p], v[k*n+q]
					v[k*n+p], v[k*n+q] = cs*vkp-sn*vkq, sn*vkp+cs*vkq
				}
			}
		}
	}
	best := 0
	for i := 1; i < n; i++ {
		if a[i*n+i] > a[best*n+best] {
			best = i
		}
	}
	out := make([]float64, n)
	for k := 0; k < n; k++ {
		out[k] = v[k*n+best]
	}
	return out
}

// minMax scales x in place as pytorch-grad-cam's scale_cam_image does:
// x - min(x), then divided by 1e-7 + its maximum.
func minMax(x []float64) {
	if len(x) == 0 {
		return
	}
	lo := x[0]
	for _, v := range x {
		lo = min(lo, v)
	}
	hi := 0.0
	for i, v := range x {
		x[i] = v - lo
		hi = max(hi, x[i])
	}
	d := 1e-7 + hi
	for i := range x {
		x[i] /= d
	}
}

// resize2D resizes a map src [h, w] to dst [oh, ow] bilinearly: with
// half-pixel centres (source coordinate (d+0.5)*in/out-0.5, clamped to the
// map; OpenCV's INTER_LINEAR and torch's align_corners=False), or with
// alignCorners the corners aligned (d*(in-1)/(out-1)).
func resize2D(src []float64, h, w int, dst []float64, oh, ow int, alignCorners bool) {
	if h == oh && w == ow {
		copy(dst, src)
		return
	}
	coord := func(d, in, out int) (int, int, float64) {
		var s float64
		switch {
		case alignCorners && out > 1:
			s = float64(d) * float64(in-1) / float64(out-1)
		case alignCorners:
			s = 0
		default:
			s = (float64(d)+0.5)*float64(in)/float64(out) - 0.5
		}
		s = min(max(s, 0), float64(in-1))
		i0 := int(s)
		return i0, min(i0+1, in-1), s - float64(i0)
	}
	xs0, xs1, fx := make([]int, ow), make([]int, ow), make([]float64, ow)
	for x := range ow {
		xs0[x], xs1[x], fx[x] = coord(x, w, ow)
	}
	for y := 0; y < oh; y++ {
		y0, y1, fy := coord(y, h, oh)
		r0, r1 := src[y0*w:(y0+1)*w], src[y1*w:(y1+1)*w]
		for x := 0; x < ow; x++ {
			a, b := r0[xs0[x]], r0[xs1[x]]
			c, d := r1[xs0[x]], r1[xs1[x]]
			dst[y*ow+x] = (1-fy)*((1-fx[x])*a+fx[x]*b) + fy*((1-fx[x])*c+fx[x]*d)
		}
	}
}

// ScaleCAM turns raw CAM maps, one per target layer ([N, h, w] each, at
// the layer's resolution), into pytorch-grad-cam's cam [N, H, W]: for each
// layer and example the map goes through a ReLU, a min-max scaling
// ((x - min) / (1e-7 + max of that)), and a bilinear resize to (H, W) with
// half-pixel centres (OpenCV's INTER_LINEAR); the layers' maps are then
// clamped at zero, averaged, and min-max scaled again.
func ScaleCAM(maps []*tensor.Tensor, h, w int) (*tensor.Tensor, error) {
	if len(maps) == 0 {
		return nil, fmt.Errorf("attr: ScaleCAM: no maps")
	}
	n := 0
	for i, m := range maps {
		if m == nil || m.DType != tensor.Float32 || m.Rank() != 3 || (i > 0 && m.Shape[0] != n) {
			return nil, fmt.Errorf("attr: ScaleCAM: map %d must be a float tensor [N, h, w] like the others", i)
		}
		n = m.Shape[0]
	}
	if h < 1 || w < 1 {
		return nil, fmt.Errorf("attr: ScaleCAM: size %dx%d", h, w)
	}
	sum := make([]float64, n*h*w)
	up := make([]float64, h*w)
	for _, m := range maps {
		mh, mw := m.Shape[1], m.Shape[2]
		a := make([]float64, mh*mw)
		for e := 0; e < n; e++ {
			for i, v := range m.F[e*mh*mw : (e+1)*mh*mw] {
				a[i] = max(float64(v), 0)
			}
			minMax(a)
			resize2D(a, mh, mw, up, h, w, false)
			for i, v := range up {
				sum[e*h*w+i] += max(v, 0)
			}
		}
	}
	out := tensor.New(n, h, w)
	for e := 0; e < n; e++ {
		c := sum[e*h*w : (e+1)*h*w]
		for i := range c {
			c[i] /= float64(len(maps))
		}
		minMax(c)
		for i, v := range c {
			out.F[e*h*w+i] = float32(v)
		}
	}
	return out, nil
}

// camResult scales the raw maps to the input's size and returns them with
// the cam.
func camResult(maps []*tensor.Tensor, h, w int) (*Result, error) {
	cam, err := ScaleCAM(maps, h, w)
	if err != nil {
		return nil, err
	}
	return &Result{Attributions: []*tensor.Tensor{cam}, Maps: maps}, nil
}
