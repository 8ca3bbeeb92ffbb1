package mathops

import (
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// refMatMul is numpy's matmul in float64, by index arithmetic.
func refMatMul(a, b *tensor.Tensor) ([]int, []float64) {
	as, bs := a.Shape, b.Shape
	if len(as) == 1 {
		as = []int{1, as[0]}
	}
	if len(bs) == 1 {
		bs = []int{bs[0], 1}
	}
	m, k, n := as[len(as)-2], as[len(as)-1], bs[len(bs)-1]
	ab, bb := as[:len(as)-2], bs[:len(bs)-2]
	batch, _ := tensor.BroadcastShape(ab, bb)
	cnt := tensor.Size(batch)
	out := make([]float64, cnt*m*n)
	for bi := 0; bi < cnt; bi++ {
		ia, ib := refIndex(bi, batch, ab), refIndex(bi, batch, bb)
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				s := 0.0
				for p := 0; p < k; p++ {
					s += float64(a.F[ia*m*k+i*k+p]) * float64(b.F[ib*k*n+p*n+j])
				}
				out[bi*m*n+i*n+j] = s
			}
		}
	}
	shape := append([]int{}, batch...)
	if len(a.Shape) > 1 {
		shape = append(shape, m)
	}
	if len(b.Shape) > 1 {
		shape = append(shape, n)
	}
	return shape, out
}

func TestMatMul(t *testing.T) {
	k := kern(t, "MatMul", 13)
	cases := []struct{ a, b []int }{
		{sh(3, 4), sh(4, 5)},
		{sh(4), sh(4, 5)},
		{sh(3, 4), sh(4)},
		{sh(4), sh(4)},
		{sh(2, 3, 4), sh(4, 5)},       // batch folded into rows
		{sh(2, 3, 4), sh(2, 4, 5)},    // batched
		{sh(2, 1, 3, 4), sh(3, 4, 2)}, // both broadcast
		{sh(3, 4), sh(2, 4, 5)},       // A broadcast
		{sh(2, 3, 4), sh(1, 4, 5)},
		{sh(4), sh(2, 4, 3)},
		{sh(2, 3, 4), sh(4)},
		{sh(3, 0), sh(0, 2)}, // empty inner dimension
	}
	for ci, c := range cases {
		a, b := optest.Rand(uint64(ci), c.a...), optest.Rand(uint64(ci+50), c.b...)
		shape, want := refMatMul(a, b)
		near(t, fwd(t, k, a, b)[0], shape, want, 1e-5)
		optest.GradCheck(t, k, []*tensor.Tensor{a, b}, []int{0, 1}, optest.Options{Eps: 1e-2, Seed: uint64(ci)})
		// Only one gradient when only one is needed.
		g := backward(t, k, []*tensor.Tensor{a, b}, []*tensor.Tensor{optest.Rand(1, shape...)}, true, false)
		if g[0] == nil || g[1] != nil {
			t.Fatalf("case %d: need [true false] gave %v", ci, g)
		}
	}
	fwdErr(t, k, "inner dimensions 4 and 3 differ", ft(sh(2, 4)), ft(sh(3, 2)))
	fwdErr(t, k, "batch dimensions do not broadcast", ft(sh(2, 2, 4)), ft(sh(3, 4, 2)))
	fwdErr(t, k, "at least 1-D", tensor.Scalar(1), ft(sh(2)))
	fwdErr(t, k, "want float32", it(sh(1), 1), ft(sh(1)))
}

