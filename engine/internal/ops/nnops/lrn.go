package nnops

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// lrn is LRN, local response normalization across channels:
// y = x / (bias + alpha/size * sum of x^2 over the channel window)^beta,
// where the window of channel c is [c - floor((size-1)/2), c + ceil((size-1)/2)].
type lrn struct {
	size              int
	alpha, beta, bias float64
	before, after     int // window reach below and above c
}

func newLRN(n *graph.Node, opset int) (op.Kernel, error) {
	if !n.Has("size") {
		return nil, op.Errorf(n, "size is required")
	}
	size := int(n.Int("size", 0))
	if size < 1 {
		return nil, op.Errorf(n, "size %d must be positive", size)
	}
	return &lrn{
		size:   size,
		alpha:  float64(n.Float("alpha", 1e-4)),
		beta:   float64(n.Float("beta", 0.75)),
		bias:   float64(n.Float("bias", 1)),
		before: (size - 1) / 2,
		after:  size / 2, // ceil((size-1)/2)
	}, nil
}

// shape checks x ([N, C, ...]) and returns N, C and the plane size.
func (k *lrn) shape(in []*tensor.Tensor) (n, c, plane int, err error) {
	x, err := op.FloatArg(in, 0)
	if err != nil {
		return 0, 0, 0, err
	}
	if x.Rank() < 3 {
		return 0, 0, 0, fmt.Errorf("input 0 has shape %v, want rank >= 3 (N, C, spatial dims)", x.Shape)
	}
	return x.Shape[0], x.Shape[1], tensor.Size(x.Shape[2:]), nil
}

// denom writes into d the per-element base bias + alpha/size * window sum
// of squares for plane (n, c) of x.
func (k *lrn) denom(x []float32, c, plane, ni, ci int, d []float64) {
	clear(d)
	for cj := max(ci-k.before, 0); cj <= min(ci+k.after, c-1); cj++ {
		for i, v := range x[(ni*c+cj)*plane : (ni*c+cj+1)*plane] {
			d[i] += float64(v) * float64(v)
		}
	}
	s := k.alpha / float64(k.size)
	for i := range d {
		d[i] = k.bias + s*d[i]
	}
}

func (k *lrn) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	n, c, plane, err := k.shape(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	y := tensor.New(x.Shape...)
	par.Chunks(n*c, par.ChunkCount(n*c, plane*k.size), func(_, lo, hi int) {
		d := make([]float64, plane)
		for nc := lo; nc < hi; nc++ {
			k.denom(x.F, c, plane, nc/c, nc%c, d)
			src, dst := x.F[nc*plane:(nc+1)*plane], y.F[nc*plane:(nc+1)*plane]
			for i, v := range src {
				dst[i] = float32(float64(v) * math.Pow(d[i], -k.beta))
			}
		}
	})
	return []*tensor.Tensor{y}, nil
}

// Backward: with d_i the base of element i, dL/dx_j = gy_j d_j^-beta -
// 2 alpha beta / size * x_j * sum over the channels i whose window holds j
// of gy_i x_i d_i^(-beta-1).
func (k *lrn) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	if !op.Needs(need, 0) {
		return grads, nil
	}
	n, c, plane, err := k.shape(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	gx := tensor.New(x.Shape...)
	grads[0] = gx
	gy, err := op.ShapedGrad(gout, 0, x.Shape)
	if err != nil {
		return nil, err
	}
	if gy == nil {
		return grads, nil
	}
	// First pass: gx holds gy d^-beta; t holds gy x d^(-beta-1).
	t := make([]float64, len(x.F))
	par.Chunks(n*c, par.ChunkCount(n*c, plane*k.size), func(_, lo, hi int) {
		d := make([]float64, plane)
		for nc := lo; nc < hi; nc++ {
			k.denom(x.F, c, plane, nc/c, nc%c, d)
			o := nc * plane
			for i, di := range d {
				p := math.Pow(di, -k.beta)
				g := float64(gy.F[o+i])
				gx.F[o+i] = float32(g * p)
				t[o+i] = g * float64(x.F[o+i]) * p / di
			}
		}
	})
	coef := 2 * k.alpha * k.beta / float64(k.size)
	par.Chunks(n*c, par.ChunkCount(n*c, plane*k.size), func(_, lo, hi int) {
		acc := make([]float64, plane)
		for nc := lo; nc < hi; nc++ {
			ni, cj := nc/c, nc%c
			clear(acc)
			// Channels i with cj in [i-before, i+after].
			for ci := max(cj-k.after, 0); ci <= min(cj+k.before, c-1); ci++ {
				for i, v := range t[(ni*c+ci)*plane : (ni*c+ci+1)*plane] {
					acc[i] += v
				}
			}
			o := nc * plane
			for i, a := range acc {
				gx.F[o+i] -= float32(coef * float64(x.F[o+i]) * a)
			}
		}
	})
	return grads, nil
}
