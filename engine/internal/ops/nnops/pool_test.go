package nnops

import (
	"math"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

func TestMaxPoolForward(t *testing.T) {
	ninf := float32(math.Inf(-1))
	_ = ninf
	tests := []struct {
		name  string
		attrs []*graph.Attr
		x     *tensor.Tensor
		shape []int
		want  []float32
		idx   []int64
	}{
		{"2x2 stride 2", []*graph.Attr{aInts("kernel_shape", 2, 2), aInts("strides", 2, 2)}, seq(1, 1, 4, 4),
			[]int{1, 1, 2, 2}, []float32{6, 8, 14, 16}, []int64{5, 7, 13, 15}},
		{"ceil mode", []*graph.Attr{aInts("kernel_shape", 2, 2), aInts("strides", 2, 2), aInt("ceil_mode", 1)}, seq(1, 1, 5, 5),
			[]int{1, 1, 3, 3}, []float32{7, 9, 10, 17, 19, 20, 22, 24, 25}, []int64{6, 8, 9, 16, 18, 19, 21, 23, 24}},
		{"pads 3x3 stride 2", []*graph.Attr{aInts("kernel_shape", 3, 3), aInts("strides", 2, 2), aInts("pads", 1, 1, 1, 1)}, seq(1, 1, 4, 4),
			[]int{1, 1, 2, 2}, []float32{6, 8, 14, 16}, nil},
		{"1-D ceil drops window in padding", []*graph.Attr{aInts("kernel_shape", 2), aInts("strides", 2), aInts("pads", 1, 1), aInt("ceil_mode", 1)},
			seq(1, 1, 5), []int{1, 1, 3}, []float32{1, 3, 5}, []int64{0, 2, 4}},
		{"1-D floor", []*graph.Attr{aInts("kernel_shape", 2), aInts("strides", 2), aInts("pads", 1, 1)},
			seq(1, 1, 5), []int{1, 1, 3}, []float32{1, 3, 5}, nil},
		{"dilation", []*graph.Attr{aInts("kernel_shape", 2, 2), aInts("dilations", 2, 2)}, ft([]int{1, 1, 3, 3}, 9, 1, 2, 3, 4, 5, 6, 7, 8),
			[]int{1, 1, 1, 1}, []float32{9}, []int64{0}},
		{"two planes", []*graph.Attr{aInts("kernel_shape", 2, 2)}, ft([]int{1, 2, 2, 2}, 1, 4, 3, 2, -1, -2, -5, -3),
			[]int{1, 2, 1, 1}, []float32{4, -1}, []int64{1, 4}},
		{"same upper", []*graph.Attr{aInts("kernel_shape", 2, 2), aStr("auto_pad", "SAME_UPPER")}, seq(1, 1, 2, 2),
			[]int{1, 1, 2, 2}, []float32{4, 4, 4, 4}, nil},
		{"same lower", []*graph.Attr{aInts("kernel_shape", 2, 2), aStr("auto_pad", "SAME_LOWER")}, seq(1, 1, 2, 2),
			[]int{1, 1, 2, 2}, []float32{1, 2, 3, 4}, nil},
		{"negative values in pads", []*graph.Attr{aInts("kernel_shape", 2), aInts("pads", 1, 0)}, ft([]int{1, 1, 2}, -3, -4),
			[]int{1, 1, 2}, []float32{-3, -3}, []int64{0, 0}},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			nOut := 1
			if c.idx != nil {
				nOut = 2
			}
			out := forward(t, build(t, mk("MaxPool", 1, nOut, c.attrs...), 12), c.x)
			near(t, "Y", out[0], c.shape, c.want, 0)
			if c.idx != nil {
				if len(out) != 2 || out[1].DType != tensor.Int64 {
					t.Fatalf("no indices output")
				}
				for i, v := range c.idx {
					if out[1].I[i] != v {
						t.Fatalf("indices %v, want %v", out[1].I, c.idx)
					}
				}
			}
		})
	}
}

func TestMaxPoolIndicesLayout(t *testing.T) {
	// Indices count over the whole NCHW tensor; storage_order 1 is column-major.
	x := seq(2, 1, 2, 3)
	k := build(t, mk("MaxPool", 1, 2, aInts("kernel_shape", 2, 2)), 12)
	out := forward(t, k, x)
	want := []int64{4, 5, 10, 11}
	for i, v := range want {
		if out[1].I[i] != v {
			t.Fatalf("indices %v, want %v", out[1].I, want)
		}
	}
	k = build(t, mk("MaxPool", 1, 2, aInts("kernel_shape", 2, 2), aInt("storage_order", 1)), 12)
	out = forward(t, k, x)
	want = []int64{3, 5, 9, 11}
	for i, v := range want {
		if out[1].I[i] != v {
			t.Fatalf("column-major indices %v, want %v", out[1].I, want)
		}
	}
}

