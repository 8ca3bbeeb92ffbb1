package nnops

import (
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

func TestPadForward(t *testing.T) {
	x23 := seq(2, 3)
	tests := []struct {
		name  string
		opset int
		attrs []*graph.Attr
		in    []*tensor.Tensor
		shape []int
		want  []float32
	}{
		{"constant", 13, nil, []*tensor.Tensor{seq(2, 2), it(1, 0, 0, 2), ft([]int{}, 9)},
			[]int{3, 4}, []float32{9, 9, 9, 9, 1, 2, 9, 9, 3, 4, 9, 9}},
		{"constant default 0", 11, nil, []*tensor.Tensor{seq(3), it(1, 1)}, []int{5}, []float32{0, 1, 2, 3, 0}},
		{"reflect", 13, []*graph.Attr{aStr("mode", "reflect")}, []*tensor.Tensor{seq(3), it(2, 3)},
			[]int{8}, []float32{3, 2, 1, 2, 3, 2, 1, 2}},
		{"reflect beyond size", 13, []*graph.Attr{aStr("mode", "reflect")}, []*tensor.Tensor{seq(3), it(5, 0)},
			[]int{8}, []float32{2, 1, 2, 3, 2, 1, 2, 3}},
		{"reflect 2-D", 13, []*graph.Attr{aStr("mode", "reflect")}, []*tensor.Tensor{x23, it(1, 2, 1, 1)},
			[]int{4, 6}, []float32{6, 5, 4, 5, 6, 5, 3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5, 3, 2, 1, 2, 3, 2}},
		{"edge 2-D", 13, []*graph.Attr{aStr("mode", "edge")}, []*tensor.Tensor{x23, it(1, 0, 0, 2)},
			[]int{3, 5}, []float32{1, 2, 3, 3, 3, 1, 2, 3, 3, 3, 4, 5, 6, 6, 6}},
		{"negative crops", 13, nil, []*tensor.Tensor{seq(4), it(-1, 1)}, []int{4}, []float32{2, 3, 4, 0}},
		{"negative reflect", 13, []*graph.Attr{aStr("mode", "reflect")}, []*tensor.Tensor{seq(4), it(2, -2)}, []int{4}, []float32{3, 2, 1, 2}},
		{"opset 2 attributes", 2, []*graph.Attr{aInts("pads", 0, 1, 0, 0), aFloat("value", 7)}, []*tensor.Tensor{seq(2, 1)},
			[]int{2, 2}, []float32{7, 1, 7, 2}},
		{"opset 2 edge", 2, []*graph.Attr{aInts("pads", 1, 1), aStr("mode", "edge")}, []*tensor.Tensor{seq(2)},
			[]int{4}, []float32{1, 1, 2, 2}},
		{"axes", 18, nil, []*tensor.Tensor{x23, it(1, 1), ft([]int{1}, 5), it(-1)},
			[]int{2, 5}, []float32{5, 1, 2, 3, 5, 5, 4, 5, 6, 5}},
		{"empty constant_value", 13, nil, []*tensor.Tensor{seq(1), it(1, 0), tensor.New(0)}, []int{2}, []float32{0, 1}},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			out := forward(t, build(t, mk("Pad", len(c.in), 1, c.attrs...), c.opset), c.in...)
			near(t, "Y", out[0], c.shape, c.want, 0)
		})
	}
}

func TestPadInt64(t *testing.T) {
	x, _ := tensor.FromInt64([]int64{4, 5}, 2)
	out := forward(t, build(t, mk("Pad", 3, 1), 13), x, it(1, 2), tensor.ScalarInt(-1))
	want := []int64{-1, 4, 5, -1, -1}
	for i, v := range want {
		if out[0].I[i] != v {
			t.Fatalf("got %v, want %v", out[0].I, want)
		}
	}
}

func TestPadGrad(t *testing.T) {
	tests := []struct {
		mode string
		pads []int64
	}{
		{"constant", []int64{1, 0, 2, -1, 2, 1}},
		{"reflect", []int64{2, 1, 0, 1, 3, 2}},
		{"edge", []int64{0, 2, 1, 3, 0, 2}},
	}
	for _, c := range tests {
		t.Run(c.mode, func(t *testing.T) {
			k := build(t, mk("Pad", 3, 1, aStr("mode", c.mode)), 13)
			in := []*tensor.Tensor{optest.Rand(1, 2, 3, 4), it(c.pads...), ft([]int{}, 0.5)}
			wrt := []int{0}
			if c.mode == "constant" {
				wrt = append(wrt, 2)
			}
			optest.GradCheck(t, k, in, wrt, optest.Options{})
		})
	}
	// Edge padding sums the gradient of the copies into the edge element.
	g := backward(t, build(t, mk("Pad", 2, 1, aStr("mode", "edge")), 13), []*tensor.Tensor{seq(2), it(2, 1)}, ft([]int{5}, 1, 2, 3, 4, 5))
	near(t, "edge grad", g[0], []int{2}, []float32{6, 9}, 0)
}

func TestPadErrors(t *testing.T) {
	for _, c := range []struct {
		n     *graph.Node
		opset int
	}{
		{mk("Pad", 2, 1, aStr("mode", "wrap")), 13},
		{mk("Pad", 1, 1), 2},
	} {
		if _, err := newPad(c.n, c.opset); err == nil {
			t.Errorf("factory accepted %v", c.n.Attrs)
		}
	}
	k := build(t, mk("Pad", 2, 1), 13)
	wantErr(t, k, "pads", seq(2, 2), it(1, 1))
	wantErr(t, k, "crop", seq(2), it(-2, -1))
	wantErr(t, k, "int64", seq(2), ft([]int{2}, 1, 1))
	wantErr(t, k, "missing", seq(2))
	wantErr(t, build(t, mk("Pad", 3, 1), 13), "constant_value", seq(2), it(1, 1), it(3))
	wantErr(t, build(t, mk("Pad", 4, 1), 18), "axes", seq(2), it(1, 1), nil, it(3))
	wantErr(t, build(t, mk("Pad", 2, 1, aStr("mode", "edge")), 13), "empty", tensor.New(0), it(1, 1))
}

func TestPadScalarAndBool(t *testing.T) {
	k := build(t, mk("Pad", 2, 1), 13)
	out := forward(t, k, tensor.Scalar(3), it())
	near(t, "scalar", out[0], []int{}, []float32{3}, 0)
	b := &tensor.Tensor{DType: tensor.Bool, Shape: []int{1, 2}, B: []bool{true, false}}
	out = forward(t, build(t, mk("Pad", 2, 1, aStr("mode", "edge")), 13), b, it(1, 0, 0, 1))
	want := []bool{true, false, false, true, false, false}
	if !tensor.SameShape(out[0].Shape, []int{2, 3}) {
		t.Fatalf("shape %v", out[0].Shape)
	}
	for i, v := range want {
		if out[0].B[i] != v {
			t.Fatalf("got %v, want %v", out[0].B, want)
		}
	}
	// A 3-D constant pad whose first and last planes are all padding.
	out = forward(t, build(t, mk("Pad", 2, 1), 13), seq(1, 1, 2), it(1, 0, 1, 1, 0, 0))
	near(t, "3-D", out[0], []int{3, 1, 3}, []float32{0, 0, 0, 0, 1, 2, 0, 0, 0}, 0)
	g := backward(t, build(t, mk("Pad", 2, 1), 13), []*tensor.Tensor{seq(1, 1, 2), it(1, 0, 1, 1, 0, 0)}, seq(3, 1, 3))
	near(t, "3-D grad", g[0], []int{1, 1, 2}, []float32{5, 6}, 0)
}