func TestMatMulLarge(t *testing.T) {
	k := kern(t, "MatMul", 13)
	for ci, c := range []struct{ a, b []int }{
		{sh(2, 48, 64), sh(64, 40)},
		{sh(3, 2, 20, 16), sh(3, 2, 16, 20)}, // many small products in parallel
		{sh(64, 96), sh(96, 8)},
	} {
		a, b := optest.Rand(uint64(ci), c.a...), optest.Rand(uint64(ci+9), c.b...)
		shape, want := refMatMul(a, b)
		near(t, fwd(t, k, a, b)[0], shape, want, 1e-4)
		// Gradients against the reference: dA = g B^T, dB = A^T g.
		g := optest.Rand(3, shape...)
		gr := backward(t, k, []*tensor.Tensor{a, b}, []*tensor.Tensor{g}, true, true)
		bt := transposeLast(b)
		_, wa := refMatMul(g, bt)
		near(t, gr[0], a.Shape, sumBatches(wa, tensor.Size(shape)/tensor.Size(shape[len(shape)-2:]), len(a.F)), 1e-4)
	}
}

// transposeLast swaps the last two dimensions.
func transposeLast(x *tensor.Tensor) *tensor.Tensor {
	r := len(x.Shape)
	s := append([]int{}, x.Shape...)
	s[r-2], s[r-1] = s[r-1], s[r-2]
	y := tensor.New(s...)
	m, n := x.Shape[r-2], x.Shape[r-1]
	for b := 0; b < len(x.F)/(m*n); b++ {
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				y.F[b*m*n+j*m+i] = x.F[b*m*n+i*n+j]
			}
		}
	}
	return y
}

// sumBatches folds cnt equal batches of v down to size values (for
// operands that were not broadcast it is the identity).
func sumBatches(v []float64, cnt, size int) []float64 {
	out := make([]float64, size)
	for i, x := range v {
		out[i%size] += x
	}
	return out
}

func TestGemm(t *testing.T) {
	const m, n, k = 3, 4, 5
	for _, ta := range []int64{0, 1} {
		for _, tb := range []int64{0, 1} {
			for ci, cshape := range [][]int{nil, sh(n), sh(1, n), sh(m, 1), sh(), sh(m, n)} {
				attrs := []*graph.Attr{aI("transA", ta), aI("transB", tb), aF("alpha", 0.5), aF("beta", 2)}
				kk := kern(t, "Gemm", 13, attrs...)
				as, bs := sh(m, k), sh(k, n)
				if ta == 1 {
					as = sh(k, m)
				}
				if tb == 1 {
					bs = sh(n, k)
				}
				a, b := optest.Rand(1, as...), optest.Rand(2, bs...)
				in := []*tensor.Tensor{a, b}
				var c *tensor.Tensor
				if cshape != nil {
					c = optest.Rand(3, cshape...)
					in = append(in, c)
				}
				opA, opB := a, b
				if ta == 1 {
					opA = transposeLast(a)
				}
				if tb == 1 {
					opB = transposeLast(b)
				}
				_, prod := refMatMul(opA, opB)
				want := make([]float64, m*n)
				for i := range want {
					want[i] = 0.5 * prod[i]
					if c != nil {
						want[i] += 2 * float64(c.F[refIndex(i, sh(m, n), cshape)])
					}
				}
				near(t, fwd(t, kk, in...)[0], sh(m, n), want, 1e-5)
				wrt := []int{0, 1}
				if c != nil {
					wrt = append(wrt, 2)
				}
				optest.GradCheck(t, kk, in, wrt, optest.Options{Seed: uint64(ci)})
			}
		}
	}
	kk := kern(t, "Gemm", 11)
	fwdErr(t, kk, "inner dimensions", ft(sh(2, 3)), ft(sh(4, 2)))
	fwdErr(t, kk, "want 2-D", ft(sh(3)), ft(sh(3, 2)))
	fwdErr(t, kk, "does not broadcast to [2 2]", ft(sh(2, 3)), ft(sh(3, 2)), ft(sh(3)))
	// Backward skips what is not needed.
	g := backward(t, kk, []*tensor.Tensor{ft(sh(2, 3)), ft(sh(3, 2)), ft(sh(2))}, []*tensor.Tensor{ft(sh(2, 2), 1, 1, 1, 1)}, true, false, false)
	if g[0] == nil || g[1] != nil || g[2] != nil {
		t.Fatalf("need [true false false] gave %v", g)
	}
}