func backward(t *testing.T, k op.Kernel, in []*tensor.Tensor, gy *tensor.Tensor) []*tensor.Tensor {
	t.Helper()
	out := forward(t, k, in...)
	need := make([]bool, len(in))
	need[0] = true
	g, err := k.(op.Differentiable).Backward(in, out, []*tensor.Tensor{gy}, need)
	if err != nil {
		t.Fatalf("backward: %v", err)
	}
	return g
}

func TestMaxPoolTies(t *testing.T) {
	// All equal: each window sends its gradient to its first element in
	// row-major order; overlapping 3x3 stride 2 windows accumulate.
	x := tensor.New(1, 1, 5, 5)
	for i := range x.F {
		x.F[i] = 2
	}
	k := build(t, mk("MaxPool", 1, 1, aInts("kernel_shape", 3, 3), aInts("strides", 2, 2)), 12)
	g := backward(t, k, []*tensor.Tensor{x}, ft([]int{1, 1, 2, 2}, 1, 10, 100, 1000))
	want := make([]float32, 25)
	want[0], want[2], want[10], want[12] = 1, 10, 100, 1000
	near(t, "gx", g[0], x.Shape, want, 0)

	// With padding, the first in-image element takes it; a tie between two
	// windows' shared maximum accumulates.
	x = ft([]int{1, 1, 5}, 0, 5, 5, 1, 5)
	k = build(t, mk("MaxPool", 1, 1, aInts("kernel_shape", 3), aInts("strides", 2), aInts("pads", 1, 1)), 12)
	g = backward(t, k, []*tensor.Tensor{x}, ft([]int{1, 1, 3}, 1, 2, 4))
	near(t, "gx padded", g[0], x.Shape, []float32{0, 3, 0, 0, 4}, 0)
}

func TestMaxPoolNaN(t *testing.T) {
	nan := float32(math.NaN())
	k := build(t, mk("MaxPool", 1, 1, aInts("kernel_shape", 3)), 12)
	out := forward(t, k, ft([]int{1, 1, 3}, 1, nan, 2))
	if v := out[0].F[0]; v == v {
		t.Fatalf("NaN not propagated: %v", v)
	}
	// As PyTorch 1.13 (CPU): the last NaN takes the gradient; an all -Inf
	// window sends it to its first element.
	k = build(t, mk("MaxPool", 1, 1, aInts("kernel_shape", 1, 5)), 12)
	g := backward(t, k, []*tensor.Tensor{ft([]int{1, 1, 1, 5}, 1, nan, 3, nan, 2)}, ft([]int{1, 1, 1, 1}, 1))
	near(t, "NaN grad", g[0], []int{1, 1, 1, 5}, []float32{0, 0, 0, 1, 0}, 0)
	ninf := float32(math.Inf(-1))
	g = backward(t, k, []*tensor.Tensor{ft([]int{1, 1, 1, 5}, ninf, ninf, ninf, ninf, ninf)}, ft([]int{1, 1, 1, 1}, 1))
	near(t, "-Inf grad", g[0], []int{1, 1, 1, 5}, []float32{1, 0, 0, 0, 0}, 0)
	// The same in a full 3x3 window (the kernel's unrolled path).
	k = build(t, mk("MaxPool", 1, 1, aInts("kernel_shape", 3, 3)), 12)
	g = backward(t, k, []*tensor.Tensor{ft([]int{1, 1, 3, 3}, 1, nan, 3, 4, 9, nan, 2, 0, 1)}, ft([]int{1, 1, 1, 1}, 1))
	near(t, "3x3 NaN grad", g[0], []int{1, 1, 3, 3}, []float32{0, 0, 0, 0, 0, 1, 0, 0, 0}, 0)
	g = backward(t, k, []*tensor.Tensor{ft([]int{1, 1, 3, 3}, ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf)}, ft([]int{1, 1, 1, 1}, 1))
	near(t, "3x3 -Inf grad", g[0], []int{1, 1, 3, 3}, []float32{1, 0, 0, 0, 0, 0, 0, 0, 0}, 0)
	g = backward(t, k, []*tensor.Tensor{ft([]int{1, 1, 3, 3}, 1, 7, 3, 4, 9, 9, 2, 9, 1)}, ft([]int{1, 1, 1, 1}, 1))
	near(t, "3x3 first max", g[0], []int{1, 1, 3, 3}, []float32{0, 0, 0, 0, 1, 0, 0, 0, 0}, 0)
}

