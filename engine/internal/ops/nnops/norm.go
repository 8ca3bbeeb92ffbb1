package nnops

import (
	"fmt"
	"math"

	"github.com/viterin/vek/vek32"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// affine sets dst = src*a + b, vectorized (the same two roundings as the
// scalar expression).
func affine(dst, src []float32, a, b float32) {
	vek32.MulNumber_Into(dst, src, a)
	vek32.AddNumber_Inplace(dst, b)
}

// batchNorm is BatchNormalization in inference mode: y = (x - mean) /
// sqrt(var + epsilon) * scale + B per channel.
type batchNorm struct{ eps float64 }

func newBatchNorm(n *graph.Node, opset int) (op.Kernel, error) {
	if n.Int("training_mode", 0) != 0 {
		return nil, op.Errorf(n, "training_mode %d is not supported (only inference)", n.Int("training_mode", 0))
	}
	if n.Int("spatial", 1) != 1 {
		return nil, op.Errorf(n, "spatial %d is not supported", n.Int("spatial", 1))
	}
	if n.Int("is_test", 1) == 0 && opset < 7 {
		return nil, op.Errorf(n, "is_test 0 is not supported (only inference)")
	}
	for i, o := range n.Outputs {
		if i > 0 && o != "" {
			return nil, op.Errorf(n, "output %d (%s) is only produced in training mode, which is not supported", i, o)
		}
	}
	return &batchNorm{eps: float64(n.Float("epsilon", 1e-5))}, nil
}

// channels checks x ([N, C, ...]) and the C-vectors in[from:to].
func channels(in []*tensor.Tensor, from, to int) (n, c, plane int, err error) {
	x, err := op.FloatArg(in, 0)
	if err != nil {
		return 0, 0, 0, err
	}
	if x.Rank() < 2 {
		return 0, 0, 0, fmt.Errorf("input 0 has shape %v, want rank >= 2 (N, C, ...)", x.Shape)
	}
	n, c = x.Shape[0], x.Shape[1]
	plane = tensor.Size(x.Shape[2:])
	for i := from; i < to; i++ {
		t, err := op.FloatArg(in, i)
		if err != nil {
			return 0, 0, 0, err
		}
		if t.Rank() != 1 || t.Shape[0] != c {
			return 0, 0, 0, fmt.Errorf("input %d has shape %v, want [%d] (the channels of input 0, shape %v)", i, t.Shape, c, x.Shape)
		}
	}
	return n, c, plane, nil
}

// normGrads starts a normalization's Backward: zero gradients for those of
// its first count inputs (x and the C-vectors) that need asks for, and the
// output gradient, nil when absent.
func normGrads(in, gout []*tensor.Tensor, need []bool, count int) (grads []*tensor.Tensor, gy *tensor.Tensor, err error) {
	grads = make([]*tensor.Tensor, len(in))
	for i := 0; i < count; i++ {
		if op.Needs(need, i) {
			grads[i] = tensor.New(in[i].Shape...)
		}
	}
	if gy, err = op.ShapedGrad(gout, 0, in[0].Shape); err != nil {
		return nil, nil, err
	}
	return grads, gy, nil
}

// coefs returns a, b with y = x*a + b per channel, and 1/sqrt(var+eps).
func (k *batchNorm) coefs(in []*tensor.Tensor, c int) (a, b []float32, inv []float64) {
	a, b, inv = make([]float32, c), make([]float32, c), make([]float64, c)
	scale, bias, mean, vr := in[1].F, in[2].F, in[3].F, in[4].F
	for i := 0; i < c; i++ {
		inv[i] = 1 / math.Sqrt(float64(vr[i])+k.eps)
		ai := float64(scale[i]) * inv[i]
		a[i] = float32(ai)
		b[i] = float32(float64(bias[i]) - float64(mean[i])*ai)
	}
	return
}

func (k *batchNorm) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return k.ForwardAlloc(in, nil)
}

// ForwardAlloc is Forward with the output from alloc (nil: tensor.New).
func (k *batchNorm) ForwardAlloc(in []*tensor.Tensor, alloc op.Alloc) ([]*tensor.Tensor, error) {
	n, c, plane, err := channels(in, 1, 5)
	if err != nil {
		return nil, err
	}
	x := in[0]
	y := op.NewOr(alloc, x.Shape...)
	a, b, _ := k.coefs(in, c)
	par.Chunks(n*c, par.ChunkCount(n*c, plane), func(_, lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			affine(y.F[nc*plane:(nc+1)*plane], x.F[nc*plane:(nc+1)*plane], a[nc%c], b[nc%c])
		}
	})
	return []*tensor.Tensor{y}, nil
}

