// Package optest checks op kernels: their vector-Jacobian products against
// central finite differences of their forward functions.
package optest

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/tensor"
)

// Options tune GradCheck. The zero value uses Eps 1e-2, Tol 1e-2.
type Options struct {
	Eps  float64 // finite-difference step
	Tol  float64 // allowed error relative to the largest gradient element
	Seed uint64
}

// GradCheck runs k on in, draws a random cotangent r for every float output,
// and checks that k.Backward's gradient of L = sum_j <r_j, out_j> with respect
// to each float input listed in wrt matches central finite differences of L
// (computed by perturbing one element at a time, in float64 accumulation).
// An element passes when |fd - got| <= Tol * max(scale, 1e-2), where scale is
// the largest |fd| over that input. Inputs should keep away from kinks (ReLU at
// 0, ties in max pooling) by more than Eps.
func GradCheck(t *testing.T, k op.Kernel, in []*tensor.Tensor, wrt []int, o Options) {
	t.Helper()
	if o.Eps == 0 {
		o.Eps = 1e-2
	}
	if o.Tol == 0 {
		o.Tol = 1e-2
	}
	dk, ok := k.(op.Differentiable)
	if !ok {
		t.Fatalf("kernel %T has no Backward", k)
	}
	out, err := k.Forward(in)
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 7))
	gout := make([]*tensor.Tensor, len(out))
	for j, y := range out {
		if y == nil || y.DType != tensor.Float32 {
			continue
		}
		g := tensor.New(y.Shape...)
		for i := range g.F {
			g.F[i] = float32(rng.NormFloat64())
		}
		gout[j] = g
	}
	loss := func() float64 {
		o2, err := k.Forward(in)
		if err != nil {
			t.Fatalf("forward: %v", err)
		}
		s := 0.0
		for j, y := range o2 {
			if j >= len(gout) || gout[j] == nil {
				continue
			}
			for i, v := range y.F {
				s += float64(v) * float64(gout[j].F[i])
			}
		}
		return s
	}
	need := make([]bool, len(in))
	for _, i := range wrt {
		need[i] = true
	}
	grads, err := dk.Backward(in, out, gout, need)
	if err != nil {
		t.Fatalf("backward: %v", err)
	}
	for _, i := range wrt {
		x := in[i]
		if i >= len(grads) || grads[i] == nil {
			t.Fatalf("input %d: no gradient", i)
		}
		g := grads[i]
		if !tensor.SameShape(g.Shape, x.Shape) {
			t.Fatalf("input %d: gradient shape %v, input shape %v", i, g.Shape, x.Shape)
		}
		fd := make([]float64, len(x.F))
		scale := 0.0
		for e := range x.F {
			orig := x.F[e]
			x.F[e] = orig + float32(o.Eps)
			up := loss()
			x.F[e] = orig - float32(o.Eps)
			down := loss()
			x.F[e] = orig
			h := float64(orig+float32(o.Eps)) - float64(orig-float32(o.Eps))
			fd[e] = (up - down) / h
			scale = math.Max(scale, math.Abs(fd[e]))
		}
		bad := 0
		for e := range x.F {
			d := math.Abs(fd[e] - float64(g.F[e]))
			if d > o.Tol*math.Max(scale, 1e-2) {
				if bad < 5 {
					t.Errorf("input %d element %d: finite difference %g, backward %g", i, e, fd[e], g.F[e])
				}
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("input %d: %d of %d elements differ", i, bad, len(x.F))
		}
	}
}

// Rand returns a float32 tensor of the given shape with normal entries.
func Rand(seed uint64, shape ...int) *tensor.Tensor {
	rng := rand.New(rand.NewPCG(seed, 11))
	x := tensor.New(shape...)
	for i := range x.F {
		x.F[i] = float32(rng.NormFloat64())
	}
	return x
}