func TestAveragePoolForward(t *testing.T) {
	tests := []struct {
		name  string
		attrs []*graph.Attr
		x     *tensor.Tensor
		shape []int
		want  []float32
	}{
		{"2x2", []*graph.Attr{aInts("kernel_shape", 2, 2), aInts("strides", 2, 2)}, seq(1, 1, 4, 4),
			[]int{1, 1, 2, 2}, []float32{3.5, 5.5, 11.5, 13.5}},
		{"pads exclude", []*graph.Attr{aInts("kernel_shape", 3), aInts("strides", 2), aInts("pads", 1, 1)}, seq(1, 1, 4),
			[]int{1, 1, 2}, []float32{1.5, 3}},
		{"pads include", []*graph.Attr{aInts("kernel_shape", 3), aInts("strides", 2), aInts("pads", 1, 1), aInt("count_include_pad", 1)}, seq(1, 1, 4),
			[]int{1, 1, 2}, []float32{1, 3}},
		{"ceil exclude", []*graph.Attr{aInts("kernel_shape", 3), aInts("strides", 2), aInts("pads", 1, 1), aInt("ceil_mode", 1)}, seq(1, 1, 4),
			[]int{1, 1, 3}, []float32{1.5, 3, 4}},
		{"ceil include", []*graph.Attr{aInts("kernel_shape", 3), aInts("strides", 2), aInts("pads", 1, 1), aInt("ceil_mode", 1), aInt("count_include_pad", 1)}, seq(1, 1, 4),
			[]int{1, 1, 3}, []float32{1, 3, 2}},
		{"ceil no pads", []*graph.Attr{aInts("kernel_shape", 2, 2), aInts("strides", 2, 2), aInt("ceil_mode", 1), aInt("count_include_pad", 1)}, seq(1, 1, 3, 3),
			[]int{1, 1, 2, 2}, []float32{3, 4.5, 7.5, 9}},
		{"2-D pads include", []*graph.Attr{aInts("kernel_shape", 2, 2), aInts("pads", 1, 1, 0, 0), aInt("count_include_pad", 1)}, seq(1, 1, 2, 2),
			[]int{1, 1, 2, 2}, []float32{0.25, 0.75, 1, 2.5}},
		{"2-D pads exclude", []*graph.Attr{aInts("kernel_shape", 2, 2), aInts("pads", 1, 1, 0, 0)}, seq(1, 1, 2, 2),
			[]int{1, 1, 2, 2}, []float32{1, 1.5, 2, 2.5}},
		{"same upper", []*graph.Attr{aInts("kernel_shape", 2, 2), aStr("auto_pad", "SAME_UPPER")}, seq(1, 1, 2, 2),
			[]int{1, 1, 2, 2}, []float32{2.5, 3, 3.5, 4}},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			out := forward(t, build(t, mk("AveragePool", 1, 1, c.attrs...), 11), c.x)
			near(t, "Y", out[0], c.shape, c.want, 1e-6)
		})
	}
}

func TestGlobalPools(t *testing.T) {
	x := ft([]int{1, 2, 2, 2}, 1, 4, 3, 2, -1, -2, -5, -3)
	out := forward(t, build(t, mk("GlobalAveragePool", 1, 1), 13), x)
	near(t, "avg", out[0], []int{1, 2, 1, 1}, []float32{2.5, -2.75}, 1e-6)
	out = forward(t, build(t, mk("GlobalMaxPool", 1, 1), 13), x)
	near(t, "max", out[0], []int{1, 2, 1, 1}, []float32{4, -1}, 0)
	out = forward(t, build(t, mk("GlobalAveragePool", 1, 1), 13), seq(2, 1, 3))
	near(t, "avg 1-D", out[0], []int{2, 1, 1}, []float32{2, 5}, 1e-6)
	// Ties: the first maximum takes the gradient.
	g := backward(t, build(t, mk("GlobalMaxPool", 1, 1), 13), []*tensor.Tensor{ft([]int{1, 1, 4}, 1, 3, 3, 0)}, ft([]int{1, 1, 1}, 2))
	near(t, "max grad", g[0], []int{1, 1, 4}, []float32{0, 2, 0, 0}, 0)
	wantErr(t, build(t, mk("GlobalAveragePool", 1, 1), 13), "rank", ft([]int{3}, 1, 2, 3))
}

