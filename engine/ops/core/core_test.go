package core

import (
	"testing"

	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/engine/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

func node(opType string, nIn, nOut int, attrs ...*graph.Attr) *graph.Node {
	n := &graph.Node{Name: "test_" + opType, OpType: opType, Attrs: map[string]*graph.Attr{}}
	for i := 0; i < nIn; i++ {
		n.Inputs = append(n.Inputs, "in")
	}
	for i := 0; i < nOut; i++ {
		n.Outputs = append(n.Outputs, "out")
	}
	for _, a := range attrs {
		n.Attrs[a.Name] = a
	}
	return n
}

func ai(name string, v ...int64) *graph.Attr {
	if len(v) == 1 && name != "kernel_shape" && name != "strides" && name != "pads" && name != "dilations" && name != "perm" && name != "axes" {
		return &graph.Attr{Name: name, Type: graph.AttrInt, I: v[0]}
	}
	return &graph.Attr{Name: name, Type: graph.AttrInts, Ints: v}
}

func build(t *testing.T, f op.Factory, n *graph.Node) op.Kernel {
	t.Helper()
	k, err := f(n, 13)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// awayFromZero pushes values away from 0 so ReLU and max kinks are not hit.
func awayFromZero(x *tensor.Tensor) *tensor.Tensor {
	for i, v := range x.F {
		if v >= 0 && v < 0.1 {
			x.F[i] += 0.1
		} else if v < 0 && v > -0.1 {
			x.F[i] -= 0.1
		}
	}
	return x
}

func TestGradients(t *testing.T) {
	reg := map[string]op.Factory{}
	Register(reg)
	tests := []struct {
		name string
		n    *graph.Node
		in   []*tensor.Tensor
		wrt  []int
	}{
		{"Relu", node("Relu", 1, 1), []*tensor.Tensor{awayFromZero(optest.Rand(1, 3, 4))}, []int{0}},
		{"Sigmoid", node("Sigmoid", 1, 1), []*tensor.Tensor{optest.Rand(2, 3, 4)}, []int{0}},
		{"Tanh", node("Tanh", 1, 1), []*tensor.Tensor{optest.Rand(3, 3, 4)}, []int{0}},
		{"Add broadcast", node("Add", 2, 1), []*tensor.Tensor{optest.Rand(4, 2, 3, 4), optest.Rand(5, 3, 1)}, []int{0, 1}},
		{"Sub", node("Sub", 2, 1), []*tensor.Tensor{optest.Rand(4, 2, 3), optest.Rand(5, 2, 3)}, []int{0, 1}},
		{"Mul broadcast", node("Mul", 2, 1), []*tensor.Tensor{optest.Rand(6, 2, 3, 4), optest.Rand(7, 4)}, []int{0, 1}},
		{"Div", node("Div", 2, 1), []*tensor.Tensor{optest.Rand(8, 2, 3), tensor.Scalar(1.7)}, []int{0, 1}},
		{"Gemm", node("Gemm", 3, 1, ai("transB", 1)), []*tensor.Tensor{optest.Rand(9, 3, 5), optest.Rand(10, 4, 5), optest.Rand(11, 4)}, []int{0, 1, 2}},
		{"Gemm transA", node("Gemm", 3, 1, ai("transA", 1), &graph.Attr{Name: "alpha", Type: graph.AttrFloat, F: 0.5}), []*tensor.Tensor{optest.Rand(9, 5, 3), optest.Rand(10, 5, 4), optest.Rand(11, 1, 4)}, []int{0, 1, 2}},
		{"MatMul batched", node("MatMul", 2, 1), []*tensor.Tensor{optest.Rand(12, 2, 3, 5), optest.Rand(13, 5, 4)}, []int{0, 1}},
		{"MatMul both batched", node("MatMul", 2, 1), []*tensor.Tensor{optest.Rand(12, 2, 3, 5), optest.Rand(13, 2, 5, 4)}, []int{0, 1}},
		{"Softmax", node("Softmax", 1, 1, ai("axis", 1)), []*tensor.Tensor{optest.Rand(14, 2, 4, 3)}, []int{0}},
		{"LogSoftmax", node("LogSoftmax", 1, 1), []*tensor.Tensor{optest.Rand(15, 2, 5)}, []int{0}},
		{"Conv", node("Conv", 3, 1, ai("kernel_shape", 3, 3), ai("pads", 1, 1, 1, 1)), []*tensor.Tensor{optest.Rand(16, 2, 3, 5, 5), optest.Rand(17, 4, 3, 3, 3), optest.Rand(18, 4)}, []int{0, 1, 2}},
		{"Conv stride 2 groups", node("Conv", 2, 1, ai("kernel_shape", 3, 3), ai("strides", 2, 2), ai("pads", 1, 0, 1, 2), ai("group", 2)), []*tensor.Tensor{optest.Rand(19, 1, 4, 7, 6), optest.Rand(20, 6, 2, 3, 3)}, []int{0, 1}},
		{"Conv 7x7 stride 2", node("Conv", 2, 1, ai("kernel_shape", 7, 7), ai("strides", 2, 2), ai("pads", 3, 3, 3, 3)), []*tensor.Tensor{optest.Rand(19, 1, 2, 11, 11), optest.Rand(20, 3, 2, 7, 7)}, []int{0, 1}},
		{"Conv 1d dilated", node("Conv", 2, 1, ai("kernel_shape", 3), ai("dilations", 2), ai("pads", 1, 1)), []*tensor.Tensor{optest.Rand(21, 2, 3, 9), optest.Rand(22, 2, 3, 3)}, []int{0, 1}},
		{"MaxPool 2x2", node("MaxPool", 1, 1, ai("kernel_shape", 2, 2), ai("strides", 2, 2)), []*tensor.Tensor{optest.Rand(23, 2, 2, 4, 4)}, []int{0}},
		{"MaxPool 3x3/2 pad", node("MaxPool", 1, 1, ai("kernel_shape", 3, 3), ai("strides", 2, 2), ai("pads", 1, 1, 1, 1)), []*tensor.Tensor{optest.Rand(24, 1, 2, 7, 7)}, []int{0}},
		{"AveragePool", node("AveragePool", 1, 1, ai("kernel_shape", 3, 3), ai("strides", 2, 2), ai("pads", 1, 1, 1, 1)), []*tensor.Tensor{optest.Rand(25, 1, 2, 6, 6)}, []int{0}},
		{"GlobalAveragePool", node("GlobalAveragePool", 1, 1), []*tensor.Tensor{optest.Rand(26, 2, 3, 4, 4)}, []int{0}},
		{"BatchNormalization", node("BatchNormalization", 5, 1), []*tensor.Tensor{optest.Rand(27, 2, 3, 2, 2), optest.Rand(28, 3), optest.Rand(29, 3), optest.Rand(30, 3), tensor.Scalar(0)}, []int{0, 1, 2}},
		{"ReduceMean", node("ReduceMean", 1, 1, ai("axes", -1), ai("keepdims", 0)), []*tensor.Tensor{optest.Rand(35, 2, 3, 4)}, []int{0}},
		{"Exp", node("Exp", 1, 1), []*tensor.Tensor{optest.Rand(37, 2, 3)}, []int{0}},
		{"Erf", node("Erf", 1, 1), []*tensor.Tensor{optest.Rand(38, 2, 3)}, []int{0}},
		{"Softplus", node("Softplus", 1, 1), []*tensor.Tensor{optest.Rand(39, 2, 3)}, []int{0}},
		{"LeakyRelu", node("LeakyRelu", 1, 1), []*tensor.Tensor{awayFromZero(optest.Rand(40, 2, 3))}, []int{0}},
		{"Elu", node("Elu", 1, 1), []*tensor.Tensor{awayFromZero(optest.Rand(41, 2, 3))}, []int{0}},
		{"Gelu", node("Gelu", 1, 1), []*tensor.Tensor{optest.Rand(42, 2, 3)}, []int{0}},
		{"Gelu tanh", node("Gelu", 1, 1, &graph.Attr{Name: "approximate", Type: graph.AttrString, S: "tanh"}), []*tensor.Tensor{optest.Rand(42, 2, 3)}, []int{0}},
		{"Clip", node("Clip", 3, 1), []*tensor.Tensor{{DType: tensor.Float32, Shape: []int{2, 3}, F: []float32{-1, -0.3, 0.1, 0.3, 0.8, 2}}, tensor.Scalar(-0.5), tensor.Scalar(0.5)}, []int{0}},
		{"Pow", node("Pow", 2, 1), []*tensor.Tensor{absPlus(optest.Rand(44, 2, 3)), optest.Rand(45, 3)}, []int{0, 1}},
		{"Max", node("Max", 2, 1), []*tensor.Tensor{optest.Rand(46, 2, 3), optest.Rand(47, 3)}, []int{0, 1}},
		{"ReduceMax", node("ReduceMax", 1, 1, ai("axes", 1)), []*tensor.Tensor{optest.Rand(48, 2, 5, 3)}, []int{0}},
		{"LayerNormalization", node("LayerNormalization", 3, 1), []*tensor.Tensor{optest.Rand(52, 3, 4), optest.Rand(53, 4), optest.Rand(54, 4)}, []int{0, 1, 2}},
		{"Where", node("Where", 3, 1), []*tensor.Tensor{{DType: tensor.Bool, Shape: []int{3}, B: []bool{true, false, true}}, optest.Rand(55, 2, 3), optest.Rand(56, 3)}, []int{1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "BatchNormalization" {
				tc.in[4] = tensor.New(3)
				for i := range tc.in[4].F {
					tc.in[4].F[i] = 0.5 + float32(i)
				}
			}
			if tc.name[:3] == "Max" {
				// Distinct values keep the argmax stable under perturbation.
				for i := range tc.in[0].F {
					tc.in[0].F[i] = float32((i*37)%101) / 10
				}
			}
			optest.GradCheck(t, build(t, reg[tc.n.OpType], tc.n), tc.in, tc.wrt, optest.Options{Eps: 1e-2, Tol: 1e-2})
		})
	}
}

func absPlus(x *tensor.Tensor) *tensor.Tensor {
	for i, v := range x.F {
		if v < 0 {
			v = -v
		}
		x.F[i] = v + 0.5
	}
	return x
}

func TestPoolShapesAndTies(t *testing.T) {
	reg := map[string]op.Factory{}
	Register(reg)
	// ceil_mode adds a partial window; PyTorch drops a window that would
	// start in the right padding.
	k := build(t, reg["MaxPool"], node("MaxPool", 1, 1, ai("kernel_shape", 2, 2), ai("strides", 2, 2), ai("ceil_mode", 1)))
	out, err := k.Forward([]*tensor.Tensor{tensor.New(1, 1, 5, 5)})
	if err != nil || !tensor.SameShape(out[0].Shape, []int{1, 1, 3, 3}) {
		t.Fatalf("ceil_mode 5x5 pool 2/2: %v %v", out, err)
	}
	// Ties: the gradient goes to the first maximum in scan order.
	k = build(t, reg["MaxPool"], node("MaxPool", 1, 1, ai("kernel_shape", 2, 2)))
	x, _ := tensor.FromFloat32([]float32{1, 1, 1, 1}, 1, 1, 2, 2)
	y, _ := k.Forward([]*tensor.Tensor{x})
	g, _ := tensor.FromFloat32([]float32{1}, 1, 1, 1, 1)
	gx, err := k.(op.Differentiable).Backward([]*tensor.Tensor{x}, y, []*tensor.Tensor{g}, []bool{true})
	if err != nil || tensor.MaxAbsDiff(gx[0].F, []float32{1, 0, 0, 0}) != 0 {
		t.Fatalf("tie gradient %v %v, want [1 0 0 0]", gx, err)
	}
	// ReLU's derivative at 0 is 0.
	k = build(t, reg["Relu"], node("Relu", 1, 1))
	z := tensor.New(1, 3)
	gz, _ := k.(op.Differentiable).Backward([]*tensor.Tensor{z}, []*tensor.Tensor{z}, []*tensor.Tensor{optest.Rand(1, 1, 3)}, []bool{true})
	if tensor.MaxAbsDiff(gz[0].F, []float32{0, 0, 0}) != 0 {
		t.Fatalf("ReLU gradient at 0: %v", gz[0])
	}
}

func TestShapeErrors(t *testing.T) {
	reg := map[string]op.Factory{}
	Register(reg)
	cases := []struct {
		n  *graph.Node
		in []*tensor.Tensor
	}{
		{node("Gemm", 2, 1), []*tensor.Tensor{tensor.New(2, 3), tensor.New(4, 5)}},
		{node("Add", 2, 1), []*tensor.Tensor{tensor.New(2, 3), tensor.New(4)}},
		{node("Conv", 2, 1), []*tensor.Tensor{tensor.New(1, 3, 5, 5), tensor.New(4, 2, 3, 3)}},
	}
	for _, tc := range cases {
		k := build(t, reg[tc.n.OpType], tc.n)
		if _, err := k.Forward(tc.in); err == nil {
			t.Errorf("%s: no error for bad shapes", tc.n.OpType)
		}
	}
}
