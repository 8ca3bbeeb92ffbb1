package mathops

import (
	"math"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// refReduce reduces x over the axes marked in red, in float64, returning
// values in row-major order of the kept shape.
func refReduce(kind string, x *tensor.Tensor, red []bool) []float64 {
	keep := make([]int, len(x.Shape))
	for i, d := range x.Shape {
		keep[i] = d
		if red[i] {
			keep[i] = 1
		}
	}
	size := tensor.Size(keep)
	groups := make([][]float64, size)
	for e, v := range x.F {
		o := refIndex(e, x.Shape, keep)
		groups[o] = append(groups[o], float64(v))
	}
	out := make([]float64, size)
	for o, g := range groups {
		var r float64
		switch kind {
		case "ReduceSum", "ReduceMean":
			for _, v := range g {
				r += v
			}
			if kind == "ReduceMean" {
				r /= float64(len(g))
			}
		case "ReduceMax":
			r = math.Inf(-1)
			for _, v := range g {
				r = math.Max(r, v)
			}
		case "ReduceMin":
			r = math.Inf(1)
			for _, v := range g {
				r = math.Min(r, v)
			}
		case "ReduceProd":
			r = 1
			for _, v := range g {
				r *= v
			}
		case "ReduceL2", "ReduceSumSquare":
			for _, v := range g {
				r += v * v
			}
			if kind == "ReduceL2" {
				r = math.Sqrt(r)
			}
		case "ReduceLogSumExp":
			for _, v := range g {
				r += math.Exp(v)
			}
			r = math.Log(r)
		}
		out[o] = r
	}
	return out
}

var reduceKinds = []string{"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp"}

func TestReductions(t *testing.T) {
	x := optest.Rand(4, 2, 3, 4)
	for i := range x.F {
		// Distinct magnitudes, away from 0, so that every kind is smooth.
		x.F[i] = float32(math.Copysign(0.5+0.05*float64(i), float64(x.F[i])))
	}
	cases := []struct {
		axes     []int64 // nil: attribute absent
		keepdims int64
		noop     int64
		red      []bool
		shape    []int
	}{
		{nil, 1, 0, []bool{true, true, true}, sh(1, 1, 1)},
		{nil, 0, 0, []bool{true, true, true}, sh()},
		{[]int64{1}, 1, 0, []bool{false, true, false}, sh(2, 1, 4)},
		{[]int64{-1}, 0, 0, []bool{false, false, true}, sh(2, 3)},
		{[]int64{0, 2}, 1, 0, []bool{true, false, true}, sh(1, 3, 1)},
		{[]int64{0, 2}, 0, 0, []bool{true, false, true}, sh(3)},
		{[]int64{2, 1}, 0, 0, []bool{false, true, true}, sh(2)},
		{[]int64{0}, 0, 0, []bool{true, false, false}, sh(3, 4)},
		{nil, 1, 1, []bool{false, false, false}, sh(2, 3, 4)}, // noop
	}
	for _, kind := range reduceKinds {
		for ci, c := range cases {
			want := refReduce(kind, x, c.red) // with noop: each element alone
			attrs := []*graph.Attr{aI("keepdims", c.keepdims), aI("noop_with_empty_axes", c.noop)}
			// Axes as an attribute (opset 11 style) ...
			katt := kern(t, kind, 11, append(attrs, axesAttr(c.axes)...)...)
			near(t, fwd(t, katt, x)[0], c.shape, want, 1e-6)
			// ... and as an input (opset 13/18 style).
			kin := kern(t, kind, 18, attrs...)
			var ax *tensor.Tensor
			if c.axes != nil {
				ax = it(sh(len(c.axes)), c.axes...)
			}
			near(t, fwd(t, kin, x, ax)[0], c.shape, want, 1e-6)
			if c.axes == nil && c.noop == 0 {
				// An empty axes input also reduces everything.
				near(t, fwd(t, kin, x, it(sh(0)))[0], c.shape, want, 1e-6)
			}
			optest.GradCheck(t, kin, []*tensor.Tensor{x, ax}, []int{0}, optest.Options{Eps: 1e-3, Seed: uint64(ci)})
		}
	}
}

func axesAttr(axes []int64) []*graph.Attr {
	if axes == nil {
		return nil
	}
	return []*graph.Attr{aInts("axes", axes...)}
}

func TestReduceSpecial(t *testing.T) {
	// ReduceMax sends the gradient to the first maximum only.
	x := ft(sh(2, 3), 1, 5, 5, 7, 7, 2)
	k := kern(t, "ReduceMax", 13, aInts("axes", 1))
	g := backward(t, k, []*tensor.Tensor{x}, []*tensor.Tensor{ft(sh(2, 1), 10, 20)}, true)
	near(t, g[0], x.Shape, []float64{0, 10, 0, 20, 0, 0}, 0)
	k = kern(t, "ReduceMin", 13, aInts("axes", 0), aI("keepdims", 0))
	g = backward(t, k, []*tensor.Tensor{ft(sh(2, 2), 3, 1, 3, 1)}, []*tensor.Tensor{ft(sh(2), 1, 2)}, true)
	near(t, g[0], sh(2, 2), []float64{1, 2, 0, 0}, 0)
	// ReduceProd with zeros: one zero gets the product of the others.
	k = kern(t, "ReduceProd", 13, aInts("axes", 1))
	g = backward(t, k, []*tensor.Tensor{ft(sh(3, 3), 2, 0, 3, 0, 0, 4, 1, 2, 3)}, []*tensor.Tensor{ft(sh(3, 1), 1, 1, 1)}, true)
	near(t, g[0], sh(3, 3), []float64{0, 6, 0, 0, 0, 0, 6, 3, 2}, 0)
	// ReduceL2 at zero: gradient 0.
	k = kern(t, "ReduceL2", 13)
	g = backward(t, k, []*tensor.Tensor{ft(sh(2), 0, 0)}, []*tensor.Tensor{ft(sh(1), 1)}, true)
	near(t, g[0], sh(2), []float64{0, 0}, 0)
	// LogSumExp is stable for large values.
	near(t, fwd(t, kern(t, "ReduceLogSumExp", 13), ft(sh(2), 1000, 1000))[0], sh(1), []float64{1000 + math.Ln2}, 1e-7)
	// NaN propagates through max.
	y := fwd(t, kern(t, "ReduceMax", 13), ft(sh(3), 1, float32(math.NaN()), 2))[0]
	if !math.IsNaN(float64(y.F[0])) {
		t.Fatalf("ReduceMax with NaN = %v", y.F)
	}
	// int64 reductions.
	xi := it(sh(2, 3), 1, 2, 3, 4, 5, 6)
	ints(t, fwd(t, kern(t, "ReduceSum", 13, aI("keepdims", 0)), xi, it(sh(1), 1))[0], sh(2), 6, 15)
	ints(t, fwd(t, kern(t, "ReduceProd", 13, aI("keepdims", 0)), xi)[0], sh(), 720)
	ints(t, fwd(t, kern(t, "ReduceMax", 13, aInts("axes", 0)), xi)[0], sh(1, 3), 4, 5, 6)
	ints(t, fwd(t, kern(t, "ReduceMin", 13, aInts("axes", 0)), xi)[0], sh(1, 3), 1, 2, 3)
	fwdErr(t, kern(t, "ReduceMean", 13), "want float32", xi)
	// Errors.
	fwdErr(t, kern(t, "ReduceSum", 13), "out of range", x, it(sh(1), 2))
	fwdErr(t, kern(t, "ReduceSum", 13), "want int64", x, ft(sh(1), 1))
	fwdErr(t, kern(t, "ReduceMean", 13, aInts("axes", -3)), "out of range", x)
}

func TestReduceLarge(t *testing.T) {
	x := optest.Rand(11, 4, 32, 28, 28)
	for _, c := range []struct {
		axes []int64
		red  []bool
	}{
		{[]int64{2, 3}, []bool{false, false, true, true}},
		{[]int64{0}, []bool{true, false, false, false}},
		{[]int64{1}, []bool{false, true, false, false}},
		{[]int64{0, 1, 2, 3}, []bool{true, true, true, true}},
	} {
		for _, kind := range []string{"ReduceMean", "ReduceMax", "ReduceSumSquare"} {
			k := kern(t, kind, 13, aInts("axes", c.axes...), aI("keepdims", 0))
			y := fwd(t, k, x)[0]
			near(t, y, y.Shape, refReduce(kind, x, c.red), 1e-6)
		}
	}
}

func TestArgMaxMin(t *testing.T) {
	x := ft(sh(2, 3), 1, 7, 7, 4, 0, 4)
	cases := []struct {
		op    string
		attrs []*graph.Attr
		shape []int
		want  []int64
	}{
		{"ArgMax", nil, sh(1, 3), []int64{1, 0, 0}},
		{"ArgMax", []*graph.Attr{aI("axis", 1)}, sh(2, 1), []int64{1, 0}},
		{"ArgMax", []*graph.Attr{aI("axis", -1), aI("select_last_index", 1)}, sh(2, 1), []int64{2, 2}},
		{"ArgMax", []*graph.Attr{aI("axis", 1), aI("keepdims", 0)}, sh(2), []int64{1, 0}},
		{"ArgMin", []*graph.Attr{aI("axis", 1)}, sh(2, 1), []int64{0, 1}},
		{"ArgMin", []*graph.Attr{aI("axis", 0), aI("keepdims", 0)}, sh(3), []int64{0, 1, 1}},
		{"ArgMin", []*graph.Attr{aI("axis", 0), aI("select_last_index", 1)}, sh(1, 3), []int64{0, 1, 1}},
	}
	for _, c := range cases {
		k := kern(t, c.op, 13, c.attrs...)
		ints(t, fwd(t, k, x)[0], c.shape, c.want...)
		xi := it(sh(2, 3), 1, 7, 7, 4, 0, 4)
		ints(t, fwd(t, k, xi)[0], c.shape, c.want...)
	}
	ints(t, fwd(t, kern(t, "ArgMax", 13), ft(sh(3), 1, float32(math.NaN()), 2))[0], sh(1), 1)
	fwdErr(t, kern(t, "ArgMax", 13, aI("axis", 2)), "out of range", x)
	fwdErr(t, kern(t, "ArgMax", 13), "want float32 or int64", bt(sh(1), true))
}