func TestPoolGrad(t *testing.T) {
	tests := []struct {
		op    string
		attrs []*graph.Attr
		shape []int
	}{
		{"MaxPool", []*graph.Attr{aInts("kernel_shape", 3, 3), aInts("strides", 2, 2), aInts("pads", 1, 1, 1, 1)}, []int{2, 2, 5, 5}},
		{"MaxPool", []*graph.Attr{aInts("kernel_shape", 2, 3), aInts("strides", 1, 2), aInts("dilations", 2, 1), aInt("ceil_mode", 1)}, []int{1, 2, 6, 6}},
		{"MaxPool", []*graph.Attr{aInts("kernel_shape", 3), aInts("strides", 2), aInts("pads", 1, 0)}, []int{2, 3, 7}},
		{"AveragePool", []*graph.Attr{aInts("kernel_shape", 3, 3), aInts("strides", 2, 2), aInts("pads", 1, 1, 1, 1)}, []int{2, 2, 5, 5}},
		{"AveragePool", []*graph.Attr{aInts("kernel_shape", 3, 3), aInts("strides", 2, 2), aInts("pads", 1, 0, 1, 1), aInt("ceil_mode", 1), aInt("count_include_pad", 1)}, []int{1, 2, 6, 5}},
		{"AveragePool", []*graph.Attr{aInts("kernel_shape", 2), aInt("ceil_mode", 1), aInts("strides", 2)}, []int{2, 2, 7}},
		{"GlobalAveragePool", nil, []int{2, 3, 4, 3}},
		{"GlobalMaxPool", nil, []int{2, 3, 4, 3}},
	}
	for i, c := range tests {
		t.Run(c.op, func(t *testing.T) {
			k := build(t, mk(c.op, 1, 1, c.attrs...), 13)
			// Distinct values spaced well beyond the finite-difference step.
			x := optest.Rand(uint64(i), c.shape...)
			perm := make([]float32, len(x.F))
			for j := range perm {
				perm[j] = float32((j*37)%len(perm)) * 0.1
			}
			copy(x.F, perm)
			optest.GradCheck(t, k, []*tensor.Tensor{x}, []int{0}, optest.Options{Seed: uint64(i)})
		})
	}
}

func TestPoolErrors(t *testing.T) {
	for _, n := range []*graph.Node{
		mk("MaxPool", 1, 1),
		mk("MaxPool", 1, 1, aInts("kernel_shape", 2, 2, 2)),
		mk("MaxPool", 1, 1, aInts("kernel_shape", 2, 2), aInts("pads", 1, 1)),
		mk("MaxPool", 1, 1, aInts("kernel_shape", 2, 2), aInt("storage_order", 2)),
		mk("AveragePool", 1, 1, aInts("kernel_shape", 0, 2)),
		mk("AveragePool", 1, 1, aInts("kernel_shape", 2), aStr("auto_pad", "FOO")),
	} {
		if _, err := factory(t, n.OpType)(n, 13); err == nil {
			t.Errorf("%s factory accepted %v", n.OpType, n.Attrs)
		}
	}
	k := build(t, mk("MaxPool", 1, 1, aInts("kernel_shape", 3, 3)), 13)
	wantErr(t, k, "rank", seq(1, 1, 5))
	wantErr(t, k, "does not fit", seq(1, 1, 2, 5))
	wantErr(t, k, "missing")
	k = build(t, mk("AveragePool", 1, 1, aInts("kernel_shape", 3)), 13)
	wantErr(t, k, "rank", seq(1, 1, 5, 5))
	_, err := k.(op.Differentiable).Backward([]*tensor.Tensor{seq(1, 1, 5)}, nil, []*tensor.Tensor{seq(1, 1, 2)}, []bool{true})
	if err == nil {
		t.Fatalf("backward accepted a gradient of the wrong shape")
	}
}

func TestMaxPoolBackwardWithoutOutput(t *testing.T) {
	// Backward recomputes the maxima when the forward output is not given;
	// windows lying wholly in the padding give -Inf and no gradient.
	k := build(t, mk("MaxPool", 1, 1, aInts("kernel_shape", 1), aInts("pads", 1, 1)), 12)
	x := ft([]int{1, 1, 2}, 3, 4)
	ninf := float32(math.Inf(-1))
	out := forward(t, k, x)
	near(t, "Y", out[0], []int{1, 1, 4}, []float32{ninf, 3, 4, ninf}, 0)
	g, err := k.(op.Differentiable).Backward([]*tensor.Tensor{x}, nil, []*tensor.Tensor{ft([]int{1, 1, 4}, 1, 2, 3, 4)}, []bool{true})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "gx", g[0], x.Shape, []float32{2, 3}, 0)
	k = build(t, mk("MaxPool", 1, 1, aInts("kernel_shape", 2, 2), aInts("strides", 1, 1)), 12)
	x = ft([]int{1, 1, 2, 3}, 1, 5, 5, 5, 2, 0)
	g, err = k.(op.Differentiable).Backward([]*tensor.Tensor{x}, nil, []*tensor.Tensor{ft([]int{1, 1, 1, 2}, 1, 2)}, []bool{true})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "gx ties", g[0], x.Shape, []float32{0, 3, 0, 0, 0, 0}, 0)
}
