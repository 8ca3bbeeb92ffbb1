package shapeops

import (
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

func TestShape(t *testing.T) {
	x := tensor.New(2, 3, 4, 5)
	cases := []struct {
		name  string
		opset int
		attrs []*graph.Attr
		want  []int64
	}{
		{"all", 13, nil, []int64{2, 3, 4, 5}},
		{"start", 15, []*graph.Attr{aInt("start", 1)}, []int64{3, 4, 5}},
		{"end", 15, []*graph.Attr{aInt("end", -1)}, []int64{2, 3, 4}},
		{"both", 15, []*graph.Attr{aInt("start", -3), aInt("end", 3)}, []int64{3, 4}},
		{"clamped", 15, []*graph.Attr{aInt("start", -10), aInt("end", 10)}, []int64{2, 3, 4, 5}},
		{"empty", 15, []*graph.Attr{aInt("start", 3), aInt("end", 1)}, []int64{}},
	}
	for _, c := range cases {
		k := build(t, mkNode("Shape", c.attrs...), c.opset)
		want(t, c.name, run(t, k, x)[0], ints(c.want...), 0)
	}
	k := build(t, mkNode("Shape"), 13)
	want(t, "scalar", run(t, k, tensor.Scalar(1))[0], ints(), 0)
	k = build(t, mkNode("Size"), 13)
	want(t, "size", run(t, k, x)[0], tensor.ScalarInt(120), 0)
	want(t, "size bool", run(t, k, bt(sh(0, 3)))[0], tensor.ScalarInt(0), 0)
	wantErr(t, k, "input 0 is missing")
}

func TestReshape(t *testing.T) {
	x := ft(sh(2, 3, 4))
	k := build(t, mkNode("Reshape"), 13)
	cases := []struct {
		spec  []int64
		shape []int
	}{
		{[]int64{4, 6}, sh(4, 6)},
		{[]int64{-1}, sh(24)},
		{[]int64{0, -1}, sh(2, 12)},
		{[]int64{0, 0, 2, 2}, sh(2, 3, 2, 2)},
		{[]int64{-1, 0, 4}, sh(2, 3, 4)},
		{[]int64{1, 24, 1}, sh(1, 24, 1)},
	}
	for _, c := range cases {
		got := run(t, k, x, ints(c.spec...))[0]
		want(t, "reshape", got, ft(c.shape), 0)
	}
	// int64 and bool data.
	want(t, "int64", run(t, k, ints(1, 2, 3, 4), ints(2, 2))[0], it(sh(2, 2), 1, 2, 3, 4), 0)
	want(t, "bool", run(t, k, bt(sh(2), true, false), ints(1, 2))[0], bt(sh(1, 2), true, false), 0)
	// allowzero: 0 is a real zero.
	kz := build(t, mkNode("Reshape", aInt("allowzero", 1)), 14)
	want(t, "allowzero", run(t, kz, tensor.New(0, 3), ints(3, 0))[0], tensor.New(3, 0), 0)
	wantErr(t, kz, "cannot reshape", x, ints(0, -1))
	// Errors name the shapes.
	wantErr(t, k, "cannot reshape input 0 of shape [2 3 4] (24 elements) to [5 5]", x, ints(5, 5))
	wantErr(t, k, "[2 3 4]", x, ints(-1, 5))
	wantErr(t, k, "more than one -1", x, ints(-1, -1))
	wantErr(t, k, "negative dimension", x, ints(-2, 12))
	wantErr(t, k, "copies dimension 3", x, ints(0, 0, 0, 0, 1))
	wantErr(t, k, "int64", x, ft(sh(2), 4, 6))
	wantErr(t, k, "shape", x)
	optest.GradCheck(t, k, []*tensor.Tensor{optest.Rand(1, 2, 3, 4), ints(4, -1)}, []int{0}, optest.Options{})
}

func TestFlatten(t *testing.T) {
	x := ft(sh(2, 3, 4, 5))
	for _, c := range []struct {
		axis  int64
		shape []int
	}{{0, sh(1, 120)}, {1, sh(2, 60)}, {2, sh(6, 20)}, {4, sh(120, 1)}, {-1, sh(24, 5)}, {-4, sh(1, 120)}} {
		k := build(t, mkNode("Flatten", aInt("axis", c.axis)), 13)
		want(t, "flatten", run(t, k, x)[0], ft(c.shape), 0)
	}
	k := build(t, mkNode("Flatten"), 13)
	want(t, "default", run(t, k, x)[0], ft(sh(2, 60)), 0)
	wantErr(t, build(t, mkNode("Flatten", aInt("axis", 5)), 13), "axis 5", x)
	optest.GradCheck(t, k, []*tensor.Tensor{optest.Rand(2, 2, 3, 2)}, []int{0}, optest.Options{})
}

func TestSqueezeUnsqueeze(t *testing.T) {
	x := ft(sh(1, 3, 1, 2))
	// Squeeze: attribute before 13, input from 13, all unit axes by default.
	want(t, "sq attr", run(t, build(t, mkNode("Squeeze", aInts("axes", 0)), 11), x)[0], ft(sh(3, 1, 2)), 0)
	k13 := build(t, mkNode("Squeeze"), 13)
	want(t, "sq input", run(t, k13, x, ints(-2))[0], ft(sh(1, 3, 2)), 0)
	want(t, "sq all", run(t, k13, x)[0], ft(sh(3, 2)), 0)
	want(t, "sq scalar", run(t, k13, ft(sh(1), 7))[0], ft(sh(), 7), 0)
	want(t, "sq int64", run(t, k13, it(sh(1, 1), 9), ints(0, 1))[0], tensor.ScalarInt(9), 0)
	wantErr(t, k13, "size is 3, not 1", x, ints(1))
	wantErr(t, k13, "out of range", x, ints(4))
	// Unsqueeze.
	u11 := build(t, mkNode("Unsqueeze", aInts("axes", 0, 3)), 11)
	want(t, "unsq attr", run(t, u11, ft(sh(3, 2)))[0], ft(sh(1, 3, 2, 1)), 0)
	if err := buildErr(mkNode("Unsqueeze"), 11); err == nil {
		t.Fatal("Unsqueeze-11 without axes: no error")
	}
	u13 := build(t, mkNode("Unsqueeze"), 13)
	want(t, "unsq input", run(t, u13, ft(sh(3, 2)), ints(-1, 1))[0], ft(sh(3, 1, 2, 1)), 0)
	want(t, "unsq scalar int", run(t, u13, tensor.ScalarInt(4), ints(0))[0], ints(4), 0)
	wantErr(t, u13, "repeat", ft(sh(3)), ints(0, -3))
	wantErr(t, u13, "out of range", ft(sh(3)), ints(2))
	wantErr(t, u13, "axes", ft(sh(3)))
	optest.GradCheck(t, k13, []*tensor.Tensor{optest.Rand(3, 1, 3, 1), ints(0)}, []int{0}, optest.Options{})
	optest.GradCheck(t, u13, []*tensor.Tensor{optest.Rand(3, 3, 2), ints(1)}, []int{0}, optest.Options{})
}

// TestShapeChain runs the int64 chain that exported PyTorch models use for
// x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
func TestShapeChain(t *testing.T) {
	x := optest.Rand(1, 2, 3, 4)
	s := run(t, build(t, mkNode("Shape"), 13), x)[0]
	b := run(t, build(t, mkNode("Gather", aInt("axis", 0)), 13), s, tensor.ScalarInt(0))[0]
	want(t, "gather", b, tensor.ScalarInt(2), 0)
	u := run(t, build(t, mkNode("Unsqueeze"), 13), b, ints(0))[0]
	c := run(t, build(t, mkNode("Concat", aInt("axis", 0)), 13), u, ints(-1))[0]
	want(t, "concat", c, ints(2, -1), 0)
	y := run(t, build(t, mkNode("Reshape"), 13), x, c)[0]
	want(t, "reshape", y, &tensor.Tensor{DType: tensor.Float32, Shape: sh(2, 12), F: x.F}, 0)
}

func TestConcatSplitErrors(t *testing.T) {
	k := build(t, mkNode("Concat", aInt("axis", 1)), 13)
	wantErr(t, k, "ranks differ", ft(sh(2, 3)), ft(sh(2, 3, 1)))
	wantErr(t, k, "differ off axis 1", ft(sh(2, 3)), ft(sh(3, 3)))
	wantErr(t, k, "input 1 is int64", ft(sh(2, 3)), it(sh(2, 1), 1, 2))
	wantErr(t, k, "out of range", ft(sh(2)))
	wantErr(t, k, "no inputs")
	if err := buildErr(mkNode("Concat"), 13); err == nil {
		t.Fatal("Concat without axis: no error")
	}
	// Empty inputs take part (PyTorch exports concatenate empty shapes).
	want(t, "empty", run(t, k, ft(sh(2, 0)), ft(sh(2, 2)))[0], ft(sh(2, 2)), 0)
	// Gradient for every input, and bool data.
	optest.GradCheck(t, k, []*tensor.Tensor{optest.Rand(1, 2, 1), optest.Rand(2, 2, 3), optest.Rand(3, 2, 2)}, []int{0, 1, 2}, optest.Options{})
	want(t, "bool", run(t, k, bt(sh(1, 1), true), bt(sh(1, 2), false, true))[0], bt(sh(1, 3), true, false, true), 0)

	sp := mkNode("Split", aInt("axis", 1))
	sp.Outputs = []string{"a", "b"}
	s13 := build(t, sp, 13)
	wantErr(t, s13, "sums to 4", ft(sh(2, 5)), ints(1, 3))
	wantErr(t, s13, "equal parts", ft(sh(2, 5)))
	wantErr(t, s13, "3 parts, the node has 2 outputs", ft(sh(2, 5)), ints(1, 3, 1))
	sp.Attrs["split"] = aInts("split", 1)
	if err := buildErr(sp, 11); err == nil {
		t.Fatal("split attribute with wrong length: no error")
	}
	// A nil output gradient counts as zero.
	x := optest.Rand(4, 2, 4)
	out := run(t, s13, x)
	g, err := s13.(op.Differentiable).Backward([]*tensor.Tensor{x}, out, []*tensor.Tensor{nil, ft(sh(2, 2), 1, 2, 3, 4)}, []bool{true})
	if err != nil {
		t.Fatal(err)
	}
	want(t, "split grad", g[0], ft(sh(2, 4), 0, 0, 1, 2, 0, 0, 3, 4), 0)
	optest.GradCheck(t, s13, []*tensor.Tensor{x}, []int{0}, optest.Options{})
	// int64 split.
	outs := run(t, s13, it(sh(1, 4), 1, 2, 3, 4), ints(3, 1))
	want(t, "int split", outs[1], it(sh(1, 1), 4), 0)
}

func TestSliceErrors(t *testing.T) {
	k := build(t, mkNode("Slice"), 13)
	x := ft(sh(3, 4))
	wantErr(t, k, "contain 0", x, ints(0), ints(2), ints(0), ints(0))
	wantErr(t, k, "differ in length", x, ints(0, 1), ints(2))
	wantErr(t, k, "repeat axis", x, ints(0, 0), ints(1, 1), ints(1, -1))
	wantErr(t, k, "out of range", x, ints(0), ints(1), ints(2))
	wantErr(t, k, "starts", x)
	wantErr(t, k, "int64", x, ft(sh(1)), ints(1))
	// A zero-length result still has the right shape, and so does its gradient.
	out := run(t, k, x, ints(2), ints(2), ints(1))[0]
	want(t, "empty", out, ft(sh(3, 0)), 0)
	// Steps longer than the axis (down to INT64_MIN) take one element.
	want(t, "huge negative step", run(t, k, x, ints(-1), ints(math.MinInt64), ints(1), ints(math.MinInt64))[0], ft(sh(3, 1), 3, 7, 11), 0)
	want(t, "huge step", run(t, k, x, ints(1), ints(math.MaxInt64), ints(0), ints(math.MaxInt64))[0], ft(sh(1, 4), 4, 5, 6, 7), 0)
	// Gradient of a reversed, strided slice.
	optest.GradCheck(t, k, []*tensor.Tensor{optest.Rand(1, 5, 6), ints(-1, 4), ints(math.MinInt64, 0), ints(1, 0), ints(-2, -1)}, []int{0}, optest.Options{})
}

func TestGatherErrors(t *testing.T) {
	k := build(t, mkNode("Gather"), 13)
	emb := optest.Rand(1, 5, 3)
	wantErr(t, k, "index 5 (input 1, element 1) is out of range for axis 0 of size 5", emb, ints(0, 5))
	wantErr(t, k, "index -6", emb, ints(-6))
	wantErr(t, k, "indices) is float32", emb, ft(sh(1), 0))
	wantErr(t, build(t, mkNode("Gather", aInt("axis", 2)), 13), "axis 2", emb, ints(0))
	// Repeated indices accumulate their gradients (scatter-add).
	idx := it(sh(2, 3), 1, 4, 1, -1, 0, 1)
	out := run(t, k, emb, idx)
	g, err := k.(op.Differentiable).Backward([]*tensor.Tensor{emb, idx}, out, []*tensor.Tensor{optest.Rand(9, 2, 3, 3)}, []bool{true, false})
	if err != nil {
		t.Fatal(err)
	}
	if g[1] != nil {
		t.Fatal("gradient for the indices")
	}
	optest.GradCheck(t, k, []*tensor.Tensor{emb, idx}, []int{0}, optest.Options{})
	k1 := build(t, mkNode("Gather", aInt("axis", 1)), 13)
	optest.GradCheck(t, k1, []*tensor.Tensor{optest.Rand(2, 2, 4, 3), it(sh(3), 3, 3, -4)}, []int{0}, optest.Options{})

	ge := build(t, mkNode("GatherElements", aInt("axis", 1)), 13)
	wantErr(t, ge, "ranks differ", emb, ints(0))
	wantErr(t, ge, "larger than", emb, it(sh(6, 1), 0, 0, 0, 0, 0, 0))
	wantErr(t, ge, "index 3", emb, it(sh(1, 1), 3))
	optest.GradCheck(t, ge, []*tensor.Tensor{emb, it(sh(2, 4), 0, 2, 2, 1, -1, 0, 0, 0)}, []int{0}, optest.Options{})
	ge0 := build(t, mkNode("GatherElements"), 13)
	want(t, "rank 1", run(t, ge0, ft(sh(4), 5, 6, 7, 8), ints(3, -4, 1))[0], ft(sh(3), 8, 5, 6), 0)
	optest.GradCheck(t, ge0, []*tensor.Tensor{optest.Rand(3, 4), ints(3, 3, 0)}, []int{0}, optest.Options{})
}

func TestExpandTileErrors(t *testing.T) {
	k := build(t, mkNode("Expand"), 13)
	wantErr(t, k, "do not broadcast", ft(sh(3, 2)), ints(4, 3))
	wantErr(t, k, "negative", ft(sh(3, 2)), ints(-1))
	optest.GradCheck(t, k, []*tensor.Tensor{optest.Rand(1, 3, 1), ints(2, 3, 4)}, []int{0}, optest.Options{})
	optest.GradCheck(t, k, []*tensor.Tensor{optest.Rand(1, 1, 2), ints(2, 1, 1)}, []int{0}, optest.Options{})
	tk := build(t, mkNode("Tile"), 13)
	wantErr(t, tk, "rank 2", ft(sh(3, 2)), ints(2))
	wantErr(t, tk, "negative", ft(sh(3, 2)), ints(1, -1))
	want(t, "zero repeats", run(t, tk, ft(sh(3, 2)), ints(0, 1))[0], ft(sh(0, 2)), 0)
	optest.GradCheck(t, tk, []*tensor.Tensor{optest.Rand(2, 2, 3), ints(3, 2)}, []int{0}, optest.Options{})
	tr := build(t, mkNode("Transpose", aInts("perm", 1, 0)), 13)
	wantErr(t, tr, "rank 3", ft(sh(1, 2, 3)))
	if err := buildErr(mkNode("Transpose", aInts("perm", 0, 0)), 13); err == nil {
		t.Fatal("perm 0 0: no error")
	}
}

func TestConstants(t *testing.T) {
	c := func(a *graph.Attr) *tensor.Tensor {
		return run(t, build(t, mkNode("Constant", a), 13))[0]
	}
	v := ft(sh(2), 1, 2)
	got := c(aTensor("value", v))
	want(t, "value", got, v, 0)
	got.F[0] = 9 // changing a result does not change the constant
	want(t, "value again", c(aTensor("value", v)), ft(sh(2), 1, 2), 0)
	want(t, "value_float", c(aFloat("value_float", 2.5)), tensor.Scalar(2.5), 0)
	want(t, "value_floats", c(aFloats("value_floats", 1, 2)), ft(sh(2), 1, 2), 0)
	want(t, "value_int", c(aInt("value_int", -3)), tensor.ScalarInt(-3), 0)
	want(t, "value_ints", c(aInts("value_ints", 4, 5)), ints(4, 5), 0)
	if err := buildErr(mkNode("Constant"), 13); err == nil {
		t.Fatal("Constant without value: no error")
	}
	if err := buildErr(mkNode("Constant", aStr("value_string", "a")), 13); err == nil || !strings.Contains(err.Error(), "value_string") {
		t.Fatalf("value_string: %v", err)
	}

	k := build(t, mkNode("ConstantOfShape"), 13)
	want(t, "cos default", run(t, k, ints(2, 3))[0], tensor.New(2, 3), 0)
	want(t, "cos scalar", run(t, k, ints())[0], tensor.Scalar(0), 0)
	ki := build(t, mkNode("ConstantOfShape", aTensor("value", it(sh(1), 7))), 13)
	want(t, "cos int", run(t, ki, ints(2))[0], ints(7, 7), 0)
	kb := build(t, mkNode("ConstantOfShape", aTensor("value", bt(sh(1), true))), 13)
	want(t, "cos bool", run(t, kb, ints(1, 2))[0], bt(sh(1, 2), true, true), 0)
	kf := build(t, mkNode("ConstantOfShape", aTensor("value", ft(sh(1), 1.5))), 13)
	want(t, "cos float", run(t, kf, ints(2))[0], ft(sh(2), 1.5, 1.5), 0)
	wantErr(t, k, "negative", ints(-1))
	wantErr(t, k, "int64", ft(sh(1), 2))
	if err := buildErr(mkNode("ConstantOfShape", aTensor("value", ft(sh(2), 1, 2))), 13); err == nil {
		t.Fatal("two-element value: no error")
	}

	r := build(t, mkNode("Range"), 11)
	want(t, "range int", run(t, r, tensor.ScalarInt(0), tensor.ScalarInt(5), tensor.ScalarInt(2))[0], ints(0, 2, 4), 0)
	want(t, "range empty", run(t, r, tensor.ScalarInt(5), tensor.ScalarInt(0), tensor.ScalarInt(2))[0], ints(), 0)
	wantErr(t, r, "delta) is 0", tensor.ScalarInt(0), tensor.ScalarInt(5), tensor.ScalarInt(0))
	wantErr(t, r, "input 1 (limit) is float32", tensor.ScalarInt(0), tensor.Scalar(5), tensor.ScalarInt(1))
	wantErr(t, r, "want a scalar", tensor.ScalarInt(0), ints(5, 6), tensor.ScalarInt(1))

	nz := build(t, mkNode("NonZero"), 13)
	want(t, "nonzero int", run(t, nz, ints(0, 3, 0, 4))[0], it(sh(1, 2), 1, 3), 0)
	want(t, "nonzero scalar", run(t, nz, tensor.Scalar(2))[0], it(sh(1, 1), 0), 0)
	want(t, "nonzero none", run(t, nz, tensor.New(2, 2))[0], tensor.NewInt(2, 0), 0)
}

func TestCast(t *testing.T) {
	x := ft(sh(5), -1.7, 0, 2.9, float32(math.NaN()), 3e9)
	cases := []struct {
		to   int64
		want *tensor.Tensor
	}{
		{onnxInt64, ints(-1, 0, 2, 0, 3000000000)},
		{onnxInt32, ints(-1, 0, 2, 0, 3000000000-1<<32)},
		{onnxUint8, ints(255, 0, 2, 0, 3000000000%256)},
		{onnxBool, bt(sh(5), true, false, true, true, true)},
		{onnxDouble, x},
	}
	for _, c := range cases {
		k := build(t, mkNode("Cast", aInt("to", c.to)), 13)
		got := run(t, k, x)[0]
		if c.to == onnxDouble {
			if got.DType != tensor.Float32 || !math.IsNaN(float64(got.F[3])) || got.F[4] != 3e9 {
				t.Fatalf("double: %v", got)
			}
			continue
		}
		want(t, "cast", got, c.want, 0)
	}
	kf := build(t, mkNode("Cast", aInt("to", onnxFloat)), 13)
	want(t, "int to float", run(t, kf, ints(-3, 4))[0], ft(sh(2), -3, 4), 0)
	want(t, "bool to float", run(t, kf, bt(sh(2), true, false))[0], ft(sh(2), 1, 0), 0)
	k32 := build(t, mkNode("Cast", aInt("to", onnxInt32)), 13)
	want(t, "int64 to int32 wraps", run(t, k32, ints(1<<32+5))[0], ints(5), 0)
	kb := build(t, mkNode("Cast", aInt("to", onnxBool)), 13)
	want(t, "int to bool", run(t, kb, ints(0, -2))[0], bt(sh(2), false, true), 0)
	for _, to := range []int64{onnxString, 99} {
		if err := buildErr(mkNode("Cast", aInt("to", to)), 13); err == nil {
			t.Fatalf("Cast to %d: no error", to)
		}
	}
	if err := buildErr(mkNode("Cast"), 13); err == nil {
		t.Fatal("Cast without to: no error")
	}
	// Gradient passes float to float, and stops at integers.
	optest.GradCheck(t, kf, []*tensor.Tensor{optest.Rand(1, 2, 3)}, []int{0}, optest.Options{})
	in := []*tensor.Tensor{x}
	ki := build(t, mkNode("Cast", aInt("to", onnxInt64)), 13).(op.Differentiable)
	out := run(t, ki, x)
	g, err := ki.Backward(in, out, []*tensor.Tensor{nil}, []bool{true})
	if err != nil || g[0] != nil {
		t.Fatalf("float->int gradient: %v %v", g, err)
	}
	cl := build(t, mkNode("CastLike"), 15)
	want(t, "castlike", run(t, cl, ft(sh(2), 1.5, -2.5), ints(0))[0], ints(1, -2), 0)
}

// naiveTranspose is an index-by-index reference.
func naiveTranspose(x *tensor.Tensor, perm []int) *tensor.Tensor {
	shape := make([]int, len(perm))
	for i, p := range perm {
		shape[i] = x.Shape[p]
	}
	out := tensor.New(shape...)
	ost := tensor.Strides(shape)
	ist := tensor.Strides(x.Shape)
	for i := range out.F {
		off := 0
		for d := range shape {
			off += (i / ost[d] % shape[d]) * ist[perm[d]]
		}
		out.F[i] = x.F[off]
	}
	return out
}

// TestLarge exercises the parallel paths against references.
func TestLarge(t *testing.T) {
	x := optest.Rand(3, 16, 48, 64)
	perm := []int{2, 0, 1}
	k := build(t, mkNode("Transpose", aInts("perm", 2, 0, 1)), 13)
	y := run(t, k, x)[0]
	want(t, "transpose", y, naiveTranspose(x, perm), 0)
	g, err := k.(op.Differentiable).Backward([]*tensor.Tensor{x}, []*tensor.Tensor{y}, []*tensor.Tensor{y}, []bool{true})
	if err != nil {
		t.Fatal(err)
	}
	want(t, "transpose back", g[0], x, 0)

	sl := build(t, mkNode("Slice"), 13)
	s := run(t, sl, x, ints(1, 63), ints(15, 0), ints(0, 2), ints(1, -1))[0]
	if !tensor.SameShape(s.Shape, sh(14, 48, 63)) || s.F[0] != x.F[48*64+63] || s.F[s.Len()-1] != x.F[14*48*64+47*64+1] {
		t.Fatalf("slice: %v", s)
	}

	emb := optest.Rand(4, 1000, 64)
	idx := tensor.NewInt(4, 200)
	for i := range idx.I {
		idx.I[i] = int64(i*37%1000) - 500
	}
	gk := build(t, mkNode("Gather"), 13)
	e := run(t, gk, emb, idx)[0]
	for i, v := range idx.I {
		r := int(v+1000) % 1000
		if e.F[i*64+5] != emb.F[r*64+5] {
			t.Fatalf("gather row %d", i)
		}
	}
	c := build(t, mkNode("Concat", aInt("axis", 1)), 13)
	cc := run(t, c, x, x)[0]
	if cc.F[48*64+7] != x.F[7] {
		t.Fatal("concat")
	}
	// GatherND over the same rows (parallel copies), then ScatterND of
	// them back into zeros.
	nd := it(sh(4, 200, 1), idx.I...)
	gn := run(t, build(t, mkNode("GatherND"), 13), emb, nd)[0]
	want(t, "gathernd", gn, e, 0)
	sc := run(t, build(t, mkNode("ScatterND"), 13), tensor.New(1000, 64), nd, gn)[0]
	for i, v := range idx.I {
		r := int(v+1000) % 1000
		if sc.F[r*64+9] != emb.F[r*64+9] {
			t.Fatalf("scatternd row %d", i)
		}
	}
}

// TestConcurrent runs kernels from several goroutines (go test -race).
func TestConcurrent(t *testing.T) {
	cases := loadGolden(t)
	n, in, _ := goldenNode(cases[3])
	k := build(t, n, 14).(op.Differentiable)
	tk := build(t, mkNode("Transpose"), 13)
	x := optest.Rand(1, 40, 30, 30)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := k.Forward(in)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := k.Backward(in, out, out, []bool{true, true, true, true, false, true, true}); err != nil {
				t.Error(err)
			}
			if _, err := tk.Forward([]*tensor.Tensor{x}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func TestBlockMoveTriluErrors(t *testing.T) {
	d := build(t, mkNode("DepthToSpace", aInt("blocksize", 2)), 13)
	wantErr(t, d, "not a multiple", ft(sh(1, 6, 2, 2)))
	wantErr(t, d, "4-D", ft(sh(4, 2, 2)))
	s := build(t, mkNode("SpaceToDepth", aInt("blocksize", 2)), 13)
	wantErr(t, s, "multiples", ft(sh(1, 1, 3, 2)))
	if err := buildErr(mkNode("DepthToSpace", aInt("blocksize", 2), aStr("mode", "XYZ")), 13); err == nil {
		t.Fatal("bad mode: no error")
	}
	tr := build(t, mkNode("Trilu"), 14)
	wantErr(t, tr, "2-D", ft(sh(3)))
	wantErr(t, tr, "int64 scalar", ft(sh(2, 2)), ft(sh(), 1))
	want(t, "trilu int", run(t, tr, it(sh(2, 2), 1, 2, 3, 4))[0], it(sh(2, 2), 1, 2, 0, 4), 0)
}
