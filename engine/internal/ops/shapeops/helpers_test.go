package shapeops

import (
	"math"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// attr helpers for building test nodes.
func aInt(name string, v int64) *graph.Attr {
	return &graph.Attr{Name: name, Type: graph.AttrInt, I: v}
}
func aInts(name string, v ...int64) *graph.Attr {
	return &graph.Attr{Name: name, Type: graph.AttrInts, Ints: v}
}
func aFloat(name string, v float32) *graph.Attr {
	return &graph.Attr{Name: name, Type: graph.AttrFloat, F: v}
}
func aFloats(name string, v ...float32) *graph.Attr {
	return &graph.Attr{Name: name, Type: graph.AttrFloats, Floats: v}
}
func aStr(name, v string) *graph.Attr {
	return &graph.Attr{Name: name, Type: graph.AttrString, S: v}
}
func aStrs(name string, v ...string) *graph.Attr {
	return &graph.Attr{Name: name, Type: graph.AttrStrings, Strings: v}
}
func aTensor(name string, t *tensor.Tensor) *graph.Attr {
	return &graph.Attr{Name: name, Type: graph.AttrTensor, T: t}
}

// mkNode returns a node of the given type with one output and the attrs.
func mkNode(opType string, attrs ...*graph.Attr) *graph.Node {
	n := &graph.Node{Name: "n", OpType: opType, Outputs: []string{"y"}, Attrs: map[string]*graph.Attr{}}
	for _, a := range attrs {
		n.Attrs[a.Name] = a
	}
	return n
}

// build runs the registered factory for n.
func build(t *testing.T, n *graph.Node, opset int) op.Kernel {
	t.Helper()
	m := map[string]op.Factory{}
	Register(m)
	f, ok := m[n.OpType]
	if !ok {
		t.Fatalf("%s is not registered", n.OpType)
	}
	k, err := f(n, opset)
	if err != nil {
		t.Fatalf("factory: %v", err)
	}
	return k
}

func buildErr(n *graph.Node, opset int) error {
	m := map[string]op.Factory{}
	Register(m)
	_, err := m[n.OpType](n, opset)
	return err
}

func ft(shape []int, v ...float32) *tensor.Tensor {
	if len(v) == 0 {
		t := tensor.New(shape...)
		for i := range t.F {
			t.F[i] = float32(i)
		}
		return t
	}
	t, err := tensor.FromFloat32(v, shape...)
	if err != nil {
		panic(err)
	}
	return t
}

func it(shape []int, v ...int64) *tensor.Tensor {
	t, err := tensor.FromInt64(v, shape...)
	if err != nil {
		panic(err)
	}
	return t
}

func ints(v ...int64) *tensor.Tensor { return it([]int{len(v)}, v...) }

func bt(shape []int, v ...bool) *tensor.Tensor {
	return &tensor.Tensor{DType: tensor.Bool, Shape: shape, B: v}
}

func sh(d ...int) []int { return append([]int{}, d...) }

// want compares a result with the expected tensor.
func want(t *testing.T, name string, got, exp *tensor.Tensor, tol float64) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: nil result", name)
	}
	if err := got.Check(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if got.DType != exp.DType || !tensor.SameShape(got.Shape, exp.Shape) {
		t.Fatalf("%s: got %s%v, want %s%v", name, got.DType, got.Shape, exp.DType, exp.Shape)
	}
	for i := 0; i < exp.Len(); i++ {
		g, e := got.Float64At(i), exp.Float64At(i)
		if math.Abs(g-e) > tol*math.Max(1, math.Abs(e)) || math.IsNaN(g) != math.IsNaN(e) {
			t.Fatalf("%s: element %d is %g, want %g (got %v)", name, i, g, e, got)
		}
	}
}

// run runs k and returns its outputs.
func run(t *testing.T, k op.Kernel, in ...*tensor.Tensor) []*tensor.Tensor {
	t.Helper()
	out, err := k.Forward(in)
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	return out
}

// wantErr runs k and checks that it fails with a message containing sub.
func wantErr(t *testing.T, k op.Kernel, sub string, in ...*tensor.Tensor) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic instead of error %q: %v", sub, r)
		}
	}()
	_, err := k.Forward(in)
	if err == nil {
		t.Fatalf("no error, want one containing %q", sub)
	}
	if !strings.Contains(err.Error(), sub) {
		t.Fatalf("error %q does not contain %q", err, sub)
	}
}