func (k *batchNorm) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	n, c, plane, err := channels(in, 1, 5)
	if err != nil {
		return nil, err
	}
	x := in[0]
	grads, gy, err := normGrads(in, gout, need, 5)
	if err != nil || gy == nil {
		return grads, err
	}
	a, _, inv := k.coefs(in, c)
	if op.Needs(need, 0) {
		gx := grads[0]
		par.Chunks(n*c, par.ChunkCount(n*c, plane), func(_, lo, hi int) {
			for nc := lo; nc < hi; nc++ {
				vek32.MulNumber_Into(gx.F[nc*plane:(nc+1)*plane], gy.F[nc*plane:(nc+1)*plane], a[nc%c])
			}
		})
	}
	if !op.Needs(need, 1) && !op.Needs(need, 2) && !op.Needs(need, 3) && !op.Needs(need, 4) {
		return grads, nil
	}
	// Per channel: s1 = sum(gy), s2 = sum(gy * (x - mean)).
	s1, s2 := make([]float64, c), make([]float64, c)
	mean := in[3].F
	par.Chunks(c, par.ChunkCount(c, 2*n*plane), func(_, lo, hi int) {
		for ci := lo; ci < hi; ci++ {
			m := mean[ci]
			for ni := 0; ni < n; ni++ {
				o := (ni*c + ci) * plane
				g, xs := gy.F[o:o+plane], x.F[o:o+plane]
				var t1, t2 float32
				for i, v := range g {
					t1 += v
					t2 += v * (xs[i] - m)
				}
				s1[ci] += float64(t1)
				s2[ci] += float64(t2)
			}
		}
	})
	scale := in[1].F
	for ci := 0; ci < c; ci++ {
		if op.Needs(need, 1) {
			grads[1].F[ci] = float32(s2[ci] * inv[ci])
		}
		if op.Needs(need, 2) {
			grads[2].F[ci] = float32(s1[ci])
		}
		if op.Needs(need, 3) {
			grads[3].F[ci] = float32(-s1[ci] * float64(scale[ci]) * inv[ci])
		}
		if op.Needs(need, 4) {
			grads[4].F[ci] = float32(-0.5 * s2[ci] * float64(scale[ci]) * inv[ci] * inv[ci] * inv[ci])
		}
	}
	return grads, nil
}

// instanceNorm is InstanceNormalization: each (n, c) plane normalized by
// its own mean and variance, then scaled and shifted per channel.
type instanceNorm struct{ eps float64 }

func newInstanceNorm(n *graph.Node, opset int) (op.Kernel, error) {
	return &instanceNorm{eps: float64(n.Float("epsilon", 1e-5))}, nil
}

// channels checks x (input 0, [N, C, spatial dims]) and the C-vectors
// scale and B.
func (k *instanceNorm) channels(in []*tensor.Tensor) (n, c, plane int, err error) {
	if n, c, plane, err = channels(in, 1, 3); err != nil {
		return 0, 0, 0, err
	}
	if x := in[0]; x.Rank() < 3 {
		return 0, 0, 0, fmt.Errorf("input 0 has shape %v, want rank >= 3 (N, C, spatial dims)", x.Shape)
	}
	return n, c, plane, nil
}

// stats returns the mean and 1/sqrt(var+eps) of every plane.
func (k *instanceNorm) stats(x []float32, nc, plane int) (mu, inv []float64) {
	mu, inv = make([]float64, nc), make([]float64, nc)
	par.Chunks(nc, par.ChunkCount(nc, 2*plane), func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			p := x[i*plane : (i+1)*plane]
			var s float64
			for _, v := range p {
				s += float64(v)
			}
			m := s / float64(plane)
			var q float64
			for _, v := range p {
				d := float64(v) - m
				q += d * d
			}
			mu[i] = m
			inv[i] = 1 / math.Sqrt(q/float64(plane)+k.eps)
		}
	})
	return
}

func (k *instanceNorm) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	n, c, plane, err := k.channels(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	y := tensor.New(x.Shape...)
	mu, inv := k.stats(x.F, n*c, plane)
	scale, bias := in[1].F, in[2].F
	par.Chunks(n*c, par.ChunkCount(n*c, plane), func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			a := inv[i] * float64(scale[i%c])
			af := float32(a)
			bf := float32(float64(bias[i%c]) - mu[i]*a)
			affine(y.F[i*plane:(i+1)*plane], x.F[i*plane:(i+1)*plane], af, bf)
		}
	})
	return []*tensor.Tensor{y}, nil
}

func (k *instanceNorm) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	n, c, plane, err := k.channels(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	grads, gy, err := normGrads(in, gout, need, 3)
	if err != nil || gy == nil {
		return grads, err
	}
	mu, inv := k.stats(x.F, n*c, plane)
	// Per plane: sg = sum(gy), sgx = sum(gy * xhat).
	sg, sgx := make([]float64, n*c), make([]float64, n*c)
	scale := in[1].F
	par.Chunks(n*c, par.ChunkCount(n*c, 3*plane), func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			g, xs := gy.F[i*plane:(i+1)*plane], x.F[i*plane:(i+1)*plane]
			m, iv := mu[i], inv[i]
			var a, b float64
			for j, v := range g {
				a += float64(v)
				b += float64(v) * (float64(xs[j]) - m) * iv
			}
			sg[i], sgx[i] = a, b
			if !op.Needs(need, 0) {
				continue
			}
			s := float64(scale[i%c])
			ma, mb := a/float64(plane), b/float64(plane)
			dst := grads[0].F[i*plane : (i+1)*plane]
			for j, v := range g {
				xh := (float64(xs[j]) - m) * iv
				dst[j] = float32(s * iv * (float64(v) - ma - xh*mb))
			}
		}
	})
	for ci := 0; ci < c; ci++ {
		var a, b float64
		for ni := 0; ni < n; ni++ {
			a += sgx[ni*c+ci]
			b += sg[ni*c+ci]
		}
		if op.Needs(need, 1) {
			grads[1].F[ci] = float32(a)
		}
		if op.Needs(need, 2) {
			grads[2].F[ci] = float32(b)
		}
	}
	return grads, nil
}
