package nnops

import (
	"math"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// mk builds a node of the given type with nIn inputs and nOut outputs.
func mk(opType string, nIn, nOut int, attrs ...*graph.Attr) *graph.Node {
	n := &graph.Node{Name: "t", OpType: opType, Attrs: map[string]*graph.Attr{}}
	for i := 0; i < nIn; i++ {
		n.Inputs = append(n.Inputs, "i")
	}
	for i := 0; i < nOut; i++ {
		n.Outputs = append(n.Outputs, "o")
	}
	for _, a := range attrs {
		n.Attrs[a.Name] = a
	}
	return n
}

func aInts(name string, v ...int64) *graph.Attr {
	return &graph.Attr{Name: name, Type: graph.AttrInts, Ints: v}
}

func aInt(name string, v int64) *graph.Attr {
	return &graph.Attr{Name: name, Type: graph.AttrInt, I: v}
}

func aStr(name, v string) *graph.Attr { return &graph.Attr{Name: name, Type: graph.AttrString, S: v} }

func aFloat(name string, v float32) *graph.Attr {
	return &graph.Attr{Name: name, Type: graph.AttrFloat, F: v}
}

func aFloats(name string, v ...float32) *graph.Attr {
	return &graph.Attr{Name: name, Type: graph.AttrFloats, Floats: v}
}

func factory(t *testing.T, opType string) op.Factory {
	t.Helper()
	m := map[string]op.Factory{}
	Register(m)
	f, ok := m[opType]
	if !ok {
		t.Fatalf("%s not registered", opType)
	}
	return f
}

// build makes the kernel of node n at the given opset.
func build(t *testing.T, n *graph.Node, opset int) op.Kernel {
	t.Helper()
	k, err := factory(t, n.OpType)(n, opset)
	if err != nil {
		t.Fatalf("factory: %v", err)
	}
	return k
}

func ft(shape []int, v ...float32) *tensor.Tensor {
	t, err := tensor.FromFloat32(v, shape...)
	if err != nil {
		panic(err)
	}
	return t
}

func it(v ...int64) *tensor.Tensor {
	t, _ := tensor.FromInt64(v, len(v))
	return t
}

// seq returns a float tensor of the given shape holding 1, 2, 3, ...
func seq(shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.F {
		t.F[i] = float32(i + 1)
	}
	return t
}

func forward(t *testing.T, k op.Kernel, in ...*tensor.Tensor) []*tensor.Tensor {
	t.Helper()
	out, err := k.Forward(in)
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	return out
}

func near(t *testing.T, what string, got *tensor.Tensor, shape []int, want []float32, tol float64) {
	t.Helper()
	if !tensor.SameShape(got.Shape, shape) {
		t.Fatalf("%s: shape %v, want %v", what, got.Shape, shape)
	}
	for i := range want {
		g, w := float64(got.F[i]), float64(want[i])
		if math.Abs(g-w) > tol*math.Max(1, math.Abs(w)) && !(math.IsInf(g, 0) && g == w) {
			t.Fatalf("%s: got %v, want %v (element %d)", what, got.F, want, i)
		}
	}
}

// wantErr checks that Forward fails with a message containing frag.
func wantErr(t *testing.T, k op.Kernel, frag string, in ...*tensor.Tensor) {
	t.Helper()
	_, err := k.Forward(in)
	if err == nil {
		t.Fatalf("forward succeeded, want an error containing %q", frag)
	}
	if !strings.Contains(err.Error(), frag) {
		t.Fatalf("error %q does not contain %q", err, frag)
	}
}

// spread adds i*step to element i so that no two values tie.
func spread(x *tensor.Tensor, step float32) *tensor.Tensor {
	for i := range x.F {
		x.F[i] += float32(i) * step
	}
	return x
}
