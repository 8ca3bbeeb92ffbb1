package nnops

import (
	"math"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

func positive(t *tensor.Tensor) *tensor.Tensor {
	for i, v := range t.F {
		t.F[i] = float32(math.Abs(float64(v))) + 0.5
	}
	return t
}

func TestBatchNormForward(t *testing.T) {
	k := build(t, mk("BatchNormalization", 5, 1, aFloat("epsilon", 0)), 15)
	out := forward(t, k, seq(1, 2, 2), ft([]int{2}, 1, 2), ft([]int{2}, 0, 1), ft([]int{2}, 1, 2), ft([]int{2}, 4, 1))
	near(t, "eps 0", out[0], []int{1, 2, 2}, []float32{0, 0.5, 3, 5}, 1e-6)

	// Default epsilon 1e-5 on a 4-D input against a float64 reference.
	k = build(t, mk("BatchNormalization", 5, 1), 9)
	x := optest.Rand(1, 2, 3, 4, 5)
	sc, b, m, v := optest.Rand(2, 3), optest.Rand(3, 3), optest.Rand(4, 3), positive(optest.Rand(5, 3))
	out = forward(t, k, x, sc, b, m, v)
	want := make([]float32, x.Len())
	for i := range want {
		c := (i / 20) % 3
		want[i] = float32((float64(x.F[i])-float64(m.F[c]))/math.Sqrt(float64(v.F[c])+1e-5)*float64(sc.F[c]) + float64(b.F[c]))
	}
	near(t, "default eps", out[0], x.Shape, want, 1e-5)

	// Rank 2 input [N, C].
	out = forward(t, build(t, mk("BatchNormalization", 5, 1, aFloat("epsilon", 0)), 15), ft([]int{2, 1}, 3, 5), ft([]int{1}, 2), ft([]int{1}, 1), ft([]int{1}, 1), ft([]int{1}, 4))
	near(t, "rank 2", out[0], []int{2, 1}, []float32{3, 5}, 1e-6)
}

func TestBatchNormErrors(t *testing.T) {
	for _, n := range []*graph.Node{
		mk("BatchNormalization", 5, 1, aInt("training_mode", 1)),
		mk("BatchNormalization", 5, 3),
		mk("BatchNormalization", 5, 1, aInt("spatial", 0)),
	} {
		if _, err := newBatchNorm(n, 14); err == nil {
			t.Errorf("factory accepted %v outputs %v", n.Attrs, n.Outputs)
		}
	}
	n := mk("BatchNormalization", 5, 3)
	n.Outputs[1], n.Outputs[2] = "", ""
	if _, err := newBatchNorm(n, 9); err != nil {
		t.Errorf("factory rejected omitted outputs: %v", err)
	}
	k := build(t, mk("BatchNormalization", 5, 1), 15)
	c := ft([]int{2}, 1, 1)
	wantErr(t, k, "input 3 has shape [3]", seq(1, 2, 2), c, c, ft([]int{3}, 1, 1, 1), c)
	wantErr(t, k, "rank", seq(2), c, c, c, c)
	wantErr(t, k, "missing", seq(1, 2, 2), c, c, c)
}

func TestInstanceNormForward(t *testing.T) {
	k := build(t, mk("InstanceNormalization", 3, 1, aFloat("epsilon", 0)), 13)
	out := forward(t, k, ft([]int{1, 2, 2}, 1, 3, 0, 4), ft([]int{2}, 1, 2), ft([]int{2}, 0, 1))
	near(t, "Y", out[0], []int{1, 2, 2}, []float32{-1, 1, -1, 3}, 1e-6)
	wantErr(t, k, "rank", seq(1, 2), ft([]int{2}, 1, 2), ft([]int{2}, 0, 1))
}

func TestNormGrad(t *testing.T) {
	bn := build(t, mk("BatchNormalization", 5, 1), 15)
	in := []*tensor.Tensor{optest.Rand(1, 2, 3, 2, 2), optest.Rand(2, 3), optest.Rand(3, 3), optest.Rand(4, 3), positive(optest.Rand(5, 3))}
	optest.GradCheck(t, bn, in, []int{0, 1, 2, 3, 4}, optest.Options{Eps: 1e-3})
	inorm := build(t, mk("InstanceNormalization", 3, 1), 13)
	in = []*tensor.Tensor{optest.Rand(6, 2, 3, 2, 3), optest.Rand(7, 3), optest.Rand(8, 3)}
	optest.GradCheck(t, inorm, in, []int{0, 1, 2}, optest.Options{Eps: 1e-3, Tol: 2e-2})
}

func TestLRN(t *testing.T) {
	// Even size: the window of channel c is [c-1, c+2] (ONNX), against a
	// direct float64 loop.
	x := optest.Rand(1, 2, 5, 3)
	k := build(t, mk("LRN", 1, 1, aInt("size", 4), aFloat("alpha", 0.5), aFloat("beta", 0.6), aFloat("bias", 1.5)), 13)
	out := forward(t, k, x)
	want := make([]float32, x.Len())
	for i := range want {
		n, c, p := i/15, (i/3)%5, i%3
		s := 0.0
		for cj := max(c-1, 0); cj <= min(c+2, 4); cj++ {
			v := float64(x.F[(n*5+cj)*3+p])
			s += v * v
		}
		want[i] = float32(float64(x.F[i]) / math.Pow(1.5+0.5/4*s, 0.6))
	}
	near(t, "Y", out[0], x.Shape, want, 1e-5)
	optest.GradCheck(t, k, []*tensor.Tensor{x}, []int{0}, optest.Options{Eps: 1e-3})
	optest.GradCheck(t, build(t, mk("LRN", 1, 1, aInt("size", 3), aFloat("alpha", 0.3)), 13), []*tensor.Tensor{optest.Rand(2, 1, 4, 2, 2)}, []int{0}, optest.Options{Eps: 1e-3})
	for _, n := range []*graph.Node{mk("LRN", 1, 1), mk("LRN", 1, 1, aInt("size", 0))} {
		if _, err := newLRN(n, 13); err == nil {
			t.Errorf("factory accepted %v", n.Attrs)
		}
	}
	wantErr(t, k, "rank", seq(2, 3))
}
